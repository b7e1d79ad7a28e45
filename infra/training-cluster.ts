import { fileURLToPath } from 'node:url';
import { AspectPriority, Aspects, type CfnElement, Duration, Stack, Validations } from 'aws-cdk-lib';
import {
  AdjustmentType,
  MetricAggregationType,
  type ScalingInterval,
} from 'aws-cdk-lib/aws-applicationautoscaling';
import {
  AutoScalingGroup,
  GroupMetric,
  GroupMetrics,
  OnDemandAllocationStrategy,
  SpotAllocationStrategy,
} from 'aws-cdk-lib/aws-autoscaling';
import { MathExpression, Metric } from 'aws-cdk-lib/aws-cloudwatch';
import {
  FlowLogDestination,
  FlowLogTrafficType,
  GatewayVpcEndpointAwsService,
  InstanceType,
  type IVpc,
  LaunchTemplate,
  SecurityGroup,
  SubnetType,
  UserData,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import {
  AmiHardwareType,
  AsgCapacityProvider,
  AwsLogDriverMode,
  Cluster,
  type ContainerDefinition,
  ContainerImage,
  ContainerInsights,
  Ec2Service,
  Ec2TaskDefinition,
  EcsOptimizedImage,
  LinuxParameters,
  LogDrivers,
  NetworkMode,
} from 'aws-cdk-lib/aws-ecs';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct, type IConstruct } from 'constructs';
import { ENV } from '../core/platform/config.ts';
import type { ArtifactBucket } from './artifact-bucket.ts';
import type { JobQueue } from './job-queue.ts';
import { gpuLaunchTemplateDefaults } from './secure-defaults.ts';

const projectRoot = fileURLToPath(new URL('../', import.meta.url));

/** Where the ECS agent tells a container how to reach it; protection is set through it (`trainer/task-protection.ts`). */
const TASK_PROTECTION_DOC =
  'https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html';

/** Application Auto Scaling takes at most 40 steps in one step-scaling policy (one is the "zero" step). */
const MAX_SCALING_STEPS = 40;

export interface TrainingClusterProps {
  /** The bucket the trainers read datasets from and write results to. */
  readonly artifacts: ArtifactBucket;
  /** The queue the trainers receive jobs from; its backlog scales the cluster. */
  readonly jobQueue: JobQueue;
  /**
   * GPU instance types the Auto Scaling group may launch, best first (each must have an NVIDIA GPU and
   * the x86_64 architecture of the trainer image).
   * @default ['g5.xlarge', 'g4dn.xlarge']
   */
  readonly instanceTypes?: readonly string[];
  /**
   * Most trainers running at once; the cluster scales between zero and this on the backlog, with one
   * trainer per GPU.
   * @default 4
   */
  readonly maxWorkers?: number;
  /**
   * Launch the GPU instances on Spot (price-capacity optimized across `instanceTypes`).
   * @default false
   */
  readonly spot?: boolean;
  /**
   * The VPC to run in; its private subnets with egress host the instances.
   * @default - a new two-AZ VPC with one NAT gateway, an S3 gateway endpoint and flow logs
   */
  readonly vpc?: IVpc;
  /**
   * NAT gateways of the new VPC (only when `vpc` is not given).
   * @default 1
   */
  readonly natGateways?: number;
  /**
   * The trainer image.
   * @default - built from `trainer/Dockerfile` (linux/amd64) at deploy time and pushed to the CDK assets repository
   */
  readonly image?: ContainerImage;
  /**
   * How long the trainer's logs (and the VPC's flow logs) are kept.
   * @default RetentionDays.ONE_MONTH
   */
  readonly logRetention?: RetentionDays;
  /**
   * Memory (MiB) reserved for a trainer; it may use more if the instance has it.
   * @default 8192
   */
  readonly memoryReservationMiB?: number;
  /**
   * CPU units (1024 per vCPU) reserved for a trainer.
   * @default 2048
   */
  readonly cpu?: number;
  /**
   * Size of each instance's encrypted root volume (the trainer image and its CUDA libraries live there).
   * @default 100
   */
  readonly rootVolumeGiB?: number;
  /**
   * Minutes one task scale-in protection lasts; the trainer renews it every third of that while a job
   * trains, so a hung trainer loses its protection by itself.
   * @default 60
   */
  readonly taskProtectionMinutes?: number;
  /**
   * Price of one trainer instance-hour in USD, for each job's cost estimate.
   * @default 0 (no estimate)
   */
  readonly hourlyPriceUsd?: number;
  /**
   * The memory one job may need by its resource estimate; the trainer refuses a job over it (or over
   * the container's memory, whichever is less) with RESOURCE_LIMIT before building its model.
   * @default - the trainer's default (`DEFAULT_LIMITS.jobMemoryBytes`, 2 GiB)
   */
  readonly jobMemoryBytes?: number;
}

/**
 * Where the trainers run: an ECS cluster (Container Insights on) whose only capacity is an Auto Scaling
 * group of GPU instances (ECS-optimized GPU AMI, Amazon Linux 2023, resolved from SSM at deploy time)
 * behind a capacity provider with managed scaling, managed termination protection and managed
 * draining. The trainer service runs one task per GPU (`gpuCount: 1`) and scales between zero and
 * `maxWorkers` on the jobs queue's backlog (visible + in-flight messages), so an idle cluster costs
 * no instance; a trainer protects its task from scale-in while it trains.
 */
export class TrainingCluster extends Construct {
  /** The VPC of the GPU instances. */
  public readonly vpc: IVpc;
  /** The ECS cluster. */
  public readonly cluster: Cluster;
  /** The GPU instances. */
  public readonly autoScalingGroup: AutoScalingGroup;
  /** The cluster's only capacity provider. */
  public readonly capacityProvider: AsgCapacityProvider;
  /** The trainer task definition (EC2, one GPU). */
  public readonly taskDefinition: Ec2TaskDefinition;
  /** The trainer container. */
  public readonly container: ContainerDefinition;
  /** The trainer service. */
  public readonly service: Ec2Service;
  /** The trainers' logs (JSON lines and the embedded-format metrics). */
  public readonly logGroup: LogGroup;
  /** Jobs waiting or training: the queue's visible plus in-flight messages, per minute. */
  public readonly backlog: MathExpression;
  /** Most trainers running at once. */
  public readonly maxWorkers: number;

  constructor(scope: Construct, id: string, props: TrainingClusterProps) {
    super(scope, id);
    const instanceTypes = props.instanceTypes ?? ['g5.xlarge', 'g4dn.xlarge'];
    if (instanceTypes.length === 0)
      throw new Error('instanceTypes must name at least one GPU instance type.');
    this.maxWorkers = props.maxWorkers ?? 4;
    if (!Number.isInteger(this.maxWorkers) || this.maxWorkers < 1) {
      throw new Error(`maxWorkers must be a positive integer, got ${this.maxWorkers}.`);
    }
    const logRetention = props.logRetention ?? RetentionDays.ONE_MONTH;

    this.vpc = props.vpc ?? this.newVpc(props.natGateways ?? 1, logRetention);

    this.cluster = new Cluster(this, 'Cluster', {
      vpc: this.vpc,
      containerInsightsV2: ContainerInsights.ENABLED,
    });

    // --- GPU instances ---
    const instanceRole = new Role(this, 'InstanceRole', {
      assumedBy: new ServicePrincipal('ec2.amazonaws.com'),
      description: 'ECS container agent on the descent GPU instances',
    });
    const securityGroup = new SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc: this.vpc,
      description: 'descent GPU instances: no inbound traffic; outbound to S3, SQS, ECR, ECS and CloudWatch',
      allowAllOutbound: true,
    });
    const userData = UserData.forLinux();
    if (props.spot) {
      // The agent drains the instance on a Spot interruption notice: trainers get SIGTERM and release their job.
      userData.addCommands('echo ECS_ENABLE_SPOT_INSTANCE_DRAINING=true >> /etc/ecs/ecs.config');
    }
    const launchTemplate = new LaunchTemplate(this, 'LaunchTemplate', {
      ...gpuLaunchTemplateDefaults(props.rootVolumeGiB ?? 100),
      machineImage: EcsOptimizedImage.amazonLinux2023(AmiHardwareType.GPU),
      userData,
      role: instanceRole,
      securityGroup,
    });
    this.autoScalingGroup = new AutoScalingGroup(this, 'GpuInstances', {
      vpc: this.vpc,
      vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
      mixedInstancesPolicy: {
        launchTemplate,
        launchTemplateOverrides: instanceTypes.map((t) => ({ instanceType: new InstanceType(t) })),
        instancesDistribution: props.spot
          ? {
              onDemandBaseCapacity: 0,
              onDemandPercentageAboveBaseCapacity: 0,
              spotAllocationStrategy: SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED,
            }
          : {
              onDemandBaseCapacity: 0,
              onDemandPercentageAboveBaseCapacity: 100,
              onDemandAllocationStrategy: OnDemandAllocationStrategy.PRIORITIZED,
            },
      },
      // Scales from zero: the capacity provider sets the desired count from the tasks waiting for a GPU.
      minCapacity: 0,
      maxCapacity: this.maxWorkers,
      capacityRebalance: props.spot ?? false,
      cooldown: Duration.minutes(5),
      groupMetrics: [
        new GroupMetrics(
          GroupMetric.IN_SERVICE_INSTANCES,
          GroupMetric.PENDING_INSTANCES,
          GroupMetric.DESIRED_CAPACITY,
        ),
      ],
    });
    this.capacityProvider = new AsgCapacityProvider(this, 'GpuCapacity', {
      autoScalingGroup: this.autoScalingGroup,
      enableManagedScaling: true,
      enableManagedTerminationProtection: true,
      enableManagedDraining: true,
      targetCapacityPercent: 100,
    });
    this.cluster.addAsgCapacityProvider(this.capacityProvider);

    // --- Trainer task ---
    this.logGroup = new LogGroup(this, 'TrainerLogs', { retention: logRetention });
    this.taskDefinition = new Ec2TaskDefinition(this, 'Trainer', { networkMode: NetworkMode.BRIDGE });
    this.container = this.taskDefinition.addContainer('trainer', {
      image:
        props.image ??
        ContainerImage.fromAsset(projectRoot, {
          file: 'trainer/Dockerfile',
          platform: Platform.LINUX_AMD64,
        }),
      gpuCount: 1,
      cpu: props.cpu ?? 2048,
      memoryReservationMiB: props.memoryReservationMiB ?? 8192,
      // Time between SIGTERM and SIGKILL: the trainer stops at the end of the current epoch and releases its job.
      stopTimeout: Duration.minutes(2),
      linuxParameters: new LinuxParameters(this, 'TrainerLinux', { initProcessEnabled: true }),
      logging: LogDrivers.awsLogs({
        logGroup: this.logGroup,
        streamPrefix: 'trainer',
        mode: AwsLogDriverMode.NON_BLOCKING,
      }),
      environment: {
        // The ECS agent does not set the region on EC2, and the SDK does not ask the (blocked) instance metadata.
        AWS_REGION: Stack.of(this).region,
        [ENV.logLevel]: 'info',
        [ENV.taskProtectionMinutes]: String(props.taskProtectionMinutes ?? 60),
        [ENV.hourlyPriceUsd]: String(props.hourlyPriceUsd ?? 0),
        ...(props.jobMemoryBytes ? { [ENV.jobMemoryBytes]: String(props.jobMemoryBytes) } : {}),
      },
    });
    const taskRole = this.taskDefinition.taskRole;
    props.artifacts.grantTrainerTo(taskRole, this.container);
    props.jobQueue.grantConsumeTo(taskRole, this.container);
    // `PUT $ECS_AGENT_URI/task-protection/v1/state`: the agent calls ecs:UpdateTaskProtection as the task role.
    this.cluster.grantTaskProtection(taskRole);

    this.service = new Ec2Service(this, 'TrainerService', {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      // Zero at creation (the deploy does not wait for a GPU); the backlog policy below sets it from then on.
      desiredCount: 0,
      // A deployment replaces idle trainers at once; busy ones are protected and finish their job first.
      minHealthyPercent: 0,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      capacityProviderStrategies: [
        { capacityProvider: this.capacityProvider.capacityProviderName, weight: 1 },
      ],
    });

    // The cluster creates its capacity provider association at synthesis (in an aspect); a service that
    // names the provider must wait for it, or CloudFormation may create the service first and fail.
    const service = this.service;
    const cluster = this.cluster;
    Aspects.of(service).add(
      {
        visit(node: IConstruct) {
          const associations = node === service ? cluster.node.tryFindChild(cluster.node.id) : undefined;
          if (associations) service.node.addDependency(associations);
        },
      },
      // After the cluster's own (mutating) aspect; this one only adds a dependency.
      { priority: AspectPriority.READONLY },
    );

    // --- Scaling on the backlog ---
    const perMinute = { period: Duration.minutes(1), statistic: 'Maximum' };
    this.backlog = new MathExpression({
      expression: 'FILL(visible, 0) + FILL(inFlight, 0)',
      usingMetrics: {
        visible: props.jobQueue.queue.metricApproximateNumberOfMessagesVisible(perMinute),
        inFlight: props.jobQueue.queue.metricApproximateNumberOfMessagesNotVisible(perMinute),
      },
      period: Duration.minutes(1),
      label: 'Jobs waiting or training',
    });
    const taskCount = this.service.autoScaleTaskCount({ minCapacity: 0, maxCapacity: this.maxWorkers });
    taskCount.scaleOnMetric('ScaleOnBacklog', {
      metric: this.backlog,
      scalingSteps: backlogScalingSteps(this.maxWorkers),
      adjustmentType: AdjustmentType.EXACT_CAPACITY,
      metricAggregationType: MetricAggregationType.MAXIMUM,
      evaluationPeriods: 1,
    });

    this.acknowledgeFindings(instanceRole);
  }

  /** GPU instances in service (the Auto Scaling group's metric, collected every minute). */
  metricInstancesInService(): Metric {
    return new Metric({
      namespace: 'AWS/AutoScaling',
      metricName: 'GroupInServiceInstances',
      dimensionsMap: { AutoScalingGroupName: this.autoScalingGroup.autoScalingGroupName },
      statistic: 'Maximum',
      period: Duration.minutes(1),
    });
  }

  /** Trainer tasks running (Container Insights). */
  metricRunningTrainers(): Metric {
    return new Metric({
      namespace: 'ECS/ContainerInsights',
      metricName: 'RunningTaskCount',
      dimensionsMap: { ClusterName: this.cluster.clusterName, ServiceName: this.service.serviceName },
      statistic: 'Maximum',
      period: Duration.minutes(1),
    });
  }

  private newVpc(natGateways: number, retention: RetentionDays): Vpc {
    return new Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways,
      subnetConfiguration: [
        { name: 'public', subnetType: SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'trainers', subnetType: SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      // Artifacts and image layers (ECR keeps them in S3) go through the free gateway, not the NAT.
      gatewayEndpoints: { S3: { service: GatewayVpcEndpointAwsService.S3 } },
      flowLogs: {
        all: {
          destination: FlowLogDestination.toCloudWatchLogs(new LogGroup(this, 'FlowLogs', { retention })),
          trafficType: FlowLogTrafficType.ALL,
        },
      },
    });
  }

  /** cdk-nag findings that have no fix, each with why it is acceptable here. */
  private acknowledgeFindings(instanceRole: Role): void {
    const stack = Stack.of(this);
    const clusterId = stack.getLogicalId(this.cluster.node.defaultChild as CfnElement);
    Validations.of(this.autoScalingGroup).acknowledge({
      id: 'AwsSolutions-AS3',
      reason:
        'The group scales from zero with every burst of jobs, so launch/terminate notifications would drown the ops topic; a launch that fails (GPU quota or capacity) raises the "oldest job too old" alarm, and the group\'s activity history keeps every event.',
    });
    Validations.of(this.autoScalingGroup).acknowledge({
      id: 'AwsSolutions-EC26',
      reason:
        "The launch template's only block device (the root volume) is encrypted; the rule cannot follow a mixed-instances policy to its launch template and throws.",
    });
    // Statements that `Cluster.addAsgCapacityProvider` gives the ECS container agent.
    Validations.of(instanceRole).acknowledge({
      id: 'AwsSolutions-IAM5[Action::ecs:Submit*]',
      reason:
        'The ECS agent reports container and task state with ecs:SubmitContainerStateChange / SubmitTaskStateChange / SubmitAttachmentStateChanges; the statement is scoped to this cluster.',
    });
    Validations.of(instanceRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ecs:DiscoverPollEndpoint, ecr:GetAuthorizationToken and the agent log actions support no resource scoping; ecs:Poll and ecs:StartTelemetrySession carry an ecs:cluster condition on this cluster.',
    });
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The execution role pulls the trainer image, and ecr:GetAuthorizationToken supports no resource scoping.',
    });
    Validations.of(this.taskDefinition).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<${clusterId}>/*]`,
      reason: `A trainer protects its own task from scale-in (ecs:UpdateTaskProtection, ${TASK_PROTECTION_DOC}); task ids are known only at run time, so the grant covers this cluster's tasks.`,
    });
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason:
        'The environment holds only resource names (bucket, queue URLs, region) and limits, no secret; the task role grants the access.',
    });
  }
}

/**
 * The steps of the backlog scaling policy: the trainer count is set to the backlog (each trainer works on
 * one job at a time), from 0 up to `maxWorkers`. The bounds sit halfway between integers, so a backlog
 * of exactly n never falls on a boundary. Past 39 workers the counts are spread geometrically (the
 * policy holds 40 steps at most): the count is then the largest listed one not above the backlog.
 */
export function backlogScalingSteps(maxWorkers: number): ScalingInterval[] {
  const counts: number[] = [];
  const stepsForWorkers = MAX_SCALING_STEPS - 1;
  if (maxWorkers <= stepsForWorkers) {
    for (let n = 1; n <= maxWorkers; n++) counts.push(n);
  } else {
    const ratio = maxWorkers ** (1 / (stepsForWorkers - 1));
    for (let i = 0; i < stepsForWorkers; i++) {
      const n = i === stepsForWorkers - 1 ? maxWorkers : Math.round(ratio ** i);
      if (n > (counts[counts.length - 1] ?? 0)) counts.push(n);
    }
  }
  return [{ upper: 0.5, change: 0 }, ...counts.map((n) => ({ lower: n - 0.5, change: n }))];
}
