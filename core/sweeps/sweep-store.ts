/**
 * Reading and writing sweep records. As for `job.json`, every change to `sweep.json` is a
 * compare-and-swap on the ETag read (the versioned-document primitive): the controller claims a trial
 * only by winning that write, so two controllers (a trainer, the API and the local loop) never queue
 * the same trial, nor more than `maxParallel` at once.
 */
import { NotFoundError } from '../platform/errors.ts';
import { reverseUlid } from '../platform/ids.ts';
import { activeSweepsPrefix, isValidId, sweepIndexPrefix, sweepKeys } from '../platform/keys.ts';
import type { ObjectStore } from '../platform/ports.ts';
import { type UNCHANGED, VersionedDocuments } from '../platform/versioned-document.ts';
import { isSweepFinished, type SweepRecord, sweepRecord } from './sweep-record.ts';

export interface VersionedSweep {
  record: SweepRecord;
  etag: string;
}

const notFound = (sweepId: string) =>
  new NotFoundError(`No sweep ${sweepId} in this account.`, 'SWEEP_NOT_FOUND');

export class SweepStore {
  readonly store: ObjectStore;
  readonly #records: VersionedDocuments<typeof sweepRecord>;

  constructor(store: ObjectStore) {
    this.store = store;
    this.#records = new VersionedDocuments(store, sweepRecord, { what: 'sweep record' });
  }

  /** The record and its ETag, or a 404 (also for malformed ids and other tenants' sweeps). */
  async get(tenant: string, sweepId: string): Promise<VersionedSweep> {
    const found = await this.find(tenant, sweepId);
    if (!found) throw notFound(sweepId);
    return found;
  }

  /** The record and its ETag, or `undefined` when there is no such sweep. */
  async find(tenant: string, sweepId: string): Promise<VersionedSweep | undefined> {
    if (!isValidId(sweepId)) return undefined;
    const found = await this.#records.read(sweepKeys(tenant, sweepId).record);
    return found && { record: found.value, etag: found.etag };
  }

  /** Stores a new record (fails if one exists), then its newest-first marker and its active marker. */
  async create(tenant: string, record: SweepRecord): Promise<void> {
    await this.#records.create(sweepKeys(tenant, record.id).record, record);
    await this.store.put(`${sweepIndexPrefix(tenant)}${reverseUlid(record.id)}`, record.id);
    await this.store.put(`${activeSweepsPrefix(tenant)}${record.id}`, record.id);
  }

  /**
   * Read-modify-write: `change` gets the current record and returns the new one (or `UNCHANGED`).
   * It may run several times, so any side effect it has must be safe to repeat.
   */
  async update(
    tenant: string,
    sweepId: string,
    change: (record: SweepRecord) => SweepRecord | typeof UNCHANGED | Promise<SweepRecord | typeof UNCHANGED>,
  ): Promise<VersionedSweep> {
    const written = await this.#records.update(sweepKeys(tenant, sweepId).record, (current) => {
      if (!current) throw notFound(sweepId);
      return change(current);
    });
    const { value, etag } = written as { value: SweepRecord; etag: string };
    return { record: value, etag };
  }

  /** A finished sweep leaves the controller's list. */
  async markFinished(tenant: string, record: SweepRecord): Promise<void> {
    if (isSweepFinished(record.status)) await this.store.delete(`${activeSweepsPrefix(tenant)}${record.id}`);
  }

  /** Ids of the sweeps the controller still has to drive. */
  async activeIds(tenant: string): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.store.list(activeSweepsPrefix(tenant), cursor ? { cursor } : {});
      ids.push(...page.objects.map((o) => o.key.slice(activeSweepsPrefix(tenant).length)));
      cursor = page.nextCursor;
    } while (cursor);
    return ids.filter(isValidId);
  }

  /** Sweep ids, newest first, one page at a time. */
  async listIds(
    tenant: string,
    options: { cursor?: string; limit: number },
  ): Promise<{ ids: string[]; nextCursor?: string }> {
    const page = await this.store.list(sweepIndexPrefix(tenant), options);
    const prefixLength = sweepIndexPrefix(tenant).length;
    const ids = page.objects.map((o) => reverseUlid(o.key.slice(prefixLength)));
    return { ids, ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }
}
