/**
 * Environment-variable names shared by the CDK code and the runtime, so that they cannot drift,
 * and the one function that reads them.
 */

export const ENV = {
  /** S3 bucket holding datasets, job records and artifacts (AWS). */
  bucket: 'DESCENT_BUCKET',
  /** SQS jobs queue URL (AWS). */
  queueUrl: 'DESCENT_QUEUE_URL',
  /** SQS dead-letter queue URL (AWS). */
  deadLetterQueueUrl: 'DESCENT_DLQ_URL',
  /** Local mode: where all state lives. */
  dataDir: 'DESCENT_DATA_DIR',
  /** Local mode: gateway port. */
  port: 'DESCENT_PORT',
  /** Local mode: how many trainer worker processes. */
  workers: 'DESCENT_WORKERS',
  /** Local mode: the default tenant's API token. */
  token: 'DESCENT_TOKEN',
  /** Receives before a job's message goes to the dead-letter queue. */
  maxAttempts: 'DESCENT_MAX_ATTEMPTS',
  /** Force a backend (`tensorflow-gpu`, `tensorflow`, `wasm`, `cpu`) instead of choosing the best: strict, the trainer exits at boot when it cannot start. */
  backend: 'DESCENT_BACKEND',
  /** Trainer: `auto` (default: training steps run compiled as one TensorFlow graph wherever they can) or `eager` (never compiled). */
  engine: 'DESCENT_ENGINE',
  /** Log level: debug, info, warn, error. */
  logLevel: 'DESCENT_LOG_LEVEL',
  /** Trainer: seconds a received job stays invisible between heartbeats (the queue's visibility timeout). */
  visibilityTimeoutSeconds: 'DESCENT_VISIBILITY_TIMEOUT_SECONDS',
  /** Trainer: the price of an hour of this worker in USD, for the record's cost estimate (local; AWS: by instance type). */
  hourlyPriceUsd: 'DESCENT_HOURLY_PRICE_USD',
  /** Trainer on AWS: the GPU instance types it may run on, with their vCPUs, GPU model and hourly price (JSON). */
  instanceTypes: 'DESCENT_INSTANCE_TYPES',
  /** Trainer on AWS Batch: the tenant of the one job this container runs. */
  jobTenant: 'DESCENT_JOB_TENANT',
  /** Trainer on AWS Batch: the id of the one job this container runs. */
  jobId: 'DESCENT_JOB_ID',
  /** Trainer on AWS Batch: `true` refuses to train without a GPU (exit code 78, the `gpuUnavailable` metric). */
  requireGpu: 'DESCENT_REQUIRE_GPU',
  /** AWS: the Batch job queue that training jobs are submitted to (its ARN). */
  batchJobQueue: 'DESCENT_BATCH_JOB_QUEUE',
  /** AWS: the Batch job definition of the trainer (its ARN, with revision). */
  batchJobDefinition: 'DESCENT_BATCH_JOB_DEFINITION',
  /** AWS: the EventBridge bus that job state-change events are put on. */
  eventBus: 'DESCENT_EVENT_BUS',
  /** AWS: how long a job may wait for GPU capacity before it fails (the job queue's limit), for messages. */
  capacityWaitMinutes: 'DESCENT_CAPACITY_WAIT_MINUTES',
  /** Ceiling of `resources.maxRuntimeSeconds` a job may ask for (default 7 days). */
  maxRuntimeSeconds: 'DESCENT_MAX_RUNTIME_SECONDS',
  /** `resources.maxRuntimeSeconds` when a job gives none (default 24 hours). */
  defaultMaxRuntimeSeconds: 'DESCENT_DEFAULT_MAX_RUNTIME_SECONDS',
  /** Quota: most QUEUED + RUNNING jobs per tenant (default 20). */
  quotaActiveJobs: 'DESCENT_QUOTA_ACTIVE_JOBS',
  /** Quota: largest dataset upload in bytes (default 256 MiB). */
  quotaDatasetBytes: 'DESCENT_QUOTA_DATASET_BYTES',
  /** Quota: most bytes of datasets one tenant keeps (default 10 GiB). */
  quotaStorageBytes: 'DESCENT_QUOTA_STORAGE_BYTES',
  /** Quota: most epochs × rows per job (default 2,000,000,000). */
  quotaEpochRows: 'DESCENT_QUOTA_EPOCH_ROWS',
  /** The memory one job may need by its resource estimate, in bytes (default 2 GiB). */
  jobMemoryBytes: 'DESCENT_JOB_MEMORY_BYTES',
  /** The most columns a dataset may have (default 10,000). */
  maxColumns: 'DESCENT_MAX_COLUMNS',
  /** The longest line of a dataset in bytes (default 4 MiB). */
  maxLineBytes: 'DESCENT_MAX_LINE_BYTES',
  /** The most data rows a job may read (default 5,000,000). */
  maxRows: 'DESCENT_MAX_ROWS',
  /** Local gateway: uploads accepted at once (default 4). */
  maxConcurrentUploads: 'DESCENT_MAX_CONCURRENT_UPLOADS',
  /** Lifetime of presigned upload and download URLs in seconds (default 900). */
  urlExpirySeconds: 'DESCENT_URL_EXPIRY_SECONDS',
  /** Tests only: inject a crash (`kill-during-checkpoint`, `crash-on-job:<name>`) to prove recovery. */
  fault: 'DESCENT_FAULT',
  /** AWS: the tenants (Cognito app client ids, comma-separated) whose sweeps the scheduled controller advances. */
  tenants: 'DESCENT_TENANTS',
} as const;

/**
 * Exit code of a trainer whose backend cannot start (`DESCENT_BACKEND` names one that is not
 * available, or no backend at all starts): a configuration error (sysexits' EX_CONFIG), which a
 * restart would not fix, so the local supervisor does not restart the worker.
 */
export const EXIT_BACKEND_UNAVAILABLE = 78;

export type EnvName = (typeof ENV)[keyof typeof ENV];

/** Reads a required variable; throws a message that names it. */
export function requireEnv(name: EnvName, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new Error(`Environment variable ${name} is required but not set.`);
  }
  return value;
}

/** An optional numeric variable within bounds (integers only, or any finite number); malformed throws naming it. */
function boundedEnv(
  kind: 'an integer' | 'a number',
  name: EnvName,
  fallback: number,
  bounds: { min: number; max: number },
  env: NodeJS.ProcessEnv,
): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  const wellFormed = kind === 'an integer' ? Number.isInteger(value) : Number.isFinite(value);
  if (!wellFormed || value < bounds.min || value > bounds.max) {
    throw new Error(
      `Environment variable ${name} must be ${kind} from ${bounds.min} to ${bounds.max}, got "${raw}".`,
    );
  }
  return value;
}

/** Reads an optional integer variable within bounds; throws a message that names it when malformed. */
export function intEnv(
  name: EnvName,
  fallback: number,
  bounds: { min: number; max: number },
  env: NodeJS.ProcessEnv = process.env,
): number {
  return boundedEnv('an integer', name, fallback, bounds, env);
}

/** Reads an optional non-negative number; throws a message that names the variable when malformed. */
export function numberEnv(
  name: EnvName,
  fallback: number,
  bounds: { min: number; max: number },
  env: NodeJS.ProcessEnv = process.env,
): number {
  return boundedEnv('a number', name, fallback, bounds, env);
}

/** Reads an optional variable that must be one of `allowed`; throws a message that names it otherwise. */
export function oneOfEnv<T extends string>(
  name: EnvName,
  allowed: readonly T[],
  env: NodeJS.ProcessEnv = process.env,
): T | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!allowed.includes(raw as T))
    throw new Error(`Environment variable ${name} must be one of ${allowed.join(', ')}, got "${raw}".`);
  return raw as T;
}
