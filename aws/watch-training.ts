/**
 * The capacity watch, every few minutes: how many Batch jobs wait, start and run now (the dashboard's
 * queue states as gauges), and the safety net of the job queue's capacity-wait limit. Batch's limit
 * acts only on a job that it reports blocked for a reason it knows; a job that waits while *nothing*
 * trains (no instance could start, and Batch gave no reason, say for want of G/VT vCPU quota) would
 * wait for ever. Once nothing has trained for longer than the capacity wait (plus a grace that lets
 * Batch's own limit act first), the watch terminates the jobs waiting that long, and their job-state
 * events fail them NO_GPU_CAPACITY. Jobs that wait behind busy GPUs are never touched.
 */
import { emitMetrics, type MetricsSink } from '../core/platform/emf.ts';
import type { Logger } from '../core/platform/log.ts';
import type { BatchJobs } from './batch-jobs.ts';

/** Extra minutes past the capacity wait before the watch acts (Batch's own limit acts first). */
export const WATCH_GRACE_MINUTES = 15;

/** The status reason the watch gives a job it ends (`batchFailure` reads it as NO_GPU_CAPACITY). */
export const watchReason = (waitedMinutes: number, batchReason: string | undefined): string =>
  `descent: no GPU capacity within ${waitedMinutes} minutes (Batch: ${batchReason || 'no reason given'})`.slice(
    0,
    255,
  );

export interface WatchDeps {
  readonly batch: BatchJobs;
  readonly metrics: MetricsSink;
  readonly log: Logger;
  readonly now: () => Date;
  /** The deployment's capacity wait (`descent:capacityWaitMinutes`). */
  readonly capacityWaitMinutes: number;
}

export interface WatchResult {
  readonly waiting: number;
  readonly starting: number;
  readonly running: number;
  readonly oldestWaitSeconds: number;
  /** Batch job ids terminated for want of capacity. */
  readonly ended: string[];
}

export async function watchTraining(deps: WatchDeps): Promise<WatchResult> {
  const [runnable, starting, running] = await Promise.all([
    deps.batch.list('RUNNABLE'),
    deps.batch.list('STARTING'),
    deps.batch.list('RUNNING'),
  ]);
  const now = deps.now().getTime();
  const oldestWaitSeconds = Math.max(0, ...runnable.map((j) => (now - j.createdAt) / 1000));
  emitMetrics(deps.metrics, {
    batchJobsWaitingNow: runnable.length,
    batchJobsStartingNow: starting.length,
    batchJobsRunningNow: running.length,
    oldestWaitSeconds,
  });
  const ended: string[] = [];
  const limitMs = (deps.capacityWaitMinutes + WATCH_GRACE_MINUTES) * 60_000;
  // Something trains (or starts): the others wait their turn behind it, not for capacity.
  if (starting.length > 0 || running.length > 0)
    return {
      waiting: runnable.length,
      starting: starting.length,
      running: running.length,
      oldestWaitSeconds,
      ended,
    };
  for (const job of runnable) {
    if (now - job.createdAt < limitMs) continue;
    const waited = Math.floor((now - job.createdAt) / 60_000);
    await deps.batch.terminate(job.id, watchReason(waited, job.statusReason));
    deps.log.warn('no GPU capacity: ended a job waiting with nothing training', {
      batchJobId: job.id,
      jobName: job.name,
      waitedMinutes: waited,
      reason: job.statusReason,
    });
    ended.push(job.id);
  }
  return {
    waiting: runnable.length,
    starting: starting.length,
    running: running.length,
    oldestWaitSeconds,
    ended,
  };
}
