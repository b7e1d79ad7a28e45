/**
 * The job record (`tenants/{t}/jobs/{id}/job.json`): the single source of truth for a job. Its status
 * changes only through the job lifecycle (`lifecycle.ts`), which owns the transition table.
 */
import { z } from 'zod';
import { ULID_PATTERN } from '../platform/ids.ts';
import { TENANT_PATTERN } from '../platform/keys.ts';
import { resolvedJobSpec } from './job-spec.ts';

export const JOB_STATUSES = [
  'QUEUED',
  'RUNNING',
  'CANCELLING',
  'SUCCEEDED',
  'FAILED',
  'CANCELLED',
  'STOPPED_EARLY',
] as const;
export const jobStatus = z.enum(JOB_STATUSES);
export type JobStatus = z.infer<typeof jobStatus>;

/** `STOPPED_EARLY`: a sweep's trial ended by the median stopping rule (its partial metrics are kept). */
export const TERMINAL_STATUSES: readonly JobStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'STOPPED_EARLY'];
export const isTerminal = (status: JobStatus): boolean => TERMINAL_STATUSES.includes(status);

export const jobError = z.object({ code: z.string(), message: z.string() });
export type JobError = z.infer<typeof jobError>;

/** What a job does: train a model (the default), or run a trained model over a dataset. */
export const JOB_KINDS = ['training', 'predictions'] as const;
export const jobKind = z.enum(JOB_KINDS);
export type JobKind = z.infer<typeof jobKind>;

/** A batch of predictions: which model, over which dataset, into which file. */
export const predictionsJob = z.object({
  /** The SUCCEEDED training job whose model runs. */
  modelJobId: z.string(),
  datasetId: z.string(),
  /** Output format: the input's format unless asked otherwise. */
  format: z.enum(['csv', 'jsonl']),
  explain: z.boolean(),
  /** Rows predicted, once done. */
  rows: z.int().optional(),
  /** The output object's name under the job (`predictions.csv` or `predictions.jsonl`) and size, once done. */
  output: z.object({ name: z.string(), bytes: z.int() }).optional(),
});
export type PredictionsJob = z.infer<typeof predictionsJob>;

export const jobRecord = z.object({
  id: z.string(),
  name: z.string(),
  /** `predictions` for a batch of predictions; absent (or `training`) for a training job. */
  kind: jobKind.optional(),
  /** A predictions job: its model, dataset and output. Its `spec` is the model's training spec. */
  predictions: predictionsJob.optional(),
  status: jobStatus,
  createdAt: z.string(),
  updatedAt: z.string(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  /** How many times a worker has started this job (1 on the first run). */
  attempt: z.int(),
  progress: z.object({
    epoch: z.int(),
    epochs: z.int(),
    loss: z.number().optional(),
    valLoss: z.number().optional(),
    /** k-fold runs: `fold 2/5`, then `final model`. */
    phase: z.string().optional(),
  }),
  error: jobError.optional(),
  spec: resolvedJobSpec,
  /** Classification: the classes in output-unit order (sorted labels, numerically when all are numbers). */
  classes: z.array(z.union([z.string(), z.number()])).optional(),
  /** The TensorFlow.js backend that trained the job (`tensorflow`, `wasm`, `cpu`). */
  backend: z.string().optional(),
  /** What the run cost (the article's "resource consumption"). */
  resources: z
    .object({
      wallSeconds: z.number(),
      queueSeconds: z.number(),
      trainingSeconds: z.number(),
      epochsRun: z.int(),
      samplesPerSecond: z.number(),
      peakRssBytes: z.number(),
      peakTensorBytes: z.number(),
      backend: z.string(),
      device: z.string(),
      /** The trainer's instance type, when it could tell (AWS: by its GPU model and vCPU count). */
      instanceType: z.string(),
      /** `compiled` (each step one TensorFlow graph) or `eager` (op by op through TensorFlow.js). */
      engine: z.string(),
      /** Why that engine ran (why not compiled, when eager). */
      engineReason: z.string(),
      estimatedCostUsd: z.number(),
      hourlyPriceUsd: z.number(),
      rows: z.object({ training: z.int(), validation: z.int(), test: z.int() }),
      parameters: z.int(),
      /** Private training: per-example gradient method, steps, and seconds per step against an ordinary step. */
      privateTraining: z.object({
        perExampleGradients: z.string(),
        steps: z.int(),
        secondsPerStep: z.number(),
        nonPrivateSecondsPerStep: z.number(),
        overhead: z.number(),
      }),
    })
    .partial()
    .optional(),
  /** What a run needs to be reproduced and compared. */
  lineage: z
    .object({
      datasetSha256: z.string(),
      datasetBytes: z.int(),
      seed: z.int(),
      backend: z.string(),
      serviceVersion: z.string(),
      baseModel: z.object({ jobId: z.string().optional(), datasetId: z.string().optional() }).optional(),
    })
    .partial()
    .optional(),
  /** The headline metric (accuracy or R²) of the delivered model on each evaluated set, for listings. */
  summary: z
    .object({
      metric: z.string(),
      training: z.number().optional(),
      validation: z.number().optional(),
      test: z.number().optional(),
    })
    .optional(),
  /** Diagnostics in words: a learning rate too small, overfitting, a slow backend for the model. */
  warnings: z.array(z.string()).optional(),
  cancelRequestedAt: z.string().optional(),
  /**
   * AWS: the AWS Batch job that runs this job (one per job; Batch's retry strategy makes its attempts),
   * recorded by the dispatcher through the lifecycle so that a redelivered message never submits twice.
   */
  batchJob: z.object({ id: z.string(), submittedAt: z.string() }).optional(),
  /** The latest checkpoint a redelivery resumes from (kept after a cancel or a timeout). */
  checkpoint: z
    .object({ epoch: z.int(), phase: z.string(), savedAt: z.string(), attempt: z.int() })
    .optional(),
  /** The active-jobs quota's slot the job holds while it is active (`active-jobs.ts`). */
  activeSlot: z.int().min(0).optional(),
  /** SHA-256 of the `Idempotency-Key` that created the job: freed when the job is deleted. */
  idempotencyKeySha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  /** A sweep's trial: the sweep's id and the trial's number (1-based) in its trials table. */
  sweepId: z.string().optional(),
  trial: z.int().min(1).optional(),
});
export type JobRecord = z.infer<typeof jobRecord>;

export const jobEvent = z.object({
  at: z.string(),
  type: z.enum(['state', 'warning', 'info']),
  status: jobStatus.optional(),
  message: z.string(),
  attempt: z.int().optional(),
});
export type JobEvent = z.infer<typeof jobEvent>;

export const epochMetrics = z
  .object({
    epoch: z.int(),
    loss: z.number(),
    valLoss: z.number().optional(),
  })
  .catchall(z.number());
export type EpochMetrics = z.infer<typeof epochMetrics>;

/** The queue message of a job: just enough to find its record. */
export const jobMessage = z.strictObject({
  tenant: z.string().regex(TENANT_PATTERN),
  jobId: z.string().regex(ULID_PATTERN),
});
export type JobMessage = z.infer<typeof jobMessage>;
