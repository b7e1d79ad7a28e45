/**
 * The AWS wiring. Each function gets only the ports its grants allow (infra/grants.ts), and its
 * environment says which: a port is built only when its variable is set (the bucket, the jobs queue,
 * the Batch job queue, the event bus), so a function without a grant cannot reach the resource at
 * all. `composeAws` then composes the domain services with the lifecycle's AWS subscribers: job-end
 * metrics, job state-change events on EventBridge, and the cancel path that terminates Batch jobs.
 */
import { BatchClient } from '@aws-sdk/client-batch';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { type JobEventSink, jobStateEvents } from '../core/jobs/job-events.ts';
import { jobEndMetrics } from '../core/jobs/job-metrics.ts';
import type { JobListener } from '../core/jobs/lifecycle.ts';
import { ENV, requireEnv } from '../core/platform/config.ts';
import { type MetricsSink, printMetrics } from '../core/platform/emf.ts';
import { createLogger, type Logger } from '../core/platform/log.ts';
import type { JobQueue, ObjectStore } from '../core/platform/ports.ts';
import { loadRuntimeConfig, type RuntimeConfig } from '../core/platform/runtime-config.ts';
import { createServices, type Services } from '../core/services.ts';
import { type BatchJobs, SdkBatchJobs } from './batch-jobs.ts';
import { eventBridgeSink } from './eventbridge-events.ts';
import { S3ObjectStore } from './s3-object-store.ts';
import { SqsJobQueue } from './sqs-job-queue.ts';

/** The ports a function was given; absent ones were not granted. */
export interface AwsPorts {
  readonly store?: ObjectStore;
  readonly queue?: JobQueue;
  readonly batch?: BatchJobs;
  readonly events?: JobEventSink;
}

/** How each port is built from its setting (the SDK in production; enforcing stand-ins in tests). */
export interface PortMakers {
  store(bucket: string): ObjectStore;
  queue(queueUrl: string): JobQueue;
  batch(jobQueue: string, jobDefinition: string | undefined): BatchJobs;
  events(eventBusName: string): JobEventSink;
}

/**
 * An S3 client that adds a checksum only where S3 requires one. The SDK's default (`WHEN_SUPPORTED`)
 * signs a CRC32 of the *empty* body into every presigned PUT URL (`x-amz-checksum-crc32=AAAAAA==`), so
 * any real upload through it fails; and the SDK is bundled (not the runtime's), so this holds.
 */
export const newS3Client = (options: S3ClientConfig = {}): S3Client =>
  new S3Client({
    ...options,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

export const SDK_PORTS: PortMakers = {
  store: (bucket) => new S3ObjectStore({ client: newS3Client(), bucket }),
  queue: (queueUrl) => new SqsJobQueue({ client: new SQSClient({}), queueUrl }),
  batch: (jobQueue, jobDefinition) =>
    new SdkBatchJobs({
      client: new BatchClient({}),
      jobQueue,
      jobDefinition: jobDefinition ?? missing(ENV.batchJobDefinition),
    }),
  events: (bus) => eventBridgeSink(new EventBridgeClient({}), bus),
};

function missing(name: string): never {
  throw new Error(`Environment variable ${name} is required but not set.`);
}

/** The ports whose settings are present in `env`. */
export function awsPorts(env: NodeJS.ProcessEnv = process.env, make: PortMakers = SDK_PORTS): AwsPorts {
  const set = (name: string) => (env[name] ? env[name] : undefined);
  const bucket = set(ENV.bucket);
  const queueUrl = set(ENV.queueUrl);
  const jobQueue = set(ENV.batchJobQueue);
  const bus = set(ENV.eventBus);
  return {
    ...(bucket ? { store: make.store(bucket) } : {}),
    ...(queueUrl ? { queue: make.queue(queueUrl) } : {}),
    ...(jobQueue ? { batch: make.batch(jobQueue, set(ENV.batchJobDefinition)) } : {}),
    ...(bus ? { events: make.events(bus) } : {}),
  };
}

/** Cancelling a job that AWS Batch holds (waiting for a GPU, or training) terminates its Batch job. */
export function terminateOnCancel(batch: BatchJobs, log: Logger): JobListener {
  return async ({ tenant, record, from }) => {
    if (!record.batchJob) return;
    const waiting = record.status === 'CANCELLED' && from === 'QUEUED';
    if (!waiting && record.status !== 'CANCELLING') return;
    // Training: its trainer gets SIGTERM, sees the cancel in the record and ends the job CANCELLED.
    await batch.terminate(record.batchJob.id, `descent: cancelled (${record.status})`);
    log.info('terminated the Batch job of a cancelled job', {
      tenant,
      jobId: record.id,
      batchJobId: record.batchJob.id,
    });
  };
}

/** What a function runs with: the domain services and the Batch port when it was granted one. */
export interface AwsContext {
  readonly services: Services;
  readonly batch?: BatchJobs;
  readonly config: RuntimeConfig;
}

export interface ComposeOptions {
  readonly config: RuntimeConfig;
  readonly metrics: MetricsSink;
  readonly log: Logger;
}

/** The services on `ports`, with the lifecycle's AWS subscribers for the ports present. */
export function composeAws(ports: AwsPorts, options: ComposeOptions): AwsContext {
  const store = ports.store ?? missing(ENV.bucket);
  const services = createServices(store, ports.queue, { limits: options.config.limits, log: options.log });
  services.lifecycle.subscribe(jobEndMetrics(options.metrics));
  if (ports.events) services.lifecycle.subscribe(jobStateEvents(ports.events));
  if (ports.batch) services.lifecycle.subscribe(terminateOnCancel(ports.batch, options.log));
  return { services, config: options.config, ...(ports.batch ? { batch: ports.batch } : {}) };
}

/** A Lambda function's context, from its environment (once per container). */
export function createAwsContext(env: NodeJS.ProcessEnv = process.env): AwsContext {
  const config = loadRuntimeConfig(env);
  requireEnv(ENV.bucket, env);
  return composeAws(awsPorts(env), {
    config,
    metrics: printMetrics,
    log: createLogger({ component: 'function' }),
  });
}
