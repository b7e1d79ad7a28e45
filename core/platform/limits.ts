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
  /**
   * The memory one job may need, by the resource estimate (model, optimizer, activations, data and
   * the parsed table): refused at submit (413) and re-checked by the trainer against its real memory.
   */
  readonly jobMemoryBytes: number;
  /** The most columns a dataset may have (CSV header fields, JSON Lines keys). */
  readonly maxColumns: number;
  /** The longest line (CSV record, JSON Lines line) a dataset may have, in bytes. */
  readonly maxLineBytes: number;
  /** The most data rows a job may read. */
  readonly maxRows: number;
  /** Local gateway: uploads to presigned URLs it accepts at once (the rest get a 503 to retry). */
  readonly maxConcurrentUploads: number;
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
  jobMemoryBytes: 2 * 1024 ** 3,
  maxColumns: 10_000,
  maxLineBytes: 4 * 1024 * 1024,
  maxRows: 5_000_000,
  maxConcurrentUploads: 4,
};

/*
 * Fixed limits (not settings): they keep every record and response under a megabyte whatever the
 * input, and the trainer's synchronous work in short slices.
 */
/** The largest job spec (or sweep request) as JSON: a record holds it, and lists return records. */
export const MAX_SPEC_BYTES = 256 * 1024;
/** A list response (`GET /jobs`) stops adding records past this many bytes (it always has one). */
export const LIST_RESPONSE_BYTES = 768 * 1024;
/** Info and warning events a job keeps: later ones are not (state changes always are). */
export const MAX_EVENTS = 300;
/** Warnings a job record keeps. */
export const MAX_WARNINGS = 50;
/** The longest class label (a label's value in a classification job), in characters. */
export const MAX_CLASS_LABEL_CHARS = 200;

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
    jobMemoryBytes: int(ENV.jobMemoryBytes, DEFAULT_LIMITS.jobMemoryBytes),
    maxColumns: int(ENV.maxColumns, DEFAULT_LIMITS.maxColumns),
    maxLineBytes: int(ENV.maxLineBytes, DEFAULT_LIMITS.maxLineBytes),
    maxRows: int(ENV.maxRows, DEFAULT_LIMITS.maxRows),
    maxConcurrentUploads: int(ENV.maxConcurrentUploads, DEFAULT_LIMITS.maxConcurrentUploads),
  };
}
