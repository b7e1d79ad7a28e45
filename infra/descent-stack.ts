import { Aws, CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import type { ContainerImage } from 'aws-cdk-lib/aws-ecs';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { ENV } from '../core/platform/config.ts';
import { ArtifactBucket } from './artifact-bucket.ts';
import { JobQueue } from './job-queue.ts';
import { JobsApi } from './jobs-api.ts';
import { Monitoring } from './monitoring.ts';
import { DEFAULT_SETTINGS, type DescentSettings } from './settings.ts';
import { SweepScheduler } from './sweep-scheduler.ts';
import { TenantUserPool, type TenantUserPoolProps } from './tenant-user-pool.ts';
import { TrainingCluster } from './training-cluster.ts';

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
 * pool, the HTTP API, the GPU training cluster that drains the queue, and the dashboard and alarms.
 */
export class DescentStack extends Stack {
  public readonly settings: DescentSettings;
  public readonly artifacts: ArtifactBucket;
  public readonly jobQueue: JobQueue;
  public readonly tenants: TenantUserPool;
  public readonly jobsApi: JobsApi;
  public readonly trainingCluster: TrainingCluster;
  /** The scheduled pass that advances active sweeps. */
  public readonly sweepScheduler: SweepScheduler;
  public readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: DescentStackProps = {}) {
    super(scope, id, props);
    const settings: DescentSettings = { ...DEFAULT_SETTINGS, ...props.settings };
    this.settings = settings;
    const logRetention = settings.logRetentionDays as RetentionDays;

    this.artifacts = new ArtifactBucket(this, 'Artifacts', {
      noncurrentVersionExpiration: Duration.days(settings.noncurrentVersionDays),
    });
    this.jobQueue = new JobQueue(this, 'Jobs', {
      artifacts: this.artifacts,
      maxReceiveCount: settings.maxAttempts,
      logRetention,
    });
    this.tenants = new TenantUserPool(this, 'Tenants', {
      tenants: settings.tenants,
      ...props.tenantUserPool,
    });
    this.jobsApi = new JobsApi(this, 'JobsApi', {
      artifacts: this.artifacts,
      jobQueue: this.jobQueue,
      tenants: this.tenants,
      throttle: { rateLimit: settings.apiRateLimit, burstLimit: settings.apiBurstLimit },
      functionLogRetention: logRetention,
      functionEnvironment: {
        [ENV.quotaActiveJobs]: String(settings.quotaActiveJobs),
        [ENV.quotaDatasetBytes]: String(settings.quotaDatasetBytes),
        [ENV.quotaEpochRows]: String(settings.quotaEpochRows),
        [ENV.jobMemoryBytes]: String(settings.jobMemoryBytes),
        [ENV.maxRuntimeSeconds]: String(settings.maxRuntimeSeconds),
        [ENV.defaultMaxRuntimeSeconds]: String(settings.defaultMaxRuntimeSeconds),
        [ENV.urlExpirySeconds]: String(settings.urlExpirySeconds),
      },
    });
    this.sweepScheduler = new SweepScheduler(this, 'Sweeps', {
      artifacts: this.artifacts,
      jobQueue: this.jobQueue,
      tenants: this.tenants,
      logRetention,
    });
    this.trainingCluster = new TrainingCluster(this, 'Training', {
      artifacts: this.artifacts,
      jobQueue: this.jobQueue,
      instanceTypes: settings.instanceTypes,
      maxWorkers: settings.maxWorkers,
      spot: settings.spot,
      natGateways: settings.natGateways,
      hourlyPriceUsd: settings.hourlyPriceUsd,
      jobMemoryBytes: settings.jobMemoryBytes,
      logRetention,
      image: props.trainerImage,
    });
    this.monitoring = new Monitoring(this, 'Monitoring', {
      jobQueue: this.jobQueue,
      jobsApi: this.jobsApi,
      trainingCluster: this.trainingCluster,
      alarmEmail: settings.alarmEmail,
      oldestJobAge: Duration.minutes(settings.oldestMessageAlarmMinutes),
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
    new CfnOutput(this, 'ClusterName', {
      description: 'ECS cluster of the GPU trainers',
      value: this.trainingCluster.cluster.clusterName,
    });
    new CfnOutput(this, 'TrainerServiceName', {
      description: 'ECS service of the trainers',
      value: this.trainingCluster.service.serviceName,
    });
    new CfnOutput(this, 'GpuAutoScalingGroupName', {
      description: 'Auto Scaling group of the GPU instances',
      value: this.trainingCluster.autoScalingGroup.autoScalingGroupName,
    });
    new CfnOutput(this, 'TrainerLogGroup', {
      description: "CloudWatch log group of the trainers' logs",
      value: this.trainingCluster.logGroup.logGroupName,
    });
    new CfnOutput(this, 'DashboardUrl', {
      description: 'CloudWatch dashboard',
      value: `https://${Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}#dashboards/dashboard/${this.monitoring.dashboard.dashboardName}`,
    });
    new CfnOutput(this, 'AlarmTopicArn', {
      description: 'SNS topic of the alarms: subscribe to it',
      value: this.monitoring.alarmTopic.topicArn,
    });
  }
}
