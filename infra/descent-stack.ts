import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { ArtifactBucket } from './artifact-bucket.ts';
import { JobQueue } from './job-queue.ts';
import { JobsApi } from './jobs-api.ts';
import { TenantUserPool, type TenantUserPoolProps } from './tenant-user-pool.ts';

export interface DescentStackProps extends StackProps {
  /**
   * Receives of a job's message (training attempts) before the job is marked FAILED.
   * @default 3
   */
  readonly maxAttempts?: number;
  /**
   * The tenants' API clients and token settings.
   * @default - one tenant, `default`
   */
  readonly tenantUserPool?: TenantUserPoolProps;
}

/**
 * descent on AWS: the artifact bucket, the jobs queue with its dead-letter handler, the tenants'
 * user pool and the HTTP API. The GPU training cluster and monitoring come in their own issue.
 */
export class DescentStack extends Stack {
  public readonly artifacts: ArtifactBucket;
  public readonly jobQueue: JobQueue;
  public readonly tenants: TenantUserPool;
  public readonly jobsApi: JobsApi;

  constructor(scope: Construct, id: string, props: DescentStackProps = {}) {
    super(scope, id, props);
    this.artifacts = new ArtifactBucket(this, 'Artifacts');
    this.jobQueue = new JobQueue(this, 'Jobs', {
      artifacts: this.artifacts,
      maxReceiveCount: props.maxAttempts,
    });
    this.tenants = new TenantUserPool(this, 'Tenants', props.tenantUserPool);
    this.jobsApi = new JobsApi(this, 'JobsApi', {
      artifacts: this.artifacts,
      jobQueue: this.jobQueue,
      tenants: this.tenants,
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
  }
}
