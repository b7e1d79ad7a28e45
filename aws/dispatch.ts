/**
 * The dispatcher: SQS stays the durable intake of jobs, and each message becomes exactly one AWS Batch
 * job. The Batch job id is recorded in the job record by compare-and-swap through the job lifecycle
 * (`dispatched`), so a redelivered message never runs a job twice: it finds the id recorded, or (after a
 * crash between the submit and the record) finds the Batch job by its unique name before submitting.
 * Batch's own retry strategy then makes the job's attempts (host lost, Spot reclaimed, a trainer's
 * temporary error); the message is done once the Batch job is recorded.
 */
import { isTerminal, type JobMessage } from '../core/jobs/job-record.ts';
import type { JobLifecycle } from '../core/jobs/lifecycle.ts';
import type { Logger } from '../core/platform/log.ts';
import { attemptDurationFor, type BatchJobs, batchJobName } from './batch-jobs.ts';

export type DispatchResult =
  /** A Batch job now runs it (submitted now, or found from a crashed delivery and recorded). */
  | 'dispatched'
  /** A Batch job was recorded for it before (a redelivered message). */
  | 'already-dispatched'
  /** It has ended (or was cancelled) before it ran: nothing to run. */
  | 'ended'
  /** It was deleted. */
  | 'gone';

export interface DispatchDeps {
  readonly lifecycle: JobLifecycle;
  readonly batch: BatchJobs;
  readonly log: Logger;
}

/** Dispatches one message's job; `receiveCount` > 1 means an earlier delivery may have submitted it. */
export async function dispatchJob(
  deps: DispatchDeps,
  message: JobMessage,
  receiveCount: number,
): Promise<DispatchResult> {
  const { tenant, jobId } = message;
  const found = await deps.lifecycle.jobs.find(tenant, jobId);
  if (!found) return 'gone';
  const { record } = found;
  if (isTerminal(record.status)) return 'ended';
  if (record.batchJob) return 'already-dispatched';

  const name = batchJobName(tenant, jobId);
  const earlier = receiveCount > 1 ? await deps.batch.find(name) : undefined;
  const batchJobId =
    earlier ??
    (await deps.batch.submit({
      tenant,
      jobId,
      attemptDurationSeconds: attemptDurationFor(record.spec.resources.maxRuntimeSeconds),
    }));
  const outcome = await deps.lifecycle.dispatched(tenant, jobId, batchJobId);
  const log = deps.log.child({ tenant, jobId, batchJobId });
  switch (outcome) {
    case 'recorded':
      log.info(earlier ? 'found the Batch job of an earlier delivery' : 'submitted to AWS Batch');
      return 'dispatched';
    case 'already-recorded':
      return 'already-dispatched';
    default:
      // Another delivery's Batch job runs it, or it ended (a cancel) or went meanwhile: stop this one.
      log.info('terminating a Batch job that is not needed', { outcome });
      await deps.batch.terminate(batchJobId, `descent: not needed (${outcome})`);
      return outcome === 'other-recorded' ? 'already-dispatched' : outcome === 'ended' ? 'ended' : 'gone';
  }
}
