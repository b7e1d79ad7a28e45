/**
 * The worker loop: receive → run → delete, with a heartbeat that keeps the message invisible while
 * the job trains. One failure never kills the loop: a temporary error makes the message visible again
 * after a backoff (and, after the queue's maximum receives, it goes to the dead-letter queue).
 * `stop()` is idempotent: it interrupts the job in hand, releases its message and waits.
 */

import { type JobMessage, jobMessage } from '../core/jobs/job-record.ts';
import type { Logger } from '../core/platform/log.ts';
import type { JobQueue, QueueMessage } from '../core/platform/ports.ts';
import { retryDelaySeconds } from '../core/platform/retry.ts';
import type { JobOutcome } from './run-job.ts';

export interface WorkerOptions {
  readonly queue: JobQueue;
  readonly run: (message: JobMessage, signal: AbortSignal) => Promise<JobOutcome>;
  readonly log: Logger;
  /** How long a received message stays invisible between heartbeats (default 60 s). */
  readonly visibilityTimeoutSeconds?: number;
  /** Heartbeat period (default a third of the visibility timeout). */
  readonly heartbeatSeconds?: number;
  /** Long-poll wait per receive (default 20 s, SQS's maximum). */
  readonly waitSeconds?: number;
  /** Seconds before a temporarily failed job is retried, by receive count (default `retryDelaySeconds`). */
  readonly retryDelay?: (receiveCount: number) => number;
  /** Called when the worker starts and ends a job (ECS task scale-in protection hooks here). */
  readonly onBusy?: (busy: boolean) => Promise<void> | void;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export class Worker {
  readonly #options: WorkerOptions;
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;
  /** Jobs handled since start, by outcome (for tests and logs). */
  readonly handled: Record<JobOutcome | 'error' | 'malformed', number> = {
    done: 0,
    interrupted: 0,
    fenced: 0,
    error: 0,
    malformed: 0,
  };

  constructor(options: WorkerOptions) {
    this.#options = options;
  }

  get stopping(): boolean {
    return this.#abort.signal.aborted;
  }

  /** Starts the loop; the promise settles when the worker has stopped. */
  start(): Promise<void> {
    this.#loop ??= this.#run();
    return this.#loop;
  }

  /** Interrupts the current job, releases its message and waits for the loop to end. Safe to call twice. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { queue, log } = this.#options;
    const signal = this.#abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      let messages: QueueMessage[];
      try {
        messages = await queue.receive({
          waitSeconds: this.#options.waitSeconds ?? 20,
          visibilityTimeoutSeconds: this.#visibility(),
          signal,
        });
        failures = 0;
      } catch (error) {
        if (signal.aborted) break;
        failures++;
        log.error('receive failed; backing off', { error: String(error), failures });
        await sleep(Math.min(30_000, 500 * 2 ** Math.min(failures, 6)), signal);
        continue;
      }
      for (const message of messages) await this.#handle(message);
    }
  }

  #visibility(): number {
    return this.#options.visibilityTimeoutSeconds ?? 60;
  }

  async #handle(message: QueueMessage): Promise<void> {
    const { queue, log } = this.#options;
    let parsed: JobMessage;
    try {
      parsed = jobMessage.parse(JSON.parse(message.body));
    } catch {
      log.error('dropping a malformed queue message', {
        messageId: message.messageId,
        body: message.body.slice(0, 200),
      });
      this.handled.malformed++;
      await queue.delete(message.receiptHandle).catch(() => {});
      return;
    }
    const heartbeatMs = (this.#options.heartbeatSeconds ?? this.#visibility() / 3) * 1000;
    const heartbeat = setInterval(() => {
      queue.extendVisibility(message.receiptHandle, this.#visibility()).catch((error: unknown) => {
        log.warn('heartbeat failed', { jobId: parsed.jobId, error: String(error) });
      });
    }, heartbeatMs);
    await this.#options.onBusy?.(true);
    try {
      const outcome = await this.#options.run(parsed, this.#abort.signal);
      this.handled[outcome]++;
      if (outcome === 'done') await queue.delete(message.receiptHandle);
      else if (outcome === 'interrupted') await queue.release(message.receiptHandle);
      // 'fenced': another delivery owns the job; leave this message to expire or be deleted by it.
    } catch (error) {
      this.handled.error++;
      const delay = (this.#options.retryDelay ?? retryDelaySeconds)(message.receiveCount);
      log.error('job attempt failed with a temporary error; retrying after a backoff', {
        jobId: parsed.jobId,
        tenant: parsed.tenant,
        receiveCount: message.receiveCount,
        retryInSeconds: delay,
        error: String((error as Error)?.stack ?? error),
      });
      await queue.extendVisibility(message.receiptHandle, delay).catch(() => {});
    } finally {
      clearInterval(heartbeat);
      await this.#options.onBusy?.(false);
    }
  }
}
