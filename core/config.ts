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
  /** Force a TensorFlow.js backend (`tensorflow`, `wasm`, `cpu`) instead of choosing the best. */
  backend: 'DESCENT_BACKEND',
  /** Log level: debug, info, warn, error. */
  logLevel: 'DESCENT_LOG_LEVEL',
} as const;

export type EnvName = (typeof ENV)[keyof typeof ENV];

/** Reads a required variable; throws a message that names it. */
export function requireEnv(name: EnvName, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new Error(`Environment variable ${name} is required but not set.`);
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
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < bounds.min || value > bounds.max) {
    throw new Error(
      `Environment variable ${name} must be an integer from ${bounds.min} to ${bounds.max}, got "${raw}".`,
    );
  }
  return value;
}
