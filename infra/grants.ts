/**
 * Turns a grants declaration (`core/api/grants.ts`) into IAM statements on a role and the environment
 * variables that go with them: a function gets its bucket, queue, Batch or event-bus setting only
 * with the permission to use it (`aws/services.ts` builds a port only when its variable is set).
 */
import { Aws, type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import { type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { type Grants, KEYS, type KeyPattern } from '../core/api/grants.ts';
import { JOB_EVENT_SOURCE } from '../core/jobs/job-events.ts';
import { ENV } from '../core/platform/config.ts';
import type { ArtifactBucket } from './artifact-bucket.ts';
import type { JobQueue } from './job-queue.ts';

/** The AWS Batch resources a dispatcher submits to. */
export interface TrainingTargets {
  /** The Batch job queue's ARN. */
  readonly jobQueueArn: string;
  /** The trainer's job definition ARN (with its revision). */
  readonly jobDefinitionArn: string;
}

export interface GrantTargets {
  readonly artifacts: ArtifactBucket;
  /** The jobs queue (for `enqueue`). */
  readonly jobQueue?: JobQueue;
  /** AWS Batch (for `startTraining` and `stopTraining`). */
  readonly training?: TrainingTargets;
}

/** The account's default event bus, where job state-change events go. */
export const EVENT_BUS_NAME = 'default';

/** Why each key pattern is a wildcard: keys hold ids created at run time. */
const PATTERN_REASONS: Record<KeyPattern, string> = {
  [KEYS.jobs]: "a job's documents",
  [KEYS.jobIndex]: 'job listing markers',
  [KEYS.activeJobs]: 'active-jobs quota slots',
  [KEYS.checkpoints]: "a job's checkpoints only",
  [KEYS.datasets]: "a dataset's description and data",
  [KEYS.datasetMeta]: "a dataset's description only",
  [KEYS.datasetIndex]: 'dataset listing markers',
  [KEYS.migrations]: "a tenant's data migrations",
  [KEYS.sweeps]: "a sweep's documents",
  [KEYS.sweepIndex]: 'sweep listing markers',
  [KEYS.activeSweeps]: 'active-sweep markers',
  [KEYS.idempotency]: 'Idempotency-Key records',
};

/** Adds the statements of `grants` to `role`; returns the environment that goes with them. */
export function applyGrants(role: IRole, grants: Grants, targets: GrantTargets): Record<string, string> {
  const env: Record<string, string> = {};
  const storage =
    grants.list === true ||
    [grants.read, grants.write, grants.delete].some((keys) => (keys?.length ?? 0) > 0);
  if (storage) Object.assign(env, grantStorage(role, grants, targets.artifacts));
  if (grants.enqueue) {
    const queue = required(targets.jobQueue, 'enqueue', 'jobQueue');
    role.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [queue.queue.queueArn] }),
    );
    // SQS asks KMS for a data key (GenerateDataKey) and checks it (Decrypt) on each send.
    queue.encryptionKey.grant(role, 'kms:Decrypt', 'kms:GenerateDataKey');
    env[ENV.queueUrl] = queue.queue.queueUrl;
  }
  if (grants.publishEvents) {
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['events:PutEvents'],
        resources: [
          `arn:${Aws.PARTITION}:events:${Aws.REGION}:${Aws.ACCOUNT_ID}:event-bus/${EVENT_BUS_NAME}`,
        ],
        conditions: { StringEquals: { 'events:source': JOB_EVENT_SOURCE } },
      }),
    );
    env[ENV.eventBus] = EVENT_BUS_NAME;
  }
  if (grants.startTraining || grants.stopTraining || grants.watchTraining)
    Object.assign(env, grantTraining(role, grants, targets));
  return env;
}

function grantStorage(role: IRole, grants: Grants, artifacts: ArtifactBucket): Record<string, string> {
  const objects = (keys: readonly KeyPattern[]) => keys.map((k) => artifacts.bucket.arnForObjects(k));
  const add = (actions: string[], keys: readonly KeyPattern[] | undefined) => {
    if (keys?.length) role.addToPrincipalPolicy(new PolicyStatement({ actions, resources: objects(keys) }));
  };
  add(['s3:GetObject'], grants.read);
  // Single puts, presigned uploads and multipart uploads (an abandoned one expires by lifecycle rule).
  add(['s3:PutObject'], grants.write);
  add(['s3:DeleteObject'], grants.delete);
  if (grants.read?.length || grants.list) {
    // Listings, and a 404 for a missing key: without s3:ListBucket S3 answers it with 403.
    role.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['s3:ListBucket'], resources: [artifacts.bucket.bucketArn] }),
    );
  }
  // Decrypt to read (and to finish a multipart upload), GenerateDataKey to write.
  const kms = [
    ...(grants.read?.length ? ['kms:Decrypt'] : []),
    ...(grants.write?.length ? ['kms:GenerateDataKey'] : []),
  ];
  if (kms.length > 0) artifacts.encryptionKey.grant(role, ...kms);
  acknowledgePatterns(role, artifacts, [
    ...(grants.read ?? []),
    ...(grants.write ?? []),
    ...(grants.delete ?? []),
  ]);
  return { [ENV.bucket]: artifacts.bucket.bucketName };
}

function grantTraining(role: IRole, grants: Grants, targets: GrantTargets): Record<string, string> {
  const training = required(targets.training, 'startTraining / stopTraining', 'training');
  const env: Record<string, string> = { [ENV.batchJobQueue]: training.jobQueueArn };
  if (grants.startTraining) {
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['batch:SubmitJob'],
        resources: [training.jobQueueArn, training.jobDefinitionArn],
      }),
    );
    env[ENV.batchJobDefinition] = training.jobDefinitionArn;
  }
  if (grants.startTraining || grants.watchTraining) {
    // The dispatcher finds the Batch job of a crashed dispatch by name; the watch counts the queue's jobs.
    role.addToPrincipalPolicy(new PolicyStatement({ actions: ['batch:ListJobs'], resources: ['*'] }));
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        "batch:ListJobs supports no resource-level permission; descent lists only its own job queue's jobs (by name after a crashed dispatch, by state in the capacity watch).",
    });
  }
  if (!grants.stopTraining) return env;
  role.addToPrincipalPolicy(
    new PolicyStatement({
      actions: ['batch:TerminateJob'],
      resources: [`arn:${Aws.PARTITION}:batch:${Aws.REGION}:${Aws.ACCOUNT_ID}:job/*`],
    }),
  );
  Validations.of(role).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job/*]',
    reason:
      'Batch job ids are created at run time; a cancel terminates the Batch job recorded in the job record (its id is not known at deploy time).',
  });
  return env;
}

function acknowledgePatterns(role: IRole, artifacts: ArtifactBucket, patterns: readonly KeyPattern[]): void {
  const bucketId = Stack.of(artifacts).getLogicalId(artifacts.bucket.node.defaultChild as CfnElement);
  for (const pattern of new Set(patterns)) {
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${pattern}]`,
      reason: `Keys under ${pattern} (${PATTERN_REASONS[pattern] ?? 'descent objects'}) hold tenant and object ids created at run time; the grant stops at that layout (core/api/grants.ts).`,
    });
  }
}

function required<T>(value: T | undefined, grant: string, target: string): T {
  if (value === undefined) throw new Error(`A grant of ${grant} needs the ${target} target.`);
  return value;
}
