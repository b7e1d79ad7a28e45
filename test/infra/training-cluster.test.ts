/**
 * The GPU training cluster: what runs where, how it scales from zero on the backlog, and what the
 * trainer may touch. Properties of the synthesized template, not snapshots.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { ENV } from '../../core/platform/config.ts';
import { backlogScalingSteps } from '../../infra/training-cluster.ts';
import { actionsOf, type CfnResource, resourcesOfType, statementsOfRole, synthesize } from './synth.ts';

const { app, stack, template, resources, logicalId } = synthesize();
const cluster = stack.trainingCluster;
const [[taskDefinitionId, taskDefinition]] = resourcesOfType(resources, 'AWS::ECS::TaskDefinition') as [
  [string, CfnResource],
];
const container = (taskDefinition.Properties.ContainerDefinitions as Record<string, unknown>[])[0] as {
  Environment: { Name: string; Value: unknown }[];
};

describe('TrainingCluster instances', () => {
  it('runs the trainer as an EC2 task that needs one GPU, on the cluster with Container Insights', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['EC2'],
      ContainerDefinitions: [
        Match.objectLike({
          ResourceRequirements: [{ Type: 'GPU', Value: '1' }],
          LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
          LinuxParameters: Match.objectLike({ InitProcessEnabled: true }),
          StopTimeout: 120,
        }),
      ],
    });
    template.hasResourceProperties('AWS::ECS::Cluster', {
      ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }],
    });
    assert.ok(taskDefinitionId);
  });

  it('launches g5/g4dn on demand from the ECS-optimized GPU AMI, resolved from SSM at deploy time', () => {
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      MixedInstancesPolicy: {
        InstancesDistribution: Match.objectLike({ OnDemandPercentageAboveBaseCapacity: 100 }),
        LaunchTemplate: Match.objectLike({
          Overrides: [{ InstanceType: 'g5.xlarge' }, { InstanceType: 'g4dn.xlarge' }],
        }),
      },
    });
    const parameters = template.toJSON().Parameters as Record<string, { Type: string; Default: string }>;
    const ami = Object.entries(parameters).find(([, p]) => p.Default.includes('/ecs/optimized-ami/'));
    assert.ok(ami, 'no SSM parameter for the AMI');
    assert.equal(ami[1].Type, 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>');
    assert.equal(ami[1].Default, '/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id');
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({ ImageId: { Ref: ami[0] } }),
    });
  });

  it('encrypts the root volume and keeps containers away from the instance role (IMDSv2, hop limit 1)', () => {
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({
        BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: Match.objectLike({ Encrypted: true }) }],
        MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
      }),
    });
  });

  it('switches to Spot across the instance types, with Spot draining, when the spot setting is on', () => {
    const spot = synthesize({}, { 'descent:spot': 'true', 'descent:instanceTypes': 'g6.xlarge,g5.xlarge' });
    spot.template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      CapacityRebalance: true,
      MixedInstancesPolicy: {
        InstancesDistribution: Match.objectLike({
          OnDemandPercentageAboveBaseCapacity: 0,
          SpotAllocationStrategy: 'price-capacity-optimized',
        }),
        LaunchTemplate: Match.objectLike({
          Overrides: [{ InstanceType: 'g6.xlarge' }, { InstanceType: 'g5.xlarge' }],
        }),
      },
    });
    const userData = JSON.stringify(spot.template.findResources('AWS::EC2::LaunchTemplate'));
    assert.match(userData, /ECS_ENABLE_SPOT_INSTANCE_DRAINING=true/);
  });

  it('builds a VPC without context lookups: two AZs, private subnets, flow logs, an S3 gateway endpoint', () => {
    assert.equal(app.synth().manifest.missing, undefined, 'the app needed a context lookup');
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
    template.hasResourceProperties('AWS::EC2::FlowLog', { ResourceType: 'VPC', TrafficType: 'ALL' });
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway' });
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      VPCZoneIdentifier: cluster.vpc.privateSubnets.map((s) => ({
        Ref: logicalId(s as unknown as { node: { defaultChild?: unknown } }),
      })),
    });
  });

  it('builds the image from trainer/Dockerfile at deploy time, from a context of only what the trainer runs', () => {
    const assembly = app.synth();
    const assets = JSON.parse(readFileSync(join(assembly.directory, 'DescentStack.assets.json'), 'utf8')) as {
      dockerImages: Record<string, { source: { directory: string; dockerFile: string; platform: string } }>;
    };
    const images = Object.values(assets.dockerImages);
    assert.equal(images.length, 1);
    const [image] = images as [(typeof images)[number]];
    assert.equal(image.source.dockerFile, 'trainer/Dockerfile');
    assert.equal(image.source.platform, 'linux/amd64');
    const files = readdirSync(join(assembly.directory, image.source.directory), {
      recursive: true,
    }) as string[];
    const topLevel = new Set(files.map((f) => f.split('/')[0]));
    assert.deepEqual([...topLevel].sort(), [
      '.dockerignore',
      'aws',
      'core',
      'package-lock.json',
      'package.json',
      'trainer',
    ]);
    assert.ok(!files.some((f) => f.endsWith('.test.ts')));
  });
});

describe('TrainingCluster scaling', () => {
  it('scales the GPU instances from zero through a capacity provider with managed scaling, protection and draining', () => {
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      MinSize: '0',
      MaxSize: '4',
      NewInstancesProtectedFromScaleIn: true,
      DesiredCapacity: Match.absent(),
    });
    template.hasResourceProperties('AWS::ECS::CapacityProvider', {
      AutoScalingGroupProvider: {
        AutoScalingGroupArn: { Ref: logicalId(cluster.autoScalingGroup) },
        ManagedScaling: Match.objectLike({ Status: 'ENABLED', TargetCapacity: 100 }),
        ManagedTerminationProtection: 'ENABLED',
        ManagedDraining: 'ENABLED',
      },
    });
  });

  it('starts the service at zero trainers on the capacity provider, after the provider joined the cluster', () => {
    const [[, service]] = resourcesOfType(resources, 'AWS::ECS::Service') as [[string, CfnResource]];
    assert.equal(service.Properties.DesiredCount, 0);
    const [[providerId]] = resourcesOfType(resources, 'AWS::ECS::CapacityProvider') as [
      [string, CfnResource],
    ];
    assert.deepEqual(service.Properties.CapacityProviderStrategy, [
      { CapacityProvider: { Ref: providerId }, Weight: 1 },
    ]);
    const [[associationId]] = resourcesOfType(resources, 'AWS::ECS::ClusterCapacityProviderAssociations') as [
      [string, CfnResource],
    ];
    assert.ok([service.DependsOn].flat().includes(associationId as string));
  });

  it('sets the trainer count to the backlog (visible + in-flight messages), between 0 and maxWorkers', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 0,
      MaxCapacity: 4,
      ScalableDimension: 'ecs:service:DesiredCount',
    });
    const policies = resourcesOfType(resources, 'AWS::ApplicationAutoScaling::ScalingPolicy');
    assert.equal(policies.length, 2);
    for (const [, policy] of policies) {
      assert.equal(
        (policy.Properties.StepScalingPolicyConfiguration as { AdjustmentType: string }).AdjustmentType,
        'ExactCapacity',
      );
    }
    const queueName = { 'Fn::GetAtt': [logicalId(stack.jobQueue.queue), 'QueueName'] };
    for (const [, alarm] of resourcesOfType(resources, 'AWS::CloudWatch::Alarm').filter(([, a]) =>
      (a.Properties.AlarmActions as { Ref: string }[]).some((r) => policies.some(([id]) => id === r.Ref)),
    )) {
      const metrics = alarm.Properties.Metrics as {
        Expression?: string;
        MetricStat?: { Metric: { MetricName: string; Dimensions: unknown[] } };
      }[];
      assert.equal(metrics[0]?.Expression, 'FILL(visible, 0) + FILL(inFlight, 0)');
      assert.deepEqual(
        metrics.flatMap((m) => (m.MetricStat ? [m.MetricStat.Metric.MetricName] : [])).sort(),
        ['ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesVisible'],
      );
      for (const m of metrics) {
        if (m.MetricStat)
          assert.deepEqual(m.MetricStat.Metric.Dimensions, [{ Name: 'QueueName', Value: queueName }]);
      }
    }
  });

  it('maps every backlog from 0 to maxWorkers to as many trainers, and caps it there', () => {
    const trainersFor = (steps: ReturnType<typeof backlogScalingSteps>, backlog: number) =>
      steps.find(
        (s) =>
          (s.lower ?? 0) <= backlog && backlog < (s.upper ?? steps[steps.indexOf(s) + 1]?.lower ?? Infinity),
      )?.change;
    for (const max of [1, 4, 39]) {
      const steps = backlogScalingSteps(max);
      assert.equal(steps.length, max + 1);
      for (let backlog = 0; backlog <= max + 5; backlog++) {
        assert.equal(trainersFor(steps, backlog), Math.min(backlog, max), `max ${max}, backlog ${backlog}`);
      }
    }
    for (const max of [40, 100, 1000]) {
      const steps = backlogScalingSteps(max);
      assert.ok(steps.length <= 40, `${steps.length} steps for ${max}`);
      const changes = steps.map((s) => s.change);
      assert.deepEqual(changes.slice(0, 2), [0, 1]);
      assert.equal(changes.at(-1), max);
      assert.ok(changes.every((c, i) => i === 0 || c > (changes[i - 1] as number)));
      for (let backlog = 0; backlog <= max + 5; backlog++) {
        const n = trainersFor(steps, backlog) as number;
        assert.ok(n <= Math.min(backlog, max) && (backlog === 0 || n >= 1), `max ${max}, backlog ${backlog}`);
      }
    }
  });
});

describe('TrainingCluster trainer permissions', () => {
  const taskRoleId = logicalId(cluster.taskDefinition.taskRole as never);
  const statements = statementsOfRole(resources, taskRoleId);
  const bucketArn = { 'Fn::GetAtt': [logicalId(stack.artifacts.bucket), 'Arn'] };
  const queueArn = { 'Fn::GetAtt': [logicalId(stack.jobQueue.queue), 'Arn'] };

  it('names the bucket, the queue, the two keys and the cluster in every statement, and nothing else', () => {
    const byActions = new Map(statements.map((s) => [actionsOf(s).join(' '), s.Resource]));
    assert.deepEqual([...byActions.keys()].sort(), [
      'ecs:UpdateTaskProtection',
      'kms:Decrypt kms:GenerateDataKey',
      's3:AbortMultipartUpload s3:GetObject s3:PutObject',
      's3:DeleteObject',
      's3:ListBucket',
      'sqs:ChangeMessageVisibility sqs:DeleteMessage sqs:GetQueueAttributes sqs:ReceiveMessage sqs:SendMessage',
    ]);
    assert.deepEqual(byActions.get('s3:AbortMultipartUpload s3:GetObject s3:PutObject'), {
      'Fn::Join': ['', [bucketArn, '/tenants/*']],
    });
    assert.deepEqual(byActions.get('s3:ListBucket'), bucketArn);
    assert.deepEqual(
      byActions.get(
        'sqs:ChangeMessageVisibility sqs:DeleteMessage sqs:GetQueueAttributes sqs:ReceiveMessage sqs:SendMessage',
      ),
      queueArn,
    );
    assert.deepEqual(
      new Set(byActions.get('s3:DeleteObject') as unknown[]),
      new Set([
        { 'Fn::Join': ['', [bucketArn, '/tenants/*/jobs/*/checkpoints/*']] },
        { 'Fn::Join': ['', [bucketArn, '/tenants/*/active-slots/*']] },
      ]),
    );
    assert.deepEqual(
      new Set(byActions.get('kms:Decrypt kms:GenerateDataKey') as unknown[]),
      new Set([
        { 'Fn::GetAtt': [logicalId(stack.artifacts.encryptionKey as never), 'Arn'] },
        { 'Fn::GetAtt': [logicalId(stack.jobQueue.encryptionKey as never), 'Arn'] },
      ]),
    );
    const protection = JSON.stringify(byActions.get('ecs:UpdateTaskProtection'));
    assert.match(protection, new RegExp(`:task/"?,?\\{"Ref":"${logicalId(cluster.cluster)}"\\},"/\\*"`));
    assert.ok(statements.every((s) => s.Effect === 'Allow'));
  });

  it('never lets a trainer delete anything but checkpoints, nor touch versions or policies', () => {
    const actions = statements.flatMap(actionsOf);
    for (const forbidden of ['s3:DeleteObjectVersion', 's3:PutBucketPolicy', 'sqs:PurgeQueue']) {
      assert.ok(!actions.includes(forbidden), forbidden);
    }
  });

  it("configures the trainer through core/platform/config.ts's names, with the queue's visibility timeout as heartbeat", () => {
    const env = Object.fromEntries(container.Environment.map((e) => [e.Name, e.Value]));
    assert.deepEqual(env[ENV.bucket], { Ref: logicalId(stack.artifacts.bucket) });
    assert.deepEqual(env[ENV.queueUrl], { Ref: logicalId(stack.jobQueue.queue) });
    assert.equal(env[ENV.maxAttempts], '3');
    assert.equal(env[ENV.visibilityTimeoutSeconds], String(stack.jobQueue.visibilityTimeout.toSeconds()));
    template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: stack.jobQueue.visibilityTimeout.toSeconds(),
      RedrivePolicy: Match.anyValue(),
    });
    assert.ok(env[ENV.taskProtectionMinutes]);
    assert.equal(env[ENV.jobMemoryBytes], String(stack.settings.jobMemoryBytes));
    assert.deepEqual(env.AWS_REGION, { Ref: 'AWS::Region' });
  });
});
