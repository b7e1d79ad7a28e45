/**
 * The API's request and response types, derived from the schemas and service functions that the
 * API itself uses. Type-only imports: nothing from `core/` reaches a browser bundle.
 */

import type { DatasetView, deleteDataset, listDatasets } from '../core/datasets/dataset-catalog.ts';
import type { createDataset } from '../core/datasets/dataset-service.ts';
import type { EpochMetrics, JobEvent, JobRecord, JobStatus } from '../core/jobs/job-record.ts';
import type { deleteJob, getResult, listJobs, validateJob } from '../core/jobs/job-service.ts';
import type { DatasetFormat, JobSpecInput } from '../core/jobs/job-spec.ts';
import type { predictOnline, RowPrediction } from '../core/predictions/predict-service.ts';
import type { SweepRecord, SweepStatus, TrialRecord, TrialStatus } from '../core/sweeps/sweep-record.ts';
import type { getSweep, listSweeps } from '../core/sweeps/sweep-service.ts';
import type { SweepRequestInput } from '../core/sweeps/sweep-spec.ts';
import type { ClassificationMetrics, RegressionMetrics } from '../core/training/metrics.ts';

export type {
  DatasetFormat,
  DatasetView,
  EpochMetrics,
  JobEvent,
  JobRecord,
  JobSpecInput,
  JobStatus,
  RowPrediction,
  SweepRecord,
  SweepStatus,
  TrialRecord,
  TrialStatus,
};

/** `POST /jobs` body: `z.input<typeof jobSpec>` (defaults may be left out). */
export type JobSpecRequest = JobSpecInput;
/** `POST /datasets` body. */
export interface CreateDatasetRequest {
  name: string;
  format: DatasetFormat;
}
/** `POST /datasets` answer: the dataset id and where to PUT the file. */
export type CreateDatasetResponse = Awaited<ReturnType<typeof createDataset>>;
/** `GET /jobs` answer. */
export type ListJobsResponse = Awaited<ReturnType<typeof listJobs>>;
export interface ListJobsQuery {
  status?: JobStatus;
  /** Only training jobs, or only batches of predictions. */
  kind?: 'training' | 'predictions';
  /** `'false'`: leave out sweeps' trials. */
  trials?: 'true' | 'false';
  /** `'true'`: the answer also counts every matching job (`total`). */
  count?: 'true' | 'false';
  /** Only the trials of this sweep. */
  sweepId?: string;
  /** 1–100 (20). */
  limit?: number;
  cursor?: string;
}
/** `GET /jobs/{id}/metrics` answer. */
export interface JobMetricsResponse {
  epochs: EpochMetrics[];
  /** A long history is answered with every `sampledEvery`-th epoch (and the last) of `totalEpochs`. */
  sampledEvery?: number;
  totalEpochs?: number;
}
/** `GET /jobs/{id}/events` answer. */
export interface JobEventsResponse {
  events: JobEvent[];
}
/** `DELETE /jobs/{id}` answer. */
export type DeleteJobResponse = Awaited<ReturnType<typeof deleteJob>>;

/** A set of rows' evaluation, as `report.training` / `report.validation` hold it. */
export type EvaluationMetrics = (Partial<ClassificationMetrics> & Partial<RegressionMetrics>) & {
  loss?: number;
  rowIndices?: number[];
  [metric: string]: unknown;
};

/** `report.json`: the fields the client knows; newer trainers may add more. */
export interface JobReport {
  jobId?: string;
  task?: 'classification' | 'regression';
  label?: string;
  features?: string[];
  classes?: (string | number)[];
  backend?: string;
  epochsRun?: number;
  stoppedBy?: string;
  training?: EvaluationMetrics;
  validation?: EvaluationMetrics;
  /** Permutation feature importance, when the trainer computes it (several shapes are accepted). */
  featureImportance?: unknown;
  resources?: Record<string, unknown>;
  /** Private training (`training.privacy`): the guarantee spent and what it does not cover. */
  privacy?: {
    epsilon: number;
    delta: number;
    noiseMultiplier: number;
    clipNorm: number;
    sampleRate: number;
    steps: number;
    targetEpsilon?: number;
    accountant: string;
    notCovered?: string[];
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

/** `GET /jobs/{id}/result` answer. */
export type JobResult = Omit<Awaited<ReturnType<typeof getResult>>, 'report' | 'reportOmitted'> & {
  report: JobReport;
  /** The report's parts left out of a too-large answer (`validation.confusionMatrix`); `report.json` has them. */
  reportOmitted?: string[];
};

/** The statuses after which a job never changes again. */
export const TERMINAL: readonly JobStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'STOPPED_EARLY'];
export const isTerminalStatus = (status: JobStatus): boolean => TERMINAL.includes(status);

/** `POST /sweeps` body: `z.input<typeof sweepRequest>` (the job spec under `spec`, the parameters and their domains). */
export type SweepRequest = SweepRequestInput;
/** `GET /sweeps/{id}` answer: the sweep record, its ranking (trial numbers, best first) and report URLs. */
export type Sweep = Awaited<ReturnType<typeof getSweep>>;
/** `GET /sweeps` answer. */
export type ListSweepsResponse = Awaited<ReturnType<typeof listSweeps>>;
export interface ListSweepsQuery {
  status?: SweepStatus;
  /** 1–100 (20). */
  limit?: number;
  cursor?: string;
}
/** The statuses after which a sweep never changes again. */
export const isSweepFinishedStatus = (status: SweepStatus): boolean =>
  status === 'SUCCEEDED' || status === 'FAILED' || status === 'CANCELLED';

/** `POST /jobs/{id}/predict` answer. */
export type PredictResponse = Awaited<ReturnType<typeof predictOnline>>;
/** `POST /jobs/{id}/predictions` body. */
export interface PredictionsRequest {
  datasetId: string;
  /** @default the dataset's format */
  format?: 'csv' | 'jsonl';
  explain?: boolean;
  name?: string;
}
/** `POST /jobs?dryRun=true` answer. */
export type ValidateJobResponse = Awaited<ReturnType<typeof validateJob>>;
/** `GET /datasets` answer. */
export type ListDatasetsResponse = Awaited<ReturnType<typeof listDatasets>>;
export interface ListDatasetsQuery {
  /** 1–100 (20). */
  limit?: number;
  cursor?: string;
}
/** `DELETE /datasets/{id}` answer. */
export type DeleteDatasetResponse = Awaited<ReturnType<typeof deleteDataset>>;
