import { fileURLToPath } from 'node:url';
import { Duration, Size, Stack, Validations } from 'aws-cdk-lib';
import {
  Action,
  EcsEc2ContainerDefinition,
  EcsJobDefinition,
  EcsMachineImageType,
  JobQueue,
  JobStateTimeLimitActionsAction,
  JobStateTimeLimitActionsReason,
  JobStateTimeLimitActionsState,
  LinuxParameters,
  ManagedEc2EcsComputeEnvironment,
  Reason,
  RetryStrategy,
} from 'aws-cdk-lib/aws-batch';
import {
  FlowLogDestination,
  FlowLogTrafficType,
  GatewayVpcEndpointAwsService,
  InstanceType,
  type IVpc,
  LaunchTemplate,
  MultipartBody,
  MultipartUserData,
  SecurityGroup,
  SubnetType,
  UserData,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import { ContainerImage, LogDriver } from 'aws-cdk-lib/aws-ecs';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { attemptDurationFor, TRAINER_EXIT } from '../aws/batch-jobs.ts';
import { TRAINER_GRANTS } from '../core/api/grants.ts';
import { ENV } from '../core/platform/config.ts';
import { type GpuInstanceType, gpuInstanceType, maxvCpusFor } from '../core/platform/gpu-instances.ts';
import type { ArtifactBucket } from './artifact-bucket.ts';
import { applyGrants } from './grants.ts';
import { gpuLaunchTemplateDefaults } from './secure-defaults.ts';

const projectRoot = fileURLToPath(new URL('../', import.meta.url));

/** Batch's capacity-wait limits act only on jobs at least this long at the head of the queue. */
const MIN_TIME_LIMIT = Duration.minutes(10);

export interface TrainingComputeProps {
  /** The bucket the trainer reads datasets from and writes results to. */
  readonly artifacts: ArtifactBucket;
  /**
   * GPU instance types Batch may launch, best first; each must be in `GPU_INSTANCE_TYPES`.
   * @default ['g5.xlarge', 'g4dn.xlarge']
   */
  readonly instanceTypes?: readonly string[];
  /**
   * Most jobs training at once; the compute environments' maximum vCPUs is this times the largest
   * vCPU count among `instanceTypes`.
   * @default 4
   */
  readonly maxWorkers?: number;
  /**
   * Add a Spot compute environment, first in the job queue's order (the on-demand one second).
   * @default false
   */
  readonly spot?: boolean;
  /**
   * Batch attempts of a job: a lost host, a Spot reclaim or a trainer's temporary error each take one.
   * @default 3
   */
  readonly maxAttempts?: number;
  /**
   * The longest run a job may ask for (`descent:maxRuntimeSeconds`): with a grace for loading and
   * publishing, the job definition's attempt timeout (each job's own is set when it is submitted).
   * @default Duration.days(7)
   */
  readonly maxRuntime?: Duration;
  /**
   * How long a job may wait for GPU capacity that EC2 cannot give before Batch cancels it.
   * @default Duration.hours(1)
   */
  readonly capacityWait?: Duration;
  /**
   * Hourly prices (USD) replacing the catalogue's, by instance type, for cost estimates.
   * @default - the catalogue's us-east-1 on-demand prices
   */
  readonly instancePrices?: Readonly<Record<string, number>>;
  /**
   * The settings every process reads (`infra/runtime-environment.ts`), set on the trainer's container.
   * @default - none: the trainer uses `DEFAULT_LIMITS`
   */
  readonly runtimeEnvironment?: Readonly<Record<string, string>>;
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
   * Size of each instance's encrypted root volume (the trainer image and its CUDA libraries live there).
   * @default 100
   */
  readonly rootVolumeGiB?: number;
}

/**
 * Where training runs: AWS Batch on a managed EC2 GPU compute environment that starts from 0 vCPUs
 * (ECS-optimized Amazon Linux 2023 GPU AMI, IMDSv2 only, encrypted root volume, private subnets), with
 * an optional Spot environment tried first; a job queue whose capacity-wait limit cancels a job that
 * EC2 cannot give a GPU (the job then FAILS with NO_GPU_CAPACITY); and the trainer's job definition:
 * one GPU, `DESCENT_BACKEND=tensorflow` with the GPU required, a retry strategy that retries a lost
 * host, a Spot reclaim and a trainer's temporary error, and never a job's own failure.
 */
export class TrainingCompute extends Construct {
  public readonly vpc: IVpc;
  /** The on-demand GPU compute environment. */
  public readonly onDemand: ManagedEc2EcsComputeEnvironment;
  /** The Spot GPU compute environment, when `spot` is on. */
  public readonly spot?: ManagedEc2EcsComputeEnvironment;
  /** The Batch job queue that the dispatcher submits to. */
  public readonly jobQueue: JobQueue;
  /** The trainer's job definition. */
  public readonly jobDefinition: EcsJobDefinition;
  /** The trainer's role (what a training job may touch: `TRAINER_GRANTS`). */
  public readonly jobRole: Role;
  /** The trainers' logs (JSON lines and the embedded-format metrics). */
  public readonly logGroup: LogGroup;
  /** Maximum vCPUs of each compute environment (`maxWorkers` × the largest instance's vCPUs). */
  public readonly maxvCpus: number;
  /** The instance types, with vCPUs, GPU and the price used for cost estimates. */
  public readonly instanceTypes: readonly GpuInstanceType[];

  constructor(scope: Construct, id: string, props: TrainingComputeProps) {
    super(scope, id);
    this.instanceTypes = (props.instanceTypes ?? ['g5.xlarge', 'g4dn.xlarge']).map((name) => {
      const known = gpuInstanceType(name);
      if (!known) throw new Error(`Unknown GPU instance type ${name} (core/platform/gpu-instances.ts).`);
      return { ...known, hourlyPriceUsd: props.instancePrices?.[name] ?? known.hourlyPriceUsd };
    });
    if (this.instanceTypes.length === 0)
      throw new Error('instanceTypes must name at least one GPU instance type.');
    const maxWorkers = props.maxWorkers ?? 4;
    if (!Number.isInteger(maxWorkers) || maxWorkers < 1)
      throw new Error(`maxWorkers must be a positive integer, got ${maxWorkers}.`);
    this.maxvCpus = maxvCpusFor(
      this.instanceTypes.map((t) => t.type),
      maxWorkers,
    );
    const logRetention = props.logRetention ?? RetentionDays.ONE_MONTH;
    this.vpc = props.vpc ?? this.newVpc(props.natGateways ?? 1, logRetention);

    const launchTemplate = new LaunchTemplate(this, 'LaunchTemplate', {
      ...gpuLaunchTemplateDefaults(props.rootVolumeGiB ?? 100),
      userData: instanceUserData(props.spot ?? false),
    });
    const securityGroup = new SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc: this.vpc,
      description:
        'descent GPU instances: no inbound traffic; outbound to S3, SQS, ECR, Batch, ECS and CloudWatch',
      allowAllOutbound: true,
    });
    const environment = (envId: string, spot: boolean) =>
      new ManagedEc2EcsComputeEnvironment(this, envId, {
        vpc: this.vpc,
        vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
        securityGroups: [securityGroup],
        instanceTypes: this.instanceTypes.map((t) => new InstanceType(t.type)),
        useOptimalInstanceClasses: false,
        images: [{ imageType: EcsMachineImageType.ECS_AL2023_NVIDIA }],
        minvCpus: 0,
        maxvCpus: this.maxvCpus,
        spot,
        launchTemplate,
        updateToLatestImageVersion: true,
        // An update waits for running jobs (up to 30 minutes, then they are retried elsewhere).
        terminateOnUpdate: false,
        updateTimeout: Duration.minutes(30),
      });
    this.onDemand = environment('OnDemand', false);
    if (props.spot) this.spot = environment('Spot', true);

    const capacityWait = props.capacityWait ?? Duration.hours(1);
    this.jobQueue = new JobQueue(this, 'JobQueue', {
      priority: 1,
      computeEnvironments: [
        ...(this.spot ? [{ computeEnvironment: this.spot, order: 1 }] : []),
        { computeEnvironment: this.onDemand, order: this.spot ? 2 : 1 },
      ],
      jobStateTimeLimitActions: capacityLimits(capacityWait),
    });

    this.logGroup = new LogGroup(this, 'TrainerLogs', { retention: logRetention });
    this.jobRole = new Role(this, 'JobRole', {
      assumedBy: new ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'The descent trainer (one AWS Batch job per training job)',
    });
    const smallest = this.instanceTypes.reduce((a, b) =>
      a.vcpus * 1e6 + a.memoryMiB <= b.vcpus * 1e6 + b.memoryMiB ? a : b,
    );
    const container = new EcsEc2ContainerDefinition(this, 'Trainer', {
      image:
        props.image ??
        ContainerImage.fromAsset(projectRoot, { file: 'trainer/Dockerfile', platform: Platform.LINUX_AMD64 }),
      gpu: 1,
      cpu: smallest.vcpus,
      // What the smallest instance type leaves after the OS and the ECS agent (about 12%).
      memory: Size.mebibytes(Math.floor((smallest.memoryMiB * 0.88) / 256) * 256),
      jobRole: this.jobRole,
      linuxParameters: new LinuxParameters(this, 'TrainerLinux', { initProcessEnabled: true }),
      logging: LogDriver.awsLogs({ logGroup: this.logGroup, streamPrefix: 'trainer' }),
      environment: {
        // Batch does not set the region in the container, and the SDK does not ask the (blocked) instance metadata.
        AWS_REGION: Stack.of(this).region,
        // nvidia-smi (GPU model and utilisation) comes with the `utility` capability.
        NVIDIA_DRIVER_CAPABILITIES: 'compute,utility',
        [ENV.backend]: 'tensorflow',
        [ENV.requireGpu]: 'true',
        [ENV.logLevel]: 'info',
        [ENV.instanceTypes]: JSON.stringify(
          this.instanceTypes.map(({ type, vcpus, gpu, hourlyPriceUsd }) => ({
            type,
            vcpus,
            gpu,
            hourlyPriceUsd,
          })),
        ),
        ...props.runtimeEnvironment,
        ...applyGrants(this.jobRole, TRAINER_GRANTS, { artifacts: props.artifacts }),
      },
    });
    this.jobDefinition = new EcsJobDefinition(this, 'TrainerJob', {
      container,
      retryAttempts: props.maxAttempts ?? 3,
      retryStrategies: retryStrategies(),
      // The dispatcher sets each job's own limit (its maxRuntimeSeconds plus a grace); this is the ceiling.
      timeout: Duration.seconds(attemptDurationFor((props.maxRuntime ?? Duration.days(7)).toSeconds())),
      propagateTags: true,
    });
    this.acknowledgeFindings(container);
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
  private acknowledgeFindings(container: EcsEc2ContainerDefinition): void {
    for (const env of [this.onDemand, this.spot]) {
      if (!env) continue;
      Validations.of(env).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]',
        reason:
          "The GPU instances' role is the ECS container agent's: AWS's managed policy is the documented one for Batch compute environments and follows the agent's needs.",
      });
    }
    Validations.of(container).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'The execution role pulls the trainer image and writes its logs; ecr:GetAuthorizationToken supports no resource scoping.',
    });
  }
}

/** Retry what is not the job's fault, never what is: first match wins (AWS Batch allows five). */
export function retryStrategies(): RetryStrategy[] {
  return [
    // The instance was lost: a Spot reclaim or a host failure ("Host EC2 (instance i-…) terminated.").
    RetryStrategy.of(Action.RETRY, Reason.SPOT_INSTANCE_RECLAIMED),
    // The trainer's temporary error, or a SIGTERM from draining: the next attempt resumes from the checkpoint.
    RetryStrategy.of(Action.RETRY, Reason.custom({ onExitCode: String(TRAINER_EXIT.retry) })),
    // Anything else ended the attempt for good: the job's own failure is already in its record (exit 0),
    // and no GPU, an image that cannot be pulled or running out of memory would fail again.
    RetryStrategy.of(Action.EXIT, Reason.custom({ onReason: '*' })),
  ];
}

/**
 * The job queue's capacity-wait limits: a job that EC2 cannot give capacity waits `capacityWait`; one
 * that Batch can never place (the environments are too small, or the service role lacks a
 * permission) is cancelled after 10 minutes. Either way the job FAILS with NO_GPU_CAPACITY.
 */
function capacityLimits(capacityWait: Duration) {
  const wait = Duration.seconds(Math.max(capacityWait.toSeconds(), MIN_TIME_LIMIT.toSeconds()));
  const limit = (maxTime: Duration, reason: JobStateTimeLimitActionsReason) => ({
    action: JobStateTimeLimitActionsAction.CANCEL,
    state: JobStateTimeLimitActionsState.RUNNABLE,
    maxTime,
    reason,
  });
  return [
    limit(wait, JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY),
    limit(MIN_TIME_LIMIT, JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE),
    limit(MIN_TIME_LIMIT, JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT),
    // Not in the CDK's enum; one of Batch's documented blocked reasons.
    limit(MIN_TIME_LIMIT, 'MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS' as JobStateTimeLimitActionsReason),
  ];
}

/**
 * The instances' user data (Batch requires MIME multipart): two minutes between SIGTERM and SIGKILL
 * (a trainer stops at the end of the epoch and checkpoints), and with Spot, draining on an
 * interruption notice, so that a reclaimed instance's trainer checkpoints and exits for a retry.
 */
function instanceUserData(spot: boolean): MultipartUserData {
  const script = UserData.forLinux();
  script.addCommands('echo ECS_CONTAINER_STOP_TIMEOUT=120s >> /etc/ecs/ecs.config');
  if (spot) script.addCommands('echo ECS_ENABLE_SPOT_INSTANCE_DRAINING=true >> /etc/ecs/ecs.config');
  const userData = new MultipartUserData();
  userData.addPart(MultipartBody.fromUserData(script));
  return userData;
}
