/**
 * Reading and writing a job's objects. Every change to `job.json` is a compare-and-swap on the ETag
 * that was read, so two writers (two workers, or a worker and a cancel) can never both win.
 */
import { NotFoundError, PreconditionFailedError } from '../platform/errors.ts';
import { reverseUlid } from '../platform/ids.ts';
import { activePrefix, isValidId, jobIndexPrefix, jobKeys } from '../platform/keys.ts';
import type { ObjectStore } from '../platform/ports.ts';
import { type EpochMetrics, isTerminal, type JobEvent, type JobRecord, jobRecord } from './job-record.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const toJson = (value: unknown): Uint8Array => encoder.encode(`${JSON.stringify(value, null, 2)}\n`);
export const fromJson = (body: Uint8Array): unknown => JSON.parse(decoder.decode(body));

export interface VersionedRecord {
  record: JobRecord;
  etag: string;
}

/** Thrown from an update function to leave the record as it is. */
export class SkipUpdate extends Error {
  constructor() {
    super('update skipped');
    this.name = 'SkipUpdate';
  }
}

const notFound = (jobId: string) => new NotFoundError(`No job ${jobId} in this account.`, 'JOB_NOT_FOUND');

export class JobStore {
  readonly store: ObjectStore;

  constructor(store: ObjectStore) {
    this.store = store;
  }

  /** The record and its ETag, or a 404 (also for ids that are malformed or belong to another tenant). */
  async get(tenant: string, jobId: string): Promise<VersionedRecord> {
    if (!isValidId(jobId)) throw notFound(jobId);
    const object = await this.store.get(jobKeys(tenant, jobId).record);
    if (!object) throw notFound(jobId);
    return { record: jobRecord.parse(fromJson(object.body)), etag: object.etag };
  }

  /** Stores a new record; fails if one exists. Writes the newest-first index marker too. */
  async create(tenant: string, record: JobRecord): Promise<string> {
    const { etag } = await this.store.put(jobKeys(tenant, record.id).record, toJson(record), {
      ifNoneMatch: '*',
      contentType: 'application/json',
    });
    await this.store.put(`${jobIndexPrefix(tenant)}${reverseUlid(record.id)}`, record.id);
    await this.store.put(`${activePrefix(tenant)}${record.id}`, record.id);
    return etag;
  }

  /**
   * QUEUED + RUNNING + CANCELLING jobs of a tenant, counted from the markers that live while a job is
   * active; at the limit, markers whose job has ended (a crash between the two writes) are swept.
   */
  async countActive(tenant: string, limit: number): Promise<number> {
    const page = await this.store.list(activePrefix(tenant), { limit: limit + 1 });
    if (page.objects.length < limit) return page.objects.length;
    let active = 0;
    for (const object of page.objects) {
      const jobId = object.key.slice(activePrefix(tenant).length);
      let record: JobRecord | undefined;
      try {
        record = (await this.get(tenant, jobId)).record;
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error; // a read error proves nothing: keep the marker
      }
      if (record && !isTerminal(record.status)) active++;
      else await this.store.delete(object.key);
    }
    return active;
  }

  /** Writes `record` only if `job.json` still has `etag`; returns the new ETag. */
  async replace(tenant: string, record: JobRecord, etag: string): Promise<string> {
    const result = await this.store.put(jobKeys(tenant, record.id).record, toJson(record), {
      ifMatch: etag,
      contentType: 'application/json',
    });
    return result.etag;
  }

  /**
   * Read-modify-write with retries: `change` gets the current record and returns the new one (or
   * throws `SkipUpdate` to leave it, or any error to abort). Retries when another writer got in first.
   */
  async update(
    tenant: string,
    jobId: string,
    change: (record: JobRecord) => JobRecord,
    attempts = 20,
  ): Promise<VersionedRecord> {
    for (let i = 0; ; i++) {
      const current = await this.get(tenant, jobId);
      let next: JobRecord;
      try {
        next = change(current.record);
      } catch (error) {
        if (error instanceof SkipUpdate) return current;
        throw error;
      }
      try {
        const etag = await this.replace(tenant, next, current.etag);
        if (isTerminal(next.status) && !isTerminal(current.record.status))
          await this.store.delete(`${activePrefix(tenant)}${jobId}`);
        return { record: next, etag };
      } catch (error) {
        if (!(error instanceof PreconditionFailedError) || i + 1 >= attempts) throw error;
        await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20 * (i + 1)));
      }
    }
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

  async readJson<T>(key: string, fallback: T): Promise<T> {
    const object = await this.store.get(key);
    return object ? (fromJson(object.body) as T) : fallback;
  }

  async metrics(tenant: string, jobId: string): Promise<EpochMetrics[]> {
    return this.readJson<EpochMetrics[]>(jobKeys(tenant, jobId).metrics, []);
  }

  async events(tenant: string, jobId: string): Promise<JobEvent[]> {
    return this.readJson<JobEvent[]>(jobKeys(tenant, jobId).events, []);
  }

  /** Appends to `events.json` with compare-and-swap, so concurrent writers never drop an event. */
  async appendEvent(tenant: string, jobId: string, event: JobEvent): Promise<void> {
    const key = jobKeys(tenant, jobId).events;
    for (let i = 0; ; i++) {
      const current = await this.store.get(key);
      const events = current ? (fromJson(current.body) as JobEvent[]) : [];
      events.push(event);
      try {
        await this.store.put(
          key,
          toJson(events),
          current
            ? { ifMatch: current.etag, contentType: 'application/json' }
            : { ifNoneMatch: '*', contentType: 'application/json' },
        );
        return;
      } catch (error) {
        if (!(error instanceof PreconditionFailedError) || i >= 8) throw error;
      }
    }
  }

  /** Deletes every object of a job, its index marker last. */
  async purge(tenant: string, jobId: string): Promise<number> {
    const keys = jobKeys(tenant, jobId);
    let deleted = 0;
    let cursor: string | undefined;
    do {
      const page = await this.store.list(keys.prefix, cursor ? { cursor } : {});
      const rest = page.objects.filter((o) => o.key !== keys.record);
      await Promise.all(rest.map((o) => this.store.delete(o.key)));
      deleted += rest.length;
      cursor = page.nextCursor;
    } while (cursor);
    await this.store.delete(keys.record);
    await this.store.delete(`${jobIndexPrefix(tenant)}${reverseUlid(jobId)}`);
    await this.store.delete(`${activePrefix(tenant)}${jobId}`);
    return deleted + 1;
  }
}
