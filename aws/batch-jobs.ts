/**
 * Training jobs on AWS Batch: the three calls descent makes (submit one Batch job per job, find one by
 * name after a crashed dispatch, terminate one on cancel), behind a small interface so that the
 * dispatcher and the cancel path are tested without an AWS account.
 */
import {
  type BatchClient,
  ListJobsCommand,
  SubmitJobCommand,
  TerminateJobCommand,
} from '@aws-sdk/client-batch';
import { ENV } from '../core/platform/config.ts';
import { ULID_PATTERN } from '../core/platform/ids.ts';
import { TENANT_PATTERN } from '../core/platform/keys.ts';

/** One job's run on Batch. */
export interface TrainingRun {
  readonly tenant: string;
  readonly jobId: string;
  /** Batch stops an attempt that runs longer (the job's `resources.maxRuntimeSeconds` plus a grace). */
  readonly attemptDurationSeconds: number;
}

export interface BatchJobs {
  /** Submits the run; returns its Batch job id. */
  submit(run: TrainingRun): Promise<string>;
  /** The id of a Batch job of this queue named `name` (any status), if there is one. */
  find(name: string): Promise<string | undefined>;
  /** Terminates (or, before it starts, cancels) a Batch job; `reason` becomes its status reason. */
  terminate(batchJobId: string, reason: string): Promise<void>;
  /** The jobs of this queue in `status` now. */
  list(status: BatchJobStatus): Promise<BatchJobSummary[]>;
}

/** The Batch states a job passes through before it ends. */
export type BatchJobStatus = 'SUBMITTED' | 'PENDING' | 'RUNNABLE' | 'STARTING' | 'RUNNING';

export interface BatchJobSummary {
  readonly id: string;
  readonly name: string;
  /** When it was submitted (ms since the epoch). */
  readonly createdAt: number;
  /** Why it waits, when Batch says (a blocked queue's reason). */
  readonly statusReason?: string;
}

/**
 * Exit codes of the trainer on Batch (`trainer/main.ts`), read by the job definition's retry strategy
 * (`infra/training-compute.ts`) and by the job-state event handler.
 */
export const TRAINER_EXIT = {
  /** The job ended (or needs nothing more from this container). */
  done: 0,
  /** A setting is malformed: the container cannot run any job. */
  badSetting: 2,
  /** A temporary error, or the container was stopped: Batch retries, and the job resumes from its checkpoint. */
  retry: 75,
  /** No GPU (or the backend could not start): a deployment problem that a retry would not fix. */
  noGpu: 78,
} as const;

/** Extra time Batch gives an attempt past the job's own limit: loading, evaluation and publishing. */
export const ATTEMPT_GRACE_SECONDS = 900;

/** Batch stops an attempt after this long: the job's own limit (the trainer enforces it) plus a grace. */
export const attemptDurationFor = (maxRuntimeSeconds: number): number =>
  Math.max(60, maxRuntimeSeconds + ATTEMPT_GRACE_SECONDS);

const PREFIX = 'descent-';

/** `descent-<tenant>-<job id>`: unique per job, so a crashed dispatch finds its Batch job again. */
export const batchJobName = (tenant: string, jobId: string): string => `${PREFIX}${tenant}-${jobId}`;

/** The tenant and job of a Batch job named by `batchJobName`, or `undefined` for another name. */
export function parseBatchJobName(name: string): { tenant: string; jobId: string } | undefined {
  if (!name.startsWith(PREFIX) || name.length < PREFIX.length + 28) return undefined;
  const jobId = name.slice(-26);
  const tenant = name.slice(PREFIX.length, -27);
  if (name.at(-27) !== '-' || !ULID_PATTERN.test(jobId) || !TENANT_PATTERN.test(tenant)) return undefined;
  return { tenant, jobId };
}

export interface SdkBatchJobsOptions {
  readonly client: BatchClient;
  /** The job queue's ARN. */
  readonly jobQueue: string;
  /** The trainer's job definition (ARN with revision). */
  readonly jobDefinition: string;
}

export class SdkBatchJobs implements BatchJobs {
  readonly #options: SdkBatchJobsOptions;

  constructor(options: SdkBatchJobsOptions) {
    this.#options = options;
  }

  async submit(run: TrainingRun): Promise<string> {
    const { client, jobQueue, jobDefinition } = this.#options;
    const result = await client.send(
      new SubmitJobCommand({
        jobName: batchJobName(run.tenant, run.jobId),
        jobQueue,
        jobDefinition,
        // The container runs exactly this job (trainer/main.ts reads these two).
        containerOverrides: {
          environment: [
            { name: ENV.jobTenant, value: run.tenant },
            { name: ENV.jobId, value: run.jobId },
          ],
        },
        timeout: { attemptDurationSeconds: run.attemptDurationSeconds },
      }),
    );
    if (!result.jobId) throw new Error('AWS Batch returned no jobId');
    return result.jobId;
  }

  async find(name: string): Promise<string | undefined> {
    const { client, jobQueue } = this.#options;
    let nextToken: string | undefined;
    do {
      const page = await client.send(
        new ListJobsCommand({
          jobQueue,
          // With a filter, Batch lists jobs of every status.
          filters: [{ name: 'JOB_NAME', values: [name] }],
          ...(nextToken ? { nextToken } : {}),
        }),
      );
      const found = page.jobSummaryList?.find((job) => job.jobName === name && job.jobId);
      if (found?.jobId) return found.jobId;
      nextToken = page.nextToken;
    } while (nextToken);
    return undefined;
  }

  async terminate(batchJobId: string, reason: string): Promise<void> {
    await this.#options.client.send(new TerminateJobCommand({ jobId: batchJobId, reason }));
  }

  async list(status: BatchJobStatus): Promise<BatchJobSummary[]> {
    const { client, jobQueue } = this.#options;
    const jobs: BatchJobSummary[] = [];
    let nextToken: string | undefined;
    do {
      const page = await client.send(
        new ListJobsCommand({ jobQueue, jobStatus: status, ...(nextToken ? { nextToken } : {}) }),
      );
      for (const job of page.jobSummaryList ?? []) {
        if (!job.jobId || !job.jobName) continue;
        jobs.push({
          id: job.jobId,
          name: job.jobName,
          createdAt: job.createdAt ?? 0,
          ...(job.statusReason ? { statusReason: job.statusReason } : {}),
        });
      }
      nextToken = page.nextToken;
    } while (nextToken);
    return jobs;
  }
}
