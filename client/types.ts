/**
 * The API's request and response types, derived from the schemas and service functions that the
 * API itself uses. Type-only imports: nothing from `core/` reaches a browser bundle.
 */
import type { EpochMetrics, JobEvent, JobRecord, JobStatus } from '../core/job-record.ts';
import type { createDataset, deleteJob, getResult, listJobs } from '../core/job-service.ts';
import type { DatasetFormat, JobSpecInput } from '../core/job-spec.ts';
import type { ClassificationMetrics, RegressionMetrics } from '../core/metrics.ts';

export type { DatasetFormat, EpochMetrics, JobEvent, JobRecord, JobSpecInput, JobStatus };

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
  /** 1–100 (20). */
  limit?: number;
  cursor?: string;
}
/** `GET /jobs/{id}/metrics` answer. */
export interface JobMetricsResponse {
  epochs: EpochMetrics[];
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
  [field: string]: unknown;
}

/** `GET /jobs/{id}/result` answer. */
export type JobResult = Omit<Awaited<ReturnType<typeof getResult>>, 'report'> & { report: JobReport };

/** The statuses after which a job never changes again. */
export const TERMINAL: readonly JobStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];
export const isTerminalStatus = (status: JobStatus): boolean => TERMINAL.includes(status);
