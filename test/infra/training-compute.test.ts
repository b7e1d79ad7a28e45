/**
 * Training on AWS Batch: the GPU compute environments, the job queue's capacity-wait limit, the
 * trainer's job definition and retry strategy, the dispatcher and the Batch job-state events; and what
 * is gone (the ECS service, its capacity provider and Auto Scaling group). Properties of the
 * synthesized template, not snapshots.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { BATCH_JOB_QUEUE_BLOCKED, BATCH_JOB_STATE_CHANGE } from '../../aws/batch-events.ts';
import { TRAINER_EXIT } from '../../aws/batch-jobs.ts';
import { ENV } from '../../core/platform/config.ts';
import { parseInstanceCatalogue } from '../../core/platform/gpu-instances.ts';
import { type CfnResource, resourcesOfType, statementsOfRole, synthesize } from './synth.ts';

const { app, stack, template, resources, logicalId } = synthesize();
const training = stack.training;
const [[, jobDefinition]] = resourcesOfType(resources, 'AWS::Batch::JobDefinition') as [
  [string, CfnResource],
];
const container = jobDefinition.Properties.ContainerProperties as {
  Environment: { Name: string; Value: unknown }[];
  ResourceRequirements: { Type: string; Value: string }[];
};
const envOf = (name: string) => container.Environment.find((e) => e.Name === name)?.Value;

describe('TrainingCompute: the GPU compute environment', () => {
  it('is a managed EC2 environment of GPU instances that starts from 0 vCPUs, on the ECS GPU AMI', () => {
    template.resourceCountIs('AWS::Batch::ComputeEnvironment', 1);
    template.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
      Type: 'managed',
      ComputeResources: Match.objectLike({
        Type: 'EC2',
        MinvCpus: 0,
        // 4 workers × 4 vCPUs (the largest of g5.xlarge and g4dn.xlarge).
        MaxvCpus: 16,
        InstanceTypes: ['g5.xlarge', 'g4dn.xlarge'],
        Ec2Configuration: [{ ImageType: 'ECS_AL2023_NVIDIA' }],
        Subnets: training.vpc.privateSubnets.map((s) => ({ Ref: logicalId(s as never) })),
        LaunchTemplate: { LaunchTemplateId: { Ref: Match.anyValue() } },
      }),
    });
  });

  it('launches instances with IMDSv2 only (hop limit 1), an encrypted root volume and a 2-minute stop timeout', () => {
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({
        BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: Match.objectLike({ Encrypted: true }) }],
        MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
      }),
    });
    const [[, launchTemplate]] = resourcesOfType(resources, 'AWS::EC2::LaunchTemplate') as [
      [string, CfnResource],
    ];
    const userData = JSON.stringify(launchTemplate.Properties.LaunchTemplateData);
    // Batch accepts only MIME multipart user data.
    assert.match(userData, /multipart\/mixed/);
    assert.match(userData, /ECS_CONTAINER_STOP_TIMEOUT=120s/);
    assert.doesNotMatch(userData, /SPOT_INSTANCE_DRAINING/);
  });

  it('with the spot setting, adds a Spot environment first in the queue, on-demand second, with Spot draining', () => {
    const spot = synthesize({}, { 'descent:spot': 'true', 'descent:instanceTypes': 'g6.xlarge,g5.2xlarge' });
    spot.template.resourceCountIs('AWS::Batch::ComputeEnvironment', 2);
    spot.template.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
      ComputeResources: Match.objectLike({
        Type: 'SPOT',
        AllocationStrategy: 'SPOT_PRICE_CAPACITY_OPTIMIZED',
        MinvCpus: 0,
        MaxvCpus: 32,
        InstanceTypes: ['g6.xlarge', 'g5.2xlarge'],
      }),
    });
    const id = (env: unknown) => ({ 'Fn::GetAtt': [spot.logicalId(env as never), 'ComputeEnvironmentArn'] });
    spot.template.hasResourceProperties('AWS::Batch::JobQueue', {
      ComputeEnvironmentOrder: [
        { ComputeEnvironment: id(spot.stack.training.spot), Order: 1 },
        { ComputeEnvironment: id(spot.stack.training.onDemand), Order: 2 },
      ],
    });
    const [[, lt]] = resourcesOfType(spot.resources, 'AWS::EC2::LaunchTemplate') as [[string, CfnResource]];
    assert.match(JSON.stringify(lt.Properties), /ECS_ENABLE_SPOT_INSTANCE_DRAINING=true/);
  });

  it('builds a VPC without context lookups: two AZs, private subnets, flow logs, an S3 gateway endpoint', () => {
    assert.equal(app.synth().manifest.missing, undefined, 'the app needed a context lookup');
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
    template.hasResourceProperties('AWS::EC2::FlowLog', { ResourceType: 'VPC', TrafficType: 'ALL' });
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway' });
  });

  it('has no ECS service, capacity provider, Auto Scaling group or task definition any more', () => {
    for (const type of [
      'AWS::ECS::Service',
      'AWS::ECS::Cluster',
      'AWS::ECS::CapacityProvider',
      'AWS::ECS::ClusterCapacityProviderAssociations',
      'AWS::ECS::TaskDefinition',
      'AWS::AutoScaling::AutoScalingGroup',
      'AWS::ApplicationAutoScaling::ScalingPolicy',
    ]) {
      template.resourceCountIs(type, 0);
    }
  });
});

describe('TrainingCompute: the job queue', () => {
  it('cancels a job that waits for EC2 capacity past the capacity wait, and a misplaced one after 10 minutes', () => {
    template.hasResourceProperties('AWS::Batch::JobQueue', {
      JobStateTimeLimitActions: Match.arrayWith([
        {
          Action: 'CANCEL',
          State: 'RUNNABLE',
          MaxTimeSeconds: 3600,
          Reason: 'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY',
        },
        {
          Action: 'CANCEL',
          State: 'RUNNABLE',
          MaxTimeSeconds: 600,
          Reason: 'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE',
        },
        {
          Action: 'CANCEL',
          State: 'RUNNABLE',
          MaxTimeSeconds: 600,
          Reason: 'MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS',
        },
      ]),
    });
    const quick = synthesize({}, { 'descent:capacityWaitMinutes': '15' });
    quick.template.hasResourceProperties('AWS::Batch::JobQueue', {
      JobStateTimeLimitActions: Match.arrayWith([
        Match.objectLike({ MaxTimeSeconds: 900, Reason: 'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY' }),
      ]),
    });
  });
});

describe('TrainingCompute: the trainer job definition', () => {
  it('runs the trainer image on EC2 with one GPU, the vCPUs and most of the memory of the smallest type', () => {
    assert.deepEqual(jobDefinition.Properties.PlatformCapabilities, ['EC2']);
    assert.deepEqual(Object.fromEntries(container.ResourceRequirements.map((r) => [r.Type, r.Value])), {
      GPU: '1',
      VCPU: '4',
      MEMORY: '14336',
    });
    template.hasResourceProperties('AWS::Batch::JobDefinition', {
      ContainerProperties: Match.objectLike({
        LinuxParameters: { InitProcessEnabled: true },
        LogConfiguration: Match.objectLike({ LogDriver: 'awslogs' }),
        Image: { 'Fn::Sub': Match.stringLikeRegexp('container-assets') },
      }),
    });
  });

  it('insists on the TensorFlow backend on a GPU (DESCENT_BACKEND=tensorflow, DESCENT_REQUIRE_GPU) with nvidia-smi', () => {
    assert.equal(envOf(ENV.backend), 'tensorflow');
    assert.equal(envOf(ENV.requireGpu), 'true');
    assert.equal(envOf('NVIDIA_DRIVER_CAPABILITIES'), 'compute,utility');
  });

  it("gives the trainer each instance type's vCPUs, GPU and price, with descent:instancePrices applied", () => {
    const catalogue = parseInstanceCatalogue(String(envOf(ENV.instanceTypes)), ENV.instanceTypes);
    assert.deepEqual(catalogue, [
      { type: 'g5.xlarge', vcpus: 4, gpu: 'A10G', hourlyPriceUsd: 1.006 },
      { type: 'g4dn.xlarge', vcpus: 4, gpu: 'Tesla T4', hourlyPriceUsd: 0.526 },
    ]);
    const priced = synthesize({}, { 'descent:instancePrices': '{"g4dn.xlarge": 0.2}' });
    const [[, def]] = resourcesOfType(priced.resources, 'AWS::Batch::JobDefinition') as [
      [string, CfnResource],
    ];
    assert.match(
      JSON.stringify(def.Properties),
      /\\"type\\":\\"g4dn.xlarge\\",\\"vcpus\\":4,\\"gpu\\":\\"Tesla T4\\",\\"hourlyPriceUsd\\":0.2/,
    );
  });

  it('retries a lost host or Spot reclaim and a trainer temporary error, never anything else', () => {
    template.hasResourceProperties('AWS::Batch::JobDefinition', {
      RetryStrategy: {
        Attempts: 3,
        EvaluateOnExit: [
          { Action: 'RETRY', OnStatusReason: 'Host EC2*' },
          { Action: 'RETRY', OnExitCode: String(TRAINER_EXIT.retry) },
          { Action: 'EXIT', OnReason: '*' },
        ],
      },
    });
    // A ceiling per attempt: the longest run a job may ask for plus the grace (each job gets its own).
    template.hasResourceProperties('AWS::Batch::JobDefinition', {
      Timeout: { AttemptDurationSeconds: 604_800 + 900 },
    });
    const five = synthesize({}, { 'descent:maxAttempts': '5' });
    five.template.hasResourceProperties('AWS::Batch::JobDefinition', {
      RetryStrategy: Match.objectLike({ Attempts: 5 }),
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
    for (const needed of ['aws', 'core', 'trainer', 'package.json', 'package-lock.json'])
      assert.ok(topLevel.has(needed), needed);
    for (const absent of ['infra', 'functions', 'local', 'test', 'docs'])
      assert.ok(!topLevel.has(absent), absent);
    assert.ok(!files.some((f) => f.endsWith('.test.ts')));
  });

  it('lets the trainer delete only checkpoints, active-jobs slots and active-sweep markers, and never queue, submit or terminate', () => {
    const statements = statementsOfRole(resources, logicalId(training.jobRole));
    const actions = new Set(statements.flatMap((s) => [s.Action].flat()));
    for (const forbidden of [
      'sqs:SendMessage',
      'batch:SubmitJob',
      'batch:TerminateJob',
      's3:DeleteObjectVersion',
    ])
      assert.ok(!actions.has(forbidden), forbidden);
    const deletes = statements.filter((s) => [s.Action].flat().includes('s3:DeleteObject'));
    const keys = JSON.stringify(deletes.map((s) => s.Resource));
    for (const key of [
      'tenants/*/jobs/*/checkpoints/*',
      'tenants/*/active-slots/*',
      'tenants/*/active-sweeps/*',
    ])
      assert.ok(keys.includes(key), key);
    assert.ok(!keys.includes('"tenants/*/jobs/*"'));
  });
});

describe('JobDispatch', () => {
  it('feeds the jobs queue to the dispatcher, which may submit to the job queue with the job definition', () => {
    const dispatcher = logicalId(stack.dispatch.dispatcher);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [logicalId(stack.jobQueue.queue), 'Arn'] },
      FunctionName: { Ref: dispatcher },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 5 },
    });
    const statements = statementsOfRole(resources, logicalId(stack.dispatch.dispatcher.functionRole));
    const submit = statements.find((s) => [s.Action].flat().includes('batch:SubmitJob'));
    assert.deepEqual(submit?.Resource, [
      { 'Fn::GetAtt': [logicalId(training.jobQueue), 'JobQueueArn'] },
      { Ref: logicalId(training.jobDefinition) },
    ]);
    // Six times the dispatcher's timeout (Lambda's advice for an SQS event source).
    template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 180,
      RedrivePolicy: Match.objectLike({ maxReceiveCount: 3 }),
    });
  });

  it("sends Batch's job-state and queue-blocked events of descent's job queue to their handler, with retries and a DLQ", () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.batch'],
        'detail-type': [BATCH_JOB_STATE_CHANGE, BATCH_JOB_QUEUE_BLOCKED],
        detail: { jobQueue: [{ 'Fn::GetAtt': [logicalId(training.jobQueue), 'JobQueueArn'] }] },
      },
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [logicalId(stack.dispatch.batchEventsHandler), 'Arn'] },
          DeadLetterConfig: {
            Arn: { 'Fn::GetAtt': [logicalId(stack.dispatch.batchEventsDeadLetterQueue), 'Arn'] },
          },
          RetryPolicy: Match.objectLike({ MaximumRetryAttempts: 185 }),
        }),
      ],
    });
  });

  it('runs the capacity watch every 5 minutes, which may list and terminate Batch jobs and touch nothing else', () => {
    const watch = stack.dispatch.capacityWatch;
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(5 minutes)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [logicalId(watch), 'Arn'] } })],
    });
    const actions = statementsOfRole(resources, logicalId(watch.functionRole))
      .flatMap((s) => [s.Action].flat())
      .filter((a) => !/^(logs|xray):/.test(a))
      .sort();
    assert.deepEqual(actions, ['batch:ListJobs', 'batch:TerminateJob']);
    const fn = resources[logicalId(watch)];
    assert.ok(fn);
    const env = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    assert.equal(env[ENV.bucket], undefined);
    assert.deepEqual(env[ENV.batchJobQueue], { 'Fn::GetAtt': [logicalId(training.jobQueue), 'JobQueueArn'] });
  });

  it("lets the functions that change a job's status and the trainer put descent events on the default bus, and no one else", () => {
    const putters = resourcesOfType(resources, 'AWS::IAM::Policy')
      .filter(([, p]) => JSON.stringify(p.Properties.PolicyDocument).includes('events:PutEvents'))
      .flatMap(([, p]) => (p.Properties.Roles as { Ref: string }[]).map((r) => r.Ref));
    assert.ok(putters.includes(logicalId(training.jobRole)), 'the trainer');
    assert.ok(putters.includes(logicalId(stack.dispatch.batchEventsHandler.functionRole)), 'Batch events');
    assert.ok(
      !putters.includes(logicalId(stack.dispatch.dispatcher.functionRole)),
      'the dispatcher changes no status',
    );
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Effect: 'Allow',
            Action: 'events:PutEvents',
            Resource: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([':event-bus/default'])] }),
            Condition: { StringEquals: { 'events:source': 'descent' } },
          },
        ]),
      },
    });
  });
});
