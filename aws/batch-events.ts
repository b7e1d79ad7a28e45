/**
 * AWS Batch's job-state events, read for what a trainer cannot report itself: a job that never started
 * (it waited too long for a GPU, its image could not be pulled), one that ran out of memory, whose
 * host was lost on every attempt, or whose trainer exited without ending it. `batchFailure` is the pure
 * verdict (tested on recorded events); `handleBatchEvent` applies it through the job lifecycle and
 * counts Batch's queue states and blocked queues for the dashboard and the capacity alarm.
 */
import type { JobError } from '../core/jobs/job-record.ts';
import { isTerminal } from '../core/jobs/job-record.ts';
import type { ExecutionEndOutcome, JobLifecycle } from '../core/jobs/lifecycle.ts';
import { emitMetrics, type MetricName, type MetricsSink } from '../core/platform/emf.ts';
import type { Logger } from '../core/platform/log.ts';
import { parseBatchJobName, TRAINER_EXIT } from './batch-jobs.ts';

/** `detail-type` of the events the rule sends here. */
export const BATCH_JOB_STATE_CHANGE = 'Batch Job State Change';
export const BATCH_JOB_QUEUE_BLOCKED = 'Batch Job Queue Blocked';

/** The part of a Batch job's detail (as DescribeJobs and the events give it) that the verdict reads. */
export interface BatchJobDetail {
  readonly jobId: string;
  readonly jobName: string;
  readonly status: string;
  readonly statusReason?: string;
  readonly attempts?: readonly {
    readonly container?: { readonly exitCode?: number; readonly reason?: string };
    readonly statusReason?: string;
  }[];
  readonly container?: { readonly exitCode?: number; readonly reason?: string };
}

/** Error codes a job gets from what Batch reports. */
export const BATCH_ERROR_CODES = {
  noCapacity: 'NO_GPU_CAPACITY',
  outOfMemory: 'OUT_OF_MEMORY',
  imagePull: 'IMAGE_PULL_FAILED',
  trainerUnavailable: 'TRAINER_UNAVAILABLE',
  timeout: 'TIMEOUT',
  maxAttempts: 'MAX_ATTEMPTS',
  trainerExited: 'TRAINER_EXITED',
  trainerFailed: 'TRAINER_FAILED',
} as const;

const TIME_LIMIT_PREFIX = /^Canceled by JobStateTimeLimit action due to reason:\s*/i;

/** Why a FAILED Batch job failed, as the job's error; the capacity wait (minutes) goes into its message. */
export function batchFailure(detail: BatchJobDetail, capacityWaitMinutes?: number): JobError {
  const reason = detail.statusReason ?? '';
  const attempts = detail.attempts ?? [];
  const last = attempts.at(-1);
  const container = last?.container ?? detail.container ?? {};
  const containerReason = container.reason ?? '';
  const tries = `${attempts.length} attempt${attempts.length === 1 ? '' : 's'}`;
  const waited = capacityWaitMinutes ? ` within ${capacityWaitMinutes} minutes` : '';
  if (TIME_LIMIT_PREFIX.test(reason) || /^descent: no GPU capacity/.test(reason)) {
    const why = reason.replace(TIME_LIMIT_PREFIX, '');
    const explained = why.startsWith('descent:')
      ? "no GPU instance could start while nothing else trained (the account's G/VT vCPU quota, or EC2 capacity)"
      : /INSUFFICIENT_INSTANCE_CAPACITY/.test(why)
        ? 'EC2 had no capacity for any of the GPU instance types'
        : /MAX_RESOURCE|RESOURCE_REQUIREMENT/.test(why)
          ? 'the compute environment cannot fit the job (its maximum vCPUs, or no instance type with the GPU, vCPUs and memory it asks for)'
          : /SERVICE_ROLE/.test(why)
            ? "AWS Batch's service role lacks a permission"
            : 'AWS Batch could not place it';
    return {
      code: BATCH_ERROR_CODES.noCapacity,
      message: `No GPU capacity could be had${waited}: ${explained} (${why}). Submit it again later; operators: see "No GPU capacity" in the runbook.`,
    };
  }
  if (/OutOfMemory/i.test(containerReason) || /OutOfMemory/i.test(reason)) {
    return {
      code: BATCH_ERROR_CODES.outOfMemory,
      message: `The trainer ran out of memory (${containerReason || reason}): train on fewer rows, with smaller batches or a smaller model, or deploy larger instance types.`,
    };
  }
  if (/CannotPullContainer|CannotPullImage|pull image/i.test(`${containerReason} ${reason}`)) {
    return {
      code: BATCH_ERROR_CODES.imagePull,
      message: `The trainer's image could not be pulled, so the job never started (${containerReason || reason}). This is a deployment problem: submit the job again once it is fixed.`,
    };
  }
  if (container.exitCode === TRAINER_EXIT.noGpu) {
    return {
      code: BATCH_ERROR_CODES.trainerUnavailable,
      message:
        'The trainer found no GPU (or its TensorFlow backend could not start) and refused to train on the CPU. This is a deployment problem (driver, image or instance type; alarm "TrainerWithoutGpu"): submit the job again once it is fixed.',
    };
  }
  if (/^Job attempt duration exceeded timeout/i.test(reason)) {
    return {
      code: BATCH_ERROR_CODES.timeout,
      message:
        'The run went past resources.maxRuntimeSeconds plus its grace for loading and publishing, and AWS Batch stopped it; its last checkpoint is kept.',
    };
  }
  if (/^Host EC2/i.test(reason) || /^Host EC2/i.test(last?.statusReason ?? '')) {
    return {
      code: BATCH_ERROR_CODES.maxAttempts,
      message: `The GPU instance was lost (a Spot reclaim or a host failure: ${reason || last?.statusReason}) on the last of ${tries}; it resumed from its checkpoint each time but never finished.`,
    };
  }
  if (container.exitCode === TRAINER_EXIT.retry) {
    return {
      code: BATCH_ERROR_CODES.maxAttempts,
      message: `The trainer failed with a temporary error on each of ${tries} (see the job's events for each error); it was not retried again.`,
    };
  }
  const exit = container.exitCode === undefined ? '' : ` with exit code ${container.exitCode}`;
  return {
    code: BATCH_ERROR_CODES.trainerFailed,
    message: `The trainer stopped${exit} without ending the job (${[reason, containerReason].filter(Boolean).join('; ') || 'no reason given'}).`,
  };
}

/** The metric counting Batch jobs entering a state (the dashboard's "Batch queue states"). */
const STATE_METRICS: Partial<Record<string, MetricName>> = {
  RUNNABLE: 'batchJobsRunnable',
  STARTING: 'batchJobsStarting',
  RUNNING: 'batchJobsRunning',
  SUCCEEDED: 'batchJobsSucceeded',
  FAILED: 'batchJobsFailed',
};

export interface BatchEventDeps {
  readonly lifecycle: JobLifecycle;
  readonly metrics: MetricsSink;
  readonly log: Logger;
  /** The job queue's capacity wait, for the failure message. */
  readonly capacityWaitMinutes?: number;
  /** One pass of a sweep's controller (after a trial's trainer ended it). */
  readonly advanceSweep?: (tenant: string, sweepId: string) => Promise<unknown>;
}

export type BatchEventOutcome = ExecutionEndOutcome | 'blocked' | 'ignored' | 'counted';

/** One EventBridge event from Batch: its `detail-type` and `detail`. */
export async function handleBatchEvent(
  deps: BatchEventDeps,
  detailType: string,
  detail: BatchJobDetail,
): Promise<BatchEventOutcome> {
  const properties = { batchJobId: detail.jobId, jobName: detail.jobName, status: detail.status };
  if (detailType === BATCH_JOB_QUEUE_BLOCKED) {
    deps.log.warn('AWS Batch job queue blocked', { ...properties, reason: detail.statusReason });
    emitMetrics(deps.metrics, { jobQueueBlocked: 1 }, { properties });
    return 'blocked';
  }
  if (detailType !== BATCH_JOB_STATE_CHANGE) return 'ignored';
  const metric = STATE_METRICS[detail.status];
  if (metric) emitMetrics(deps.metrics, { [metric]: 1 }, { properties });
  const job = parseBatchJobName(detail.jobName);
  if (!job || (detail.status !== 'FAILED' && detail.status !== 'SUCCEEDED'))
    return job ? 'counted' : 'ignored';
  const found = await deps.lifecycle.jobs.find(job.tenant, job.jobId);
  if (!found) return 'unknown-job';
  if (isTerminal(found.record.status)) {
    // The trainer ended it; a trial's sweep queues its next trials now (the trainer queues nothing).
    if (found.record.sweepId) await deps.advanceSweep?.(job.tenant, found.record.sweepId);
    return 'already-finished';
  }
  const error: JobError =
    detail.status === 'FAILED'
      ? batchFailure(detail, deps.capacityWaitMinutes)
      : {
          code: BATCH_ERROR_CODES.trainerExited,
          message:
            'The trainer exited normally without ending the job (another run of it may have taken it over).',
        };
  const outcome = await deps.lifecycle.executionEnded(job.tenant, job.jobId, {
    batchJobId: detail.jobId,
    error,
  });
  deps.log.info('Batch job ended the job', { ...properties, ...job, outcome, code: error.code });
  if (outcome === 'failed' && error.code === BATCH_ERROR_CODES.noCapacity)
    emitMetrics(deps.metrics, { jobsWithoutCapacity: 1 }, { properties: { ...properties, ...job } });
  return outcome;
}
