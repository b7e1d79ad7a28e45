/**
 * The deployment's limits and quotas, with their defaults. Read once at start from the environment
 * (`loadConfig` in ./config.ts) and passed to whatever enforces them.
 */
import { ENV, type EnvName, intEnv } from './config.ts';

export interface Limits {
  /** Quota: largest dataset upload, in bytes. */
  readonly maxDatasetBytes: number;
  /** Quota: most bytes of datasets one tenant may keep (checked when a dataset is created). */
  readonly maxStorageBytes: number;
  /** Quota: most QUEUED + RUNNING jobs of one tenant. */
  readonly maxActiveJobs: number;
  /** Quota: most epochs × rows one job may train. */
  readonly maxEpochRows: number;
  /** How long presigned upload URLs stay valid. */
  readonly uploadUrlSeconds: number;
  /** How long presigned artifact download URLs stay valid. */
  readonly downloadUrlSeconds: number;
  /** Ceiling of a job's `resources.maxRuntimeSeconds`. */
  readonly maxRuntimeSeconds: number;
  /** A job's `resources.maxRuntimeSeconds` when it gives none. */
  readonly defaultMaxRuntimeSeconds: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxDatasetBytes: 256 * 1024 * 1024,
  maxStorageBytes: 10 * 1024 ** 3,
  maxActiveJobs: 20,
  maxEpochRows: 2_000_000_000,
  uploadUrlSeconds: 900,
  downloadUrlSeconds: 900,
  maxRuntimeSeconds: 7 * 86_400,
  defaultMaxRuntimeSeconds: 86_400,
};

/** Limits from the environment (the names in `ENV`), each defaulting to `DEFAULT_LIMITS`. */
export function limitsFromEnv(env: NodeJS.ProcessEnv = process.env): Limits {
  const int = (name: EnvName, fallback: number) =>
    intEnv(name, fallback, { min: 1, max: Number.MAX_SAFE_INTEGER }, env);
  const ceiling = int(ENV.maxRuntimeSeconds, DEFAULT_LIMITS.maxRuntimeSeconds);
  return {
    maxDatasetBytes: int(ENV.quotaDatasetBytes, DEFAULT_LIMITS.maxDatasetBytes),
    maxStorageBytes: int(ENV.quotaStorageBytes, DEFAULT_LIMITS.maxStorageBytes),
    maxActiveJobs: int(ENV.quotaActiveJobs, DEFAULT_LIMITS.maxActiveJobs),
    maxEpochRows: int(ENV.quotaEpochRows, DEFAULT_LIMITS.maxEpochRows),
    uploadUrlSeconds: int(ENV.urlExpirySeconds, DEFAULT_LIMITS.uploadUrlSeconds),
    downloadUrlSeconds: int(ENV.urlExpirySeconds, DEFAULT_LIMITS.downloadUrlSeconds),
    maxRuntimeSeconds: ceiling,
    defaultMaxRuntimeSeconds: Math.min(
      ceiling,
      int(ENV.defaultMaxRuntimeSeconds, DEFAULT_LIMITS.defaultMaxRuntimeSeconds),
    ),
  };
}
