/**
 * Reading a job's documents: the record, its events, its metrics and its report, each validated on
 * read. Nothing here writes `job.json`: the job lifecycle (`lifecycle.ts`) is the one module that
 * does. Events and metrics are written here for everyone (an event is not a change of status).
 */
import { z } from 'zod';
import { NotFoundError } from '../platform/errors.ts';
import { reverseUlid } from '../platform/ids.ts';
import { isValidId, jobIndexPrefix, jobKeys } from '../platform/keys.ts';
import { MAX_EVENTS } from '../platform/limits.ts';
import type { ObjectStore } from '../platform/ports.ts';
import { bounded } from '../platform/text.ts';
import { UNCHANGED, type Versioned, VersionedDocuments } from '../platform/versioned-document.ts';
import {
  type EpochMetrics,
  epochMetrics,
  type JobEvent,
  type JobRecord,
  jobEvent,
  jobRecord,
} from './job-record.ts';

export interface VersionedRecord {
  record: JobRecord;
  etag: string;
}

export const notFound = (jobId: string): NotFoundError =>
  new NotFoundError(`No job ${jobId} in this account.`, 'JOB_NOT_FOUND');

/** `report.json`: an open object (its shape is the trainer's), read for its scalar sections. */
export const jobReport = z.record(z.string(), z.unknown());
export type JobReport = z.infer<typeof jobReport>;

export class JobStore {
  readonly store: ObjectStore;
  readonly #records: VersionedDocuments<typeof jobRecord>;
  readonly #events: VersionedDocuments<z.ZodArray<typeof jobEvent>>;
  readonly #metrics: VersionedDocuments<z.ZodArray<typeof epochMetrics>>;
  readonly #reports: VersionedDocuments<typeof jobReport>;

  constructor(store: ObjectStore) {
    this.store = store;
    this.#records = new VersionedDocuments(store, jobRecord, { what: 'job record' });
    this.#events = new VersionedDocuments(store, z.array(jobEvent), { what: "job's events" });
    this.#metrics = new VersionedDocuments(store, z.array(epochMetrics), { what: "job's metrics" });
    this.#reports = new VersionedDocuments(store, jobReport, { what: 'job report' });
  }

  /** The record and its ETag, or a 404 (also for ids that are malformed or belong to another tenant). */
  async get(tenant: string, jobId: string): Promise<VersionedRecord> {
    const found = await this.find(tenant, jobId);
    if (!found) throw notFound(jobId);
    return found;
  }

  /** The record and its ETag, or `undefined` when there is no such job. */
  async find(tenant: string, jobId: string): Promise<VersionedRecord | undefined> {
    if (!isValidId(jobId)) return undefined;
    const found = await this.#records.read(jobKeys(tenant, jobId).record);
    return found && { record: found.value, etag: found.etag };
  }

  /** Job ids, newest first, one page at a time. */
  async listIds(
    tenant: string,
    options: { cursor?: string; limit: number },
  ): Promise<{ ids: string[]; nextCursor?: string }> {
    const page = await this.store.list(jobIndexPrefix(tenant), options);
    const prefixLength = jobIndexPrefix(tenant).length;
    const ids = page.objects.map((o) => reverseUlid(o.key.slice(prefixLength)));
    return { ids, ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }

  async metrics(tenant: string, jobId: string): Promise<EpochMetrics[]> {
    return (await this.#metrics.read(jobKeys(tenant, jobId).metrics))?.value ?? [];
  }

  /** The metrics document with its ETag (the trainer continues it). */
  async readMetrics(tenant: string, jobId: string): Promise<Versioned<EpochMetrics[]> | undefined> {
    return this.#metrics.read(jobKeys(tenant, jobId).metrics);
  }

  /**
   * Writes the whole per-epoch history over the version this writer last saw (`since`); when another
   * writer got in between, `onConflict` throws if this writer no longer owns the job.
   */
  async writeMetrics(
    tenant: string,
    jobId: string,
    history: EpochMetrics[],
    since: string | null,
    onConflict: () => Promise<void>,
  ): Promise<string> {
    return this.#metrics.overwrite(jobKeys(tenant, jobId).metrics, history, since, onConflict);
  }

  async events(tenant: string, jobId: string): Promise<JobEvent[]> {
    return (await this.#events.read(jobKeys(tenant, jobId).events))?.value ?? [];
  }

  /**
   * Appends to `events.json` with compare-and-swap, so concurrent writers never drop an event. Only
   * the job's first event (`create`) makes the document: an event after the job was deleted writes
   * nothing (a writer that read it before the delete loses its compare-and-swap and sees it gone).
   * The message is bounded, and past `MAX_EVENTS` info and warning events are not kept.
   */
  async appendEvent(
    tenant: string,
    jobId: string,
    event: JobEvent,
    options: { create?: boolean } = {},
  ): Promise<void> {
    const entry = { ...event, message: bounded(event.message) };
    await this.#events.update(jobKeys(tenant, jobId).events, (events) => {
      if (!events && !options.create) return UNCHANGED;
      return capEvents(events ?? [], entry);
    });
  }

  /** The job's report, or `undefined` before it has one. */
  async report(tenant: string, jobId: string): Promise<JobReport | undefined> {
    return (await this.#reports.read(jobKeys(tenant, jobId).report))?.value;
  }
}

/**
 * At most `MAX_EVENTS` info and warning events: the last one kept says that later ones are not kept.
 * State changes are always appended (an attempt has a few), and nothing is ever removed, so a reader
 * that follows the list by position (`descent train --follow`) never misses or repeats one.
 */
function capEvents(events: JobEvent[], next: JobEvent): JobEvent[] | typeof UNCHANGED {
  if (next.type === 'state') return [...events, next];
  const others = events.filter((e) => e.type !== 'state').length;
  if (others >= MAX_EVENTS) return UNCHANGED;
  if (others === MAX_EVENTS - 1)
    return [
      ...events,
      {
        at: next.at,
        type: 'info',
        message: `Later info and warning events are not kept (a job keeps ${MAX_EVENTS}); the job's status and error are.`,
      },
    ];
  return [...events, next];
}
