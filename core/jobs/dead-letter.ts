/**
 * A job whose message reached the dead-letter queue was received the maximum number of times without
 * finishing: mark it FAILED (`MAX_ATTEMPTS`) so that no job stays QUEUED or RUNNING forever.
 */
import { NotFoundError } from '../platform/errors.ts';
import { log } from '../platform/log.ts';
import type { JobQueue, ObjectStore } from '../platform/ports.ts';
import { advanceSweep } from '../sweeps/sweep-controller.ts';
import { isTerminal, type JobMessage, jobMessage, transition } from './job-record.ts';
import { JobStore, SkipUpdate } from './job-store.ts';

export type DeadLetterOutcome = 'failed' | 'cancelled' | 'already-finished' | 'unknown-job' | 'malformed';

export async function handleDeadLetter(
  store: ObjectStore,
  body: string,
  now: Date,
  maxAttempts?: number,
  /** To queue a sweep's next trial when the job was one (without it, the sweep only records the end). */
  queue?: JobQueue,
): Promise<DeadLetterOutcome> {
  let message: JobMessage;
  try {
    message = jobMessage.parse(JSON.parse(body));
  } catch {
    return 'malformed';
  }
  const jobs = new JobStore(store);
  let outcome: DeadLetterOutcome = 'already-finished';
  let sweepId: string | undefined;
  try {
    await jobs.update(message.tenant, message.jobId, (record) => {
      sweepId = record.sweepId;
      if (isTerminal(record.status)) throw new SkipUpdate();
      if (record.status === 'CANCELLING') {
        outcome = 'cancelled';
        return transition(record, 'CANCELLED', now);
      }
      outcome = 'failed';
      const times = maxAttempts ?? Math.max(record.attempt, 1);
      return transition(record, 'FAILED', now, {
        error: {
          code: 'MAX_ATTEMPTS',
          message: `The job was delivered to a worker ${times} time${times > 1 ? 's' : ''} without finishing (the worker crashed or was stopped each time); it was moved to the dead-letter queue.`,
        },
      });
    });
  } catch (error) {
    if (error instanceof NotFoundError || (error as Error).message?.startsWith('invalid'))
      return 'unknown-job';
    throw error;
  }
  if (outcome !== 'already-finished') {
    await jobs.appendEvent(message.tenant, message.jobId, {
      at: now.toISOString(),
      type: 'state',
      status: outcome === 'failed' ? 'FAILED' : 'CANCELLED',
      message:
        outcome === 'failed'
          ? 'Failed after the maximum number of attempts (dead-lettered).'
          : 'Cancelled (dead-lettered while cancelling).',
    });
    // A sweep's trial: the sweep records its end and queues the next trial (best effort: the sweep's
    // other controllers retry, and this message is about the job, which is done).
    if (sweepId) {
      await advanceSweep(
        { store, now: () => now, ...(queue ? { queue } : {}) },
        message.tenant,
        sweepId,
      ).catch((error: unknown) =>
        log.warn('advancing the sweep of a dead-lettered trial failed', { sweepId, error: String(error) }),
      );
    }
  }
  return outcome;
}
