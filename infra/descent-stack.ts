import { Aws, CfnOutput, Duration, Fn, Stack, type StackProps } from 'aws-cdk-lib';
import type { ContainerImage } from 'aws-cdk-lib/aws-ecs';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { ArtifactBucket } from './artifact-bucket.ts';
import type { DescentFunction } from './descent-function.ts';
import { JobDispatch } from './job-dispatch.ts';
import { JobQueue } from './job-queue.ts';
import { JobsApi } from './jobs-api.ts';
import { Monitoring } from './monitoring.ts';
import { runtimeEnvironment as runtimeEnvironment_ } from './runtime-environment.ts';
import { DEFAULT_SETTINGS, type DescentSettings } from './settings.ts';
import { SweepScheduler } from './sweep-scheduler.ts';
import { TenantUserPool, type TenantUserPoolProps } from './tenant-user-pool.ts';
import { TrainingCompute } from './training-compute.ts';

export interface DescentStackProps extends StackProps {
  /**
   * The deployment's settings (`infra/settings.ts`; `infra/app.ts` reads them from `cdk.json`'s context).
   * Missing ones take their defaults.
   * @default DEFAULT_SETTINGS
   */
  readonly settings?: Partial<DescentSettings>;
  /**
   * The tenants' user pool: domain prefix and token validity. Its `tenants` win over `settings.tenants`.
   * @default - one app client per `settings.tenants`
   */
  readonly tenantUserPool?: TenantUserPoolProps;
  /**
   * The trainer image.
   * @default - built from `trainer/Dockerfile` at deploy time
   */
  readonly trainerImage?: ContainerImage;
}

/**
 * descent on AWS: the artifact bucket, the jobs queue with its dead-letter handler, the tenants' user
 * pool, the HTTP API, AWS Batch GPU training (compute environments from 0 vCPUs, job queue, the
 * trainer's job definition) with the dispatcher that hands it each job and the handler of its job
 * events, the sweep scheduler, and the dashboard and alarms.
 */
export class DescentStack extends Stack {
  public readonly settings: DescentSettings;
  public readonly artifacts: ArtifactBucket;
  public readonly jobQueue: JobQueue;
  public readonly tenants: TenantUserPool;
  public readonly jobsApi: JobsApi;
  /** AWS Batch: GPU compute environments, job queue, the trainer's job definition. */
  public readonly training: TrainingCompute;
  /** SQS → Batch, and Batch's job-state events back to the job records. */
  public readonly dispatch: JobDispatch;
  /** The scheduled pass that advances active sweeps. */
  public readonly sweepScheduler: SweepScheduler;
  public readonly monitoring: Monitoring;

  /** Every descent Lambda function: the API's, the dead-letter handler, the dispatcher, Batch events, sweeps. */
  get functions(): DescentFunction[] {
    return [
      ...this.jobsApi.functions.values(),
      this.jobQueue.deadLetterHandler,
      this.dispatch.dispatcher,
      this.dispatch.batchEventsHandler,
      this.dispatch.capacityWatch,
      this.sweepScheduler.handler,
    ];
  }

  constructor(scope: Construct, id: string, props: DescentStackProps = {}) {
    super(scope, id, props);
    const settings: DescentSettings = { ...DEFAULT_SETTINGS, ...props.settings };
    this.settings = settings;
    const logRetention = settings.logRetentionDays as RetentionDays;
    // The same quotas and limits for every function and the trainer.
    const runtimeEnvironment = runtimeEnvironment_(settings);

    this.artifacts = new ArtifactBucket(this, 'Artifacts', {
      noncurrentVersionExpiration: Duration.days(settings.noncurrentVersionDays),
    });
    this.jobQueue = new JobQueue(this, 'Jobs', {
      artifacts: this.artifacts,
      maxReceiveCount: settings.maxAttempts,
      logRetention,
      runtimeEnvironment,
    });
    this.tenants = new TenantUserPool(this, 'Tenants', {
      tenants: settings.tenants,
      ...props.tenantUserPool,
    });
    this.training = new TrainingCompute(this, 'Training', {
      artifacts: this.artifacts,
      instanceTypes: settings.instanceTypes,
      maxWorkers: settings.maxWorkers,
      spot: settings.spot,
      maxAttempts: settings.maxAttempts,
      capacityWait: Duration.minutes(settings.capacityWaitMinutes),
      maxRuntime: Duration.seconds(settings.maxRuntimeSeconds),
      instancePrices: settings.instancePrices,
      natGateways: settings.natGateways,
      logRetention,
      runtimeEnvironment,
      image: props.trainerImage,
    });
    const training = {
      jobQueueArn: this.training.jobQueue.jobQueueArn,
      jobDefinitionArn: this.training.jobDefinition.jobDefinitionArn,
    };
    this.dispatch = new JobDispatch(this, 'Dispatch', {
      artifacts: this.artifacts,
      jobQueue: this.jobQueue,
      training: this.training,
      runtimeEnvironment,
      logRetention,
    });
    this.jobsApi = new JobsApi(this, 'JobsApi', {
      artifacts: this.artifacts,
      jobQueue: this.jobQueue,
      training,
      tenants: this.tenants,
      throttle: { rateLimit: settings.apiRateLimit, burstLimit: settings.apiBurstLimit },
      functionLogRetention: logRetention,
      runtimeEnvironment,
    });
    this.sweepScheduler = new SweepScheduler(this, 'Sweeps', {
      artifacts: this.artifacts,
      jobQueue: this.jobQueue,
      training,
      tenants: this.tenants,
      runtimeEnvironment,
      logRetention,
    });
    this.monitoring = new Monitoring(this, 'Monitoring', {
      jobQueue: this.jobQueue,
      dispatch: this.dispatch,
      jobsApi: this.jobsApi,
      functions: this.functions,
      alarmEmail: settings.alarmEmail,
      failureRatePercent: settings.failureRateAlarmPercent,
      api5xxThreshold: settings.api5xxAlarmThreshold,
    });

    new CfnOutput(this, 'ApiUrl', { description: 'Base URL of the descent API', value: this.jobsApi.url });
    new CfnOutput(this, 'TokenUrl', {
      description: 'OAuth client-credentials token endpoint',
      value: this.tenants.tokenUrl,
    });
    new CfnOutput(this, 'UserPoolId', {
      description: "User pool of the tenants' app clients",
      value: this.tenants.userPool.userPoolId,
    });
    new CfnOutput(this, 'BucketName', {
      description: 'Artifact bucket',
      value: this.artifacts.bucket.bucketName,
    });
    new CfnOutput(this, 'QueueUrl', { description: 'Jobs queue', value: this.jobQueue.queue.queueUrl });
    new CfnOutput(this, 'DeadLetterQueueUrl', {
      description: 'Dead-letter queue of the jobs queue',
      value: this.jobQueue.deadLetterQueue.queueUrl,
    });
    new CfnOutput(this, 'BatchJobQueue', {
      description: 'AWS Batch job queue of the training jobs',
      value: this.training.jobQueue.jobQueueName,
    });
    new CfnOutput(this, 'ComputeEnvironments', {
      description: 'AWS Batch GPU compute environments (Spot first when on)',
      value: Fn.join(
        ' ',
        [this.training.spot, this.training.onDemand].flatMap((env) =>
          env ? [env.computeEnvironmentName] : [],
        ),
      ),
    });
    new CfnOutput(this, 'TrainerLogGroup', {
      description: "CloudWatch log group of the trainers' logs",
      value: this.training.logGroup.logGroupName,
    });
    new CfnOutput(this, 'DashboardUrl', {
      description: 'CloudWatch dashboard',
      value: `https://${Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}#dashboards/dashboard/${this.monitoring.dashboard.dashboardName}`,
    });
    new CfnOutput(this, 'AlarmTopicArn', {
      description: 'SNS topic of the alarms: subscribe to it',
      value: this.monitoring.alarmTopic.topicArn,
    });
    new CfnOutput(this, 'AlarmNames', {
      description: 'The alarms that notify the topic (docs/deploy.md fires each once to prove delivery)',
      value: Fn.join(
        ' ',
        this.monitoring.alarms.map((alarm) => alarm.alarmName),
      ),
    });
  }
}
