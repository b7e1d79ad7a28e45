/**
 * The job lifecycle: the one module that changes a job's status. It owns the transition table, the
 * compare-and-swap write of `job.json`, the state event, the listing and active-job markers, submit
 * (with compensation: a job that cannot be queued is taken back), claim, cancel, finish, the
 * dead-letter verdict and deletion, the AWS Batch job that runs it (`dispatched`) and what Batch
 * reports of a run its trainer could not end (`executionEnded`), and one notification of every change
 * that sweeps, metrics, job state-change events and (on AWS) the cancel path to Batch subscribe to.
 *
 * Every other module reads records through `JobStore` and asks this one for changes; a test proves
 * that nothing else writes `job.json` or calls `transition`.
 */
import { IdempotencyKeys } from '../api/idempotency.ts';
import {
  ConflictError,
  NotFoundError,
  PreconditionFailedError,
  ServiceUnavailableError,
} from '../platform/errors.ts';
import { reverseUlid } from '../platform/ids.ts';
import { isValidId, jobIndexPrefix, jobKeys } from '../platform/keys.ts';
import { MAX_WARNINGS } from '../platform/limits.ts';
import type { Logger } from '../platform/log.ts';
import type { JobQueue, ObjectStore } from '../platform/ports.ts';
import { bounded } from '../platform/text.ts';
import { UNCHANGED, VersionedDocuments } from '../platform/versioned-document.ts';
import { ActiveJobs } from './active-jobs.ts';
import {
  isTerminal,
  type JobError,
  type JobMessage,
  type JobRecord,
  type JobStatus,
  jobRecord,
} from './job-record.ts';
import { JobStore, notFound } from './job-store.ts';

/** Which status may follow which. RUNNING → RUNNING is a new attempt after a redelivery. */
const TRANSITIONS: Record<JobStatus, readonly JobStatus[]> = {
  QUEUED: ['RUNNING', 'CANCELLED', 'FAILED'],
  RUNNING: ['RUNNING', 'CANCELLING', 'SUCCEEDED', 'FAILED', 'STOPPED_EARLY'],
  CANCELLING: ['CANCELLED', 'FAILED'],
  SUCCEEDED: [],
  FAILED: [],
  CANCELLED: [],
  STOPPED_EARLY: [],
};

export const canTransition = (from: JobStatus, to: JobStatus): boolean => TRANSITIONS[from].includes(to);

/** Returns the record moved to `to` with `patch` applied, or throws a 409 naming both states. */
export function transition(
  record: JobRecord,
  to: JobStatus,
  now: Date,
  patch: Partial<JobRecord> = {},
): JobRecord {
  if (!canTransition(record.status, to)) {
    throw new ConflictError(
      `Job ${record.id} is ${record.status} and cannot become ${to}.`,
      'INVALID_STATE',
      {
        status: record.status,
      },
    );
  }
  const stamp = now.toISOString();
  return {
    ...record,
    ...patch,
    status: to,
    updatedAt: stamp,
    ...(to === 'RUNNING' && !record.startedAt ? { startedAt: stamp } : {}),
    ...(isTerminal(to) ? { finishedAt: stamp } : {}),
  };
}

/** This attempt no longer owns the job (another attempt claimed it, or it ended meanwhile). */
export class FencedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FencedError';
  }
}

/**
 * Who made a change: what listeners may tell apart (a sweep ignores the changes it made itself).
 * `executor`: the scheduler that runs trainers (AWS Batch) reporting an end the trainer could not.
 */
export type ChangeSource = 'api' | 'sweep' | 'trainer' | 'dead-letter' | 'dispatcher' | 'executor';

export interface JobChange {
  readonly tenant: string;
  /** The record as the change left it. */
  readonly record: JobRecord;
  /** The status before; `undefined` for a job just submitted. */
  readonly from: JobStatus | undefined;
  readonly by: ChangeSource;
}

export type JobListener = (change: JobChange) => Promise<void> | void;

/** A delivery's claim on a job: the attempt that owns it while it runs. */
export interface Fence {
  readonly attempt: number;
}

export type Claim =
  /** This delivery owns the job now (a new attempt). */
  | { readonly kind: 'running'; readonly record: JobRecord }
  /** It was being cancelled before it started: it is CANCELLED now, with nothing to train. */
  | { readonly kind: 'cancelled'; readonly record: JobRecord }
  /** It had ended before this delivery (a duplicate message). */
  | { readonly kind: 'ended'; readonly record: JobRecord }
  /** It no longer exists (deleted after it ended). */
  | { readonly kind: 'gone' };

/** `dispatched`: AWS Batch runs the job already; its job-state events end it, not the dead-letter queue. */
export type DeadLetterOutcome = 'failed' | 'cancelled' | 'already-finished' | 'dispatched' | 'unknown-job';

/**
 * What recording a Batch job did: `recorded` (this one runs the job now), `already-recorded` (a
 * redelivered message: the same Batch job was recorded before), `other-recorded` (another Batch job
 * runs it: the caller terminates its own), `ended` (the job ended meanwhile: the caller terminates its
 * Batch job), `unknown-job` (deleted).
 */
export type DispatchOutcome = 'recorded' | 'already-recorded' | 'other-recorded' | 'ended' | 'unknown-job';

/** What an executor's report of an ended run did to the job. */
export type ExecutionEndOutcome = 'failed' | 'cancelled' | 'already-finished' | 'not-current' | 'unknown-job';

export interface LifecycleDeps {
  readonly store: ObjectStore;
  /** Where submitted jobs are queued; without it, `submit` refuses. */
  readonly queue?: JobQueue;
  readonly now: () => Date;
  readonly log?: Logger;
}

/**
 * What a record may hold of user-derived text is bounded here, where every record is written: an
 * error quoting a 50 MB cell keeps its first `MAX_MESSAGE_CHARS` characters, warnings their first
 * `MAX_WARNINGS`.
 */
function boundRecord(record: JobRecord): JobRecord {
  return {
    ...record,
    ...(record.error
      ? { error: { code: bounded(record.error.code, 64), message: bounded(record.error.message) } }
      : {}),
    ...(record.warnings ? { warnings: record.warnings.slice(0, MAX_WARNINGS).map((w) => bounded(w)) } : {}),
  };
}

/** The one place whose change of a record is final: a status change, its event, its markers, its notice. */
export class JobLifecycle {
  readonly jobs: JobStore;
  /** The active-jobs quota's slots (read `count` for the room left; only this module takes and frees them). */
  readonly activeJobs: ActiveJobs;
  readonly #deps: LifecycleDeps;
  readonly #records: VersionedDocuments<typeof jobRecord>;
  readonly #listeners: JobListener[] = [];

  constructor(deps: LifecycleDeps) {
    this.#deps = deps;
    this.jobs = new JobStore(deps.store);
    this.#records = new VersionedDocuments(deps.store, jobRecord, { what: 'job record' });
    this.activeJobs = new ActiveJobs({
      store: deps.store,
      now: deps.now,
      find: async (tenant, jobId) => (await this.jobs.find(tenant, jobId))?.record,
    });
  }

  /** Whether `submit` can queue jobs (a lifecycle without a queue only observes and ends them). */
  get canSubmit(): boolean {
    return this.#deps.queue !== undefined;
  }

  /** Calls `listener` after every change of a job's status (errors are logged, never thrown back). */
  subscribe(listener: JobListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Takes an active-jobs slot (a 429 past `quota`; a sweep's trials pass none), stores a new QUEUED
   * job (create-once), its listing marker and event, then queues its message. If the message cannot
   * be sent, the job is taken back and a 503 says that nothing was accepted. `recovering`: a sweep
   * finishing a crashed controller's claim, whose job may exist already; its marker is restored and
   * its message sent again only while it is still QUEUED.
   */
  async submit(
    tenant: string,
    submitted: JobRecord,
    options: { by: ChangeSource; message: string; recovering?: boolean; quota?: number },
  ): Promise<JobRecord> {
    const queue = this.#deps.queue;
    if (!queue) throw new Error('JobLifecycle.submit needs a queue');
    const message = JSON.stringify({ tenant, jobId: submitted.id } satisfies JobMessage);
    const slot = await this.activeJobs.reserve(tenant, submitted.id, options.quota);
    const record = boundRecord({ ...submitted, activeSlot: slot });
    try {
      await this.#records.create(jobKeys(tenant, record.id).record, record);
    } catch (error) {
      await this.activeJobs.release(tenant, record).catch(() => {});
      if (!(error instanceof PreconditionFailedError) || !options.recovering) throw error;
      const existing = (await this.jobs.get(tenant, record.id)).record;
      await this.#putMarkers(tenant, existing);
      if (existing.status === 'QUEUED') await queue.send(message);
      return existing;
    }
    await this.#putMarkers(tenant, record);
    await this.#event(tenant, record, options.message, true);
    try {
      await queue.send(message);
    } catch (error) {
      // Stored but not queued, it would never run: take it back, so that the caller's error is the
      // truth ("nothing was accepted") and a retry starts over.
      this.#deps.log?.error('queueing a submitted job failed; removing it', {
        tenant,
        jobId: record.id,
        error: String(error),
      });
      await this.#purge(tenant, record.id).catch((e: unknown) =>
        this.#deps.log?.error('could not remove the unqueued job', { jobId: record.id, error: String(e) }),
      );
      throw new ServiceUnavailableError(
        'The job could not be queued, and nothing was stored; retry the request.',
      );
    }
    await this.#notify({ tenant, record, from: undefined, by: options.by });
    return record;
  }

  /** A delivery takes the job: RUNNING as a new attempt on `backend`, or CANCELLED if it was being cancelled. */
  async claim(tenant: string, jobId: string, backend: string): Promise<Claim> {
    let result: { record: JobRecord; from: JobStatus; changed: boolean };
    try {
      result = await this.#change(
        tenant,
        jobId,
        'trainer',
        (record) => {
          if (isTerminal(record.status)) return UNCHANGED;
          if (record.status === 'CANCELLING') return transition(record, 'CANCELLED', this.#deps.now());
          return transition(record, 'RUNNING', this.#deps.now(), {
            attempt: record.attempt + 1,
            backend,
            error: undefined,
          });
        },
        (record) =>
          record.status === 'CANCELLED'
            ? 'Cancelled before training started.'
            : `Attempt ${record.attempt} started on the ${backend} backend.`,
      );
    } catch (error) {
      if (error instanceof NotFoundError) return { kind: 'gone' };
      throw error;
    }
    const { record, changed } = result;
    if (!changed) return { kind: 'ended', record };
    return record.status === 'CANCELLED' ? { kind: 'cancelled', record } : { kind: 'running', record };
  }

  /**
   * Cancels a job: QUEUED → CANCELLED at once, RUNNING → CANCELLING (its trainer stops after the
   * epoch). From the API a job that has ended is a 409; a sweep cancelling its trials passes over
   * those (and over a job not stored yet: `undefined`).
   */
  async cancel(
    tenant: string,
    jobId: string,
    by: 'api' | 'sweep',
  ): Promise<{ record: JobRecord; changed: boolean } | undefined> {
    const now = this.#deps.now();
    const sweep = by === 'sweep';
    try {
      const { record, changed } = await this.#change(
        tenant,
        jobId,
        by,
        (current) => {
          const patch = { cancelRequestedAt: now.toISOString() };
          if (current.status === 'QUEUED') return transition(current, 'CANCELLED', now, patch);
          if (current.status === 'RUNNING') return transition(current, 'CANCELLING', now, patch);
          if (current.status === 'CANCELLING' || sweep) return UNCHANGED;
          throw new ConflictError(
            `Job ${jobId} is ${current.status}; only QUEUED or RUNNING jobs can be cancelled.`,
            'INVALID_STATE',
            { status: current.status },
          );
        },
        (record) =>
          record.status === 'CANCELLED'
            ? `Cancelled before it started${sweep ? ': its sweep was cancelled' : ''}.`
            : sweep
              ? 'Its sweep was cancelled; stopping after the current epoch.'
              : 'Cancel requested; stopping after the current epoch.',
      );
      return { record, changed };
    } catch (error) {
      if (sweep && error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /**
   * A change by the attempt that owns the job that leaves its status as it is (progress, the latest
   * checkpoint); `FencedError` if another attempt owns it now or it has ended. Returns the record
   * written, whose status tells the trainer whether a cancel was asked for.
   */
  async record(
    tenant: string,
    jobId: string,
    fence: Fence,
    patch: (record: JobRecord) => Partial<JobRecord>,
  ): Promise<JobRecord> {
    const { record } = await this.#change(tenant, jobId, 'trainer', (current) => {
      assertOwner(current, fence);
      return {
        ...current,
        ...patch(current),
        status: current.status,
        updatedAt: this.#deps.now().toISOString(),
      };
    });
    return record;
  }

  /**
   * The owning attempt ends the job: SUCCEEDED, FAILED or STOPPED_EARLY (a cancel asked for meanwhile
   * makes a success or an early stop CANCELLED), or CANCELLED. `message` is the event's, for the
   * status the job ended with.
   */
  async finish(
    tenant: string,
    jobId: string,
    fence: Fence,
    outcome: {
      status: 'SUCCEEDED' | 'FAILED' | 'STOPPED_EARLY' | 'CANCELLED';
      patch?: Partial<JobRecord>;
      message: (record: JobRecord) => string;
    },
  ): Promise<JobRecord> {
    const { record } = await this.#change(
      tenant,
      jobId,
      'trainer',
      (current) => {
        assertOwner(current, fence);
        const to =
          current.status === 'CANCELLING' && outcome.status !== 'FAILED' ? 'CANCELLED' : outcome.status;
        return transition(current, to, this.#deps.now(), outcome.patch);
      },
      outcome.message,
    );
    return record;
  }

  /**
   * A job whose message was received the maximum number of times without finishing: FAILED with
   * `MAX_ATTEMPTS` (or CANCELLED if it was being cancelled), so that no job stays active forever.
   */
  async deadLettered(
    tenant: string,
    jobId: string,
    maxAttempts?: number,
    describe: (times: number) => string = workerDeliveries,
  ): Promise<DeadLetterOutcome> {
    let dispatched = false;
    try {
      const { record, changed } = await this.#change(
        tenant,
        jobId,
        'dead-letter',
        (current) => {
          if (isTerminal(current.status)) return UNCHANGED;
          if (current.batchJob) {
            dispatched = true;
            return UNCHANGED;
          }
          if (current.status === 'CANCELLING') return transition(current, 'CANCELLED', this.#deps.now());
          const times = maxAttempts ?? Math.max(current.attempt, 1);
          return transition(current, 'FAILED', this.#deps.now(), {
            error: { code: 'MAX_ATTEMPTS', message: describe(times) },
          });
        },
        (record) =>
          record.status === 'FAILED'
            ? 'Failed after the maximum number of attempts (dead-lettered).'
            : 'Cancelled (dead-lettered while cancelling).',
      );
      if (!changed) return dispatched ? 'dispatched' : 'already-finished';
      return record.status === 'FAILED' ? 'failed' : 'cancelled';
    } catch (error) {
      if (error instanceof NotFoundError) return 'unknown-job';
      throw error;
    }
  }

  /**
   * The dispatcher submitted the job to AWS Batch as `batchJobId`: recorded by compare-and-swap, once
   * per job. Idempotent: a redelivered message that finds the same id recorded changes nothing; one
   * that finds another id, or a job that has ended, is told so and terminates its own Batch job.
   */
  async dispatched(tenant: string, jobId: string, batchJobId: string): Promise<DispatchOutcome> {
    const now = this.#deps.now().toISOString();
    let result: { record: JobRecord; changed: boolean };
    try {
      result = await this.#change(tenant, jobId, 'dispatcher', (current) => {
        if (isTerminal(current.status) || current.batchJob) return UNCHANGED;
        return { ...current, batchJob: { id: batchJobId, submittedAt: now }, updatedAt: now };
      });
    } catch (error) {
      if (error instanceof NotFoundError) return 'unknown-job';
      throw error;
    }
    const { record, changed } = result;
    if (changed) {
      await this.jobs.appendEvent(tenant, jobId, {
        at: now,
        type: 'info',
        message: `Submitted to AWS Batch as job ${batchJobId}; it starts when a GPU instance is free.`,
      });
      return 'recorded';
    }
    if (record.batchJob?.id === batchJobId) return 'already-recorded';
    return isTerminal(record.status) ? 'ended' : 'other-recorded';
  }

  /**
   * The executor (AWS Batch) reports that the run of `batchJobId` ended without the trainer ending the
   * job (it never started, its image could not be pulled, it ran out of memory, its host was lost, it
   * waited too long for capacity): FAILED with `error`, or CANCELLED if a cancel was asked for. A report
   * about a Batch job other than the one recorded (a duplicate that was terminated) changes nothing.
   */
  async executionEnded(
    tenant: string,
    jobId: string,
    ended: { batchJobId: string; error: JobError },
  ): Promise<ExecutionEndOutcome> {
    let notCurrent = false;
    try {
      const { record, changed } = await this.#change(
        tenant,
        jobId,
        'executor',
        (current) => {
          if (isTerminal(current.status)) return UNCHANGED;
          if (current.batchJob && current.batchJob.id !== ended.batchJobId) {
            notCurrent = true;
            return UNCHANGED;
          }
          const now = this.#deps.now();
          if (current.status === 'CANCELLING') return transition(current, 'CANCELLED', now);
          return transition(current, 'FAILED', now, { error: ended.error });
        },
        (record) => (record.status === 'FAILED' ? `Failed: ${ended.error.message}` : 'Cancelled.'),
      );
      if (!changed) return notCurrent ? 'not-current' : 'already-finished';
      return record.status === 'FAILED' ? 'failed' : 'cancelled';
    } catch (error) {
      if (error instanceof NotFoundError) return 'unknown-job';
      throw error;
    }
  }

  /** Deletes every object of a job that has ended; a 409 for one that is still active. */
  async delete(tenant: string, jobId: string): Promise<number> {
    const { record } = await this.jobs.get(tenant, jobId);
    if (!isTerminal(record.status)) {
      throw new ConflictError(
        `Job ${jobId} is ${record.status}; cancel it and wait until it has ended before deleting it.`,
        'INVALID_STATE',
        { status: record.status },
      );
    }
    return this.#purge(tenant, jobId);
  }

  /**
   * The compare-and-swap of `job.json` and what follows a change of status: the active marker goes
   * when the job ends, the state event is appended, the listeners are told.
   */
  async #change(
    tenant: string,
    jobId: string,
    by: ChangeSource,
    change: (record: JobRecord) => JobRecord | typeof UNCHANGED,
    eventMessage?: (record: JobRecord) => string,
  ): Promise<{ record: JobRecord; from: JobStatus; changed: boolean }> {
    if (!isValidId(jobId)) throw notFound(jobId);
    let from: JobStatus | undefined;
    let wrote = false;
    const written = await this.#records.update(jobKeys(tenant, jobId).record, (current) => {
      if (!current) throw notFound(jobId);
      from = current.status;
      const next = change(current);
      wrote = next !== UNCHANGED;
      return next === UNCHANGED ? next : boundRecord(next);
    });
    // `update` ran `change` on the record it returns, so both are set.
    const record = (written as { value: JobRecord }).value;
    const before = from as JobStatus;
    // A change that leaves the status (progress) is not a transition; a new attempt (RUNNING → RUNNING) is.
    if (!wrote || (record.status === before && !eventMessage))
      return { record, from: before, changed: wrote };
    // The event first (what a reader of the job sees next to its record), then the quota's slot.
    if (eventMessage) await this.#event(tenant, record, eventMessage(record));
    if (isTerminal(record.status)) await this.activeJobs.release(tenant, record);
    await this.#notify({ tenant, record, from: before, by });
    return { record, from: before, changed: true };
  }

  /** The state event; `first`: the job's first event, which creates `events.json`. */
  async #event(tenant: string, record: JobRecord, message: string, first = false): Promise<void> {
    await this.jobs.appendEvent(
      tenant,
      record.id,
      {
        at: record.updatedAt,
        type: 'state',
        status: record.status,
        message,
        ...(record.attempt > 0 ? { attempt: record.attempt } : {}),
      },
      { create: first },
    );
  }

  async #notify(change: JobChange): Promise<void> {
    for (const listener of this.#listeners) {
      try {
        await listener(change);
      } catch (error) {
        this.#deps.log?.warn('a job-change listener failed; its own safety net retries', {
          tenant: change.tenant,
          jobId: change.record.id,
          status: change.record.status,
          error: String(error),
        });
      }
    }
  }

  async #putMarkers(tenant: string, record: JobRecord): Promise<void> {
    await this.#deps.store.put(`${jobIndexPrefix(tenant)}${reverseUlid(record.id)}`, record.id);
  }

  /**
   * Deletes every object of a job, its record and index marker last, and frees what it held: its
   * active-jobs slot and its `Idempotency-Key` (a new request with the key makes a new job).
   */
  async #purge(tenant: string, jobId: string): Promise<number> {
    const keys = jobKeys(tenant, jobId);
    const store = this.#deps.store;
    const record = (await this.jobs.find(tenant, jobId))?.record;
    if (record) await this.activeJobs.release(tenant, record);
    if (record?.idempotencyKeySha256)
      await new IdempotencyKeys(store, 'job').releaseFor(tenant, record.idempotencyKeySha256, jobId);
    let deleted = 0;
    let cursor: string | undefined;
    do {
      const page = await store.list(keys.prefix, cursor ? { cursor } : {});
      const rest = page.objects.filter((o) => o.key !== keys.record);
      await Promise.all(rest.map((o) => store.delete(o.key)));
      deleted += rest.length;
      cursor = page.nextCursor;
    } while (cursor);
    await store.delete(keys.record);
    await store.delete(`${jobIndexPrefix(tenant)}${reverseUlid(jobId)}`);
    return deleted + 1;
  }
}

/** The dead-letter message of the local queue: a worker received the job and never finished it. */
const workerDeliveries = (times: number): string =>
  `The job was delivered to a worker ${times} time${times > 1 ? 's' : ''} without finishing (the worker crashed or was stopped each time); it was moved to the dead-letter queue.`;

function assertOwner(record: JobRecord, fence: Fence): void {
  if (record.attempt !== fence.attempt || isTerminal(record.status)) {
    throw new FencedError(
      `attempt ${fence.attempt} no longer owns the job (now attempt ${record.attempt}, ${record.status})`,
    );
  }
}
