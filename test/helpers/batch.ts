/**
 * AWS Batch as the dispatcher and the cancel path see it, in memory (there is no Batch here): jobs
 * submitted by name, found by name, terminated with a reason. It keeps every call, so tests assert
 * what reached Batch; `failNext` makes the next call throw as a throttled API would.
 */
import type { BatchJobStatus, BatchJobSummary, BatchJobs, TrainingRun } from '../../aws/batch-jobs.ts';
import { batchJobName } from '../../aws/batch-jobs.ts';

export interface BatchJobState {
  readonly id: string;
  readonly name: string;
  readonly run: TrainingRun;
  status: BatchJobStatus | 'FAILED';
  /** When it was submitted (ms since the epoch); tests move it back to age it. */
  createdAt: number;
  reason?: string;
}

export class InMemoryBatch implements BatchJobs {
  readonly jobs: BatchJobState[] = [];
  readonly terminated: { id: string; reason: string }[] = [];
  #failures: string[] = [];
  #next = 1;
  /** Runs after a submit is accepted, before it returns (what happens meanwhile: a cancel). */
  onSubmit: ((run: TrainingRun) => Promise<void>) | undefined;

  /** The next call of `operation` throws. */
  failNext(operation: 'submit' | 'find' | 'terminate' | 'list'): void {
    this.#failures.push(operation);
  }

  #maybeFail(operation: string): void {
    const at = this.#failures.indexOf(operation);
    if (at >= 0) {
      this.#failures.splice(at, 1);
      throw Object.assign(new Error(`Batch ${operation} throttled`), { name: 'TooManyRequestsException' });
    }
  }

  async submit(run: TrainingRun): Promise<string> {
    this.#maybeFail('submit');
    const id = `batch-${this.#next++}`;
    this.jobs.push({
      id,
      name: batchJobName(run.tenant, run.jobId),
      run,
      status: 'RUNNABLE',
      createdAt: Date.now(),
    });
    await this.onSubmit?.(run);
    return id;
  }

  async find(name: string): Promise<string | undefined> {
    this.#maybeFail('find');
    return this.jobs.find((j) => j.name === name)?.id;
  }

  async list(status: BatchJobStatus): Promise<BatchJobSummary[]> {
    this.#maybeFail('list');
    return this.jobs
      .filter((j) => j.status === status)
      .map((j) => ({
        id: j.id,
        name: j.name,
        createdAt: j.createdAt,
        ...(j.reason ? { statusReason: j.reason } : {}),
      }));
  }

  async terminate(batchJobId: string, reason: string): Promise<void> {
    this.#maybeFail('terminate');
    this.terminated.push({ id: batchJobId, reason });
    const job = this.jobs.find((j) => j.id === batchJobId);
    if (job) Object.assign(job, { status: 'FAILED', reason });
  }
}
