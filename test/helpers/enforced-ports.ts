/**
 * The ports of one function (or the trainer) with its synthesized IAM statements enforced on every
 * call, over shared real local adapters: an object store whose every get, head, list, put, delete and
 * presigned URL is checked as S3 (and KMS) would check it, a queue checked as SQS would, AWS Batch and
 * EventBridge as their APIs would. `awsPorts` builds them from the function's synthesized environment,
 * exactly as it builds the SDK adapters on AWS.
 */
import type { BatchJobStatus, BatchJobs, TrainingRun } from '../../aws/batch-jobs.ts';
import type { PortMakers } from '../../aws/services.ts';
import type { JobStateDetail } from '../../core/jobs/job-events.ts';
import type {
  GetOptions,
  JobQueue,
  ListOptions,
  ObjectStore,
  PresignOptions,
  PutOptions,
  PutStreamOptions,
  ReceiveOptions,
} from '../../core/platform/ports.ts';
import type { InMemoryBatch } from './batch.ts';
import { ACCOUNT, REGION, type RolePolicy } from './iam-policy.ts';

/** Where each resource of the stack lives, as the resolved template names it. */
export interface StackResources {
  /** The bucket's name (`DESCENT_BUCKET`) → its ARN. */
  readonly bucket: { readonly name: string; readonly arn: string; readonly keyArn: string };
  /** The jobs queue's URL (`DESCENT_QUEUE_URL`) → its ARN and key. */
  readonly queue: { readonly url: string; readonly arn: string; readonly keyArn: string };
  /** The Batch job queue and job definition ARNs. */
  readonly batch: { readonly jobQueueArn: string; readonly jobDefinitionArn: string };
}

/** The real parts the enforced ports stand in front of (one of each for every function). */
export interface Backing {
  readonly store: ObjectStore;
  readonly queue: JobQueue;
  readonly batch: InMemoryBatch;
  readonly events: JobStateDetail[];
}

class EnforcedStore implements ObjectStore {
  private readonly inner: ObjectStore;
  private readonly policy: RolePolicy;
  private readonly bucket: StackResources['bucket'];
  constructor(inner: ObjectStore, policy: RolePolicy, bucket: StackResources['bucket']) {
    this.inner = inner;
    this.policy = policy;
    this.bucket = bucket;
  }

  #object(action: string, key: string): void {
    this.policy.check(action, `${this.bucket.arn}/${key}`);
  }

  /** S3: GetObject first; a missing key is a 404 only with s3:ListBucket (else 403); KMS decrypts what exists. */
  async #read<T>(key: string, read: () => Promise<T | undefined>): Promise<T | undefined> {
    this.#object('s3:GetObject', key);
    const found = await read();
    if (found === undefined) this.policy.check('s3:ListBucket', this.bucket.arn, { 's3:prefix': key });
    else this.policy.check('kms:Decrypt', this.bucket.keyArn);
    return found;
  }

  async put(key: string, body: Uint8Array | string, options?: PutOptions) {
    this.#object('s3:PutObject', key);
    this.policy.check('kms:GenerateDataKey', this.bucket.keyArn);
    return this.inner.put(key, body, options);
  }
  async putStream(key: string, body: AsyncIterable<Uint8Array>, options: PutStreamOptions) {
    this.#object('s3:PutObject', key);
    this.policy.check('kms:GenerateDataKey', this.bucket.keyArn);
    return this.inner.putStream(key, body, options);
  }
  get(key: string, options?: GetOptions) {
    return this.#read(key, () => this.inner.get(key, options));
  }
  head(key: string) {
    return this.#read(key, () => this.inner.head(key));
  }
  getStream(key: string) {
    return this.#read(key, () => this.inner.getStream(key));
  }
  async list(prefix: string, options?: ListOptions) {
    this.policy.check('s3:ListBucket', this.bucket.arn, { 's3:prefix': prefix });
    return this.inner.list(prefix, options);
  }
  async delete(key: string) {
    this.#object('s3:DeleteObject', key);
    return this.inner.delete(key);
  }
  async presignGet(key: string, options: PresignOptions) {
    // The URL works only if its signer may read the object.
    this.#object('s3:GetObject', key);
    this.policy.check('kms:Decrypt', this.bucket.keyArn);
    return this.inner.presignGet(key, options);
  }
  async presignPut(key: string, options: PresignOptions) {
    this.#object('s3:PutObject', key);
    this.policy.check('kms:GenerateDataKey', this.bucket.keyArn);
    return this.inner.presignPut(key, options);
  }
}

class EnforcedQueue implements JobQueue {
  private readonly inner: JobQueue;
  private readonly policy: RolePolicy;
  private readonly queue: StackResources['queue'];
  constructor(inner: JobQueue, policy: RolePolicy, queue: StackResources['queue']) {
    this.inner = inner;
    this.policy = policy;
    this.queue = queue;
  }

  #sqs(action: string): void {
    this.policy.check(action, this.queue.arn);
  }

  async send(body: string, options?: { delaySeconds?: number }) {
    this.#sqs('sqs:SendMessage');
    // SSE-KMS: the sender asks for a data key and checks it.
    this.policy.check('kms:GenerateDataKey', this.queue.keyArn);
    this.policy.check('kms:Decrypt', this.queue.keyArn);
    return this.inner.send(body, options);
  }
  async receive(options: ReceiveOptions) {
    this.#sqs('sqs:ReceiveMessage');
    this.policy.check('kms:Decrypt', this.queue.keyArn);
    return this.inner.receive(options);
  }
  async extendVisibility(receiptHandle: string, seconds: number) {
    this.#sqs('sqs:ChangeMessageVisibility');
    return this.inner.extendVisibility(receiptHandle, seconds);
  }
  async release(receiptHandle: string) {
    this.#sqs('sqs:ChangeMessageVisibility');
    return this.inner.release(receiptHandle);
  }
  async delete(receiptHandle: string) {
    this.#sqs('sqs:DeleteMessage');
    return this.inner.delete(receiptHandle);
  }
  async depth() {
    this.#sqs('sqs:GetQueueAttributes');
    return this.inner.depth();
  }
}

class EnforcedBatch implements BatchJobs {
  private readonly inner: BatchJobs;
  private readonly policy: RolePolicy;
  private readonly batch: StackResources['batch'];
  constructor(inner: BatchJobs, policy: RolePolicy, batch: StackResources['batch']) {
    this.inner = inner;
    this.policy = policy;
    this.batch = batch;
  }

  async submit(run: TrainingRun) {
    // SubmitJob is authorized on both the job queue and the job definition.
    this.policy.check('batch:SubmitJob', this.batch.jobQueueArn);
    this.policy.check('batch:SubmitJob', this.batch.jobDefinitionArn);
    return this.inner.submit(run);
  }
  async find(name: string) {
    this.policy.check('batch:ListJobs', '*');
    return this.inner.find(name);
  }
  async list(status: BatchJobStatus) {
    this.policy.check('batch:ListJobs', '*');
    return this.inner.list(status);
  }
  async terminate(batchJobId: string, reason: string) {
    this.policy.check('batch:TerminateJob', `arn:aws:batch:${REGION}:${ACCOUNT}:job/${batchJobId}`);
    return this.inner.terminate(batchJobId, reason);
  }
}

/** Port makers for `awsPorts` that enforce `policy`, refusing a setting that names another resource. */
export function enforcedMakers(policy: RolePolicy, stack: StackResources, backing: Backing): PortMakers {
  const same = (what: string, got: string | undefined, want: string) => {
    if (got !== want) throw new Error(`${policy.role}: ${what} is ${got}, not the stack's ${want}`);
  };
  return {
    store: (bucket) => {
      same('the bucket', bucket, stack.bucket.name);
      return new EnforcedStore(backing.store, policy, stack.bucket);
    },
    queue: (url) => {
      same('the queue', url, stack.queue.url);
      return new EnforcedQueue(backing.queue, policy, stack.queue);
    },
    batch: (jobQueue, jobDefinition) => {
      same('the Batch job queue', jobQueue, stack.batch.jobQueueArn);
      if (jobDefinition !== undefined)
        same('the job definition', jobDefinition, stack.batch.jobDefinitionArn);
      return new EnforcedBatch(backing.batch, policy, stack.batch);
    },
    events: (bus) => async (detail) => {
      policy.check('events:PutEvents', `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/${bus}`, {
        'events:source': 'descent',
      });
      backing.events.push(detail);
    },
  };
}
