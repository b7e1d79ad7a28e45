/**
 * Reading and writing sweep records. As for `job.json`, every change to `sweep.json` is a
 * compare-and-swap on the ETag read: the controller claims a trial only by winning that write, so two
 * controllers (a trainer, the API and the local loop) never queue the same trial, nor more than
 * `maxParallel` at once.
 */

import { fromJson, SkipUpdate, toJson } from '../jobs/job-store.ts';
import { NotFoundError, PreconditionFailedError } from '../platform/errors.ts';
import { reverseUlid } from '../platform/ids.ts';
import { activeSweepsPrefix, isValidId, sweepIndexPrefix, sweepKeys } from '../platform/keys.ts';
import type { ObjectStore } from '../platform/ports.ts';
import { isSweepFinished, type SweepRecord, sweepRecord } from './sweep-record.ts';

export interface VersionedSweep {
  record: SweepRecord;
  etag: string;
}

const notFound = (sweepId: string) =>
  new NotFoundError(`No sweep ${sweepId} in this account.`, 'SWEEP_NOT_FOUND');

export class SweepStore {
  readonly store: ObjectStore;

  constructor(store: ObjectStore) {
    this.store = store;
  }

  /** The record and its ETag, or a 404 (also for malformed ids and other tenants' sweeps). */
  async get(tenant: string, sweepId: string): Promise<VersionedSweep> {
    if (!isValidId(sweepId)) throw notFound(sweepId);
    const object = await this.store.get(sweepKeys(tenant, sweepId).record);
    if (!object) throw notFound(sweepId);
    return { record: sweepRecord.parse(fromJson(object.body)), etag: object.etag };
  }

  /** Stores a new record (fails if one exists), then its newest-first marker and its active marker. */
  async create(tenant: string, record: SweepRecord): Promise<void> {
    await this.store.put(sweepKeys(tenant, record.id).record, toJson(record), {
      ifNoneMatch: '*',
      contentType: 'application/json',
    });
    await this.store.put(`${sweepIndexPrefix(tenant)}${reverseUlid(record.id)}`, record.id);
    await this.store.put(`${activeSweepsPrefix(tenant)}${record.id}`, record.id);
  }

  /** Writes `record` only if `sweep.json` still has `etag`; returns the new ETag. */
  async replace(tenant: string, record: SweepRecord, etag: string): Promise<string> {
    const result = await this.store.put(sweepKeys(tenant, record.id).record, toJson(record), {
      ifMatch: etag,
      contentType: 'application/json',
    });
    return result.etag;
  }

  /**
   * Read-modify-write with retries: `change` gets the current record and returns the new one (or
   * throws `SkipUpdate` to leave it). It may run several times, so it must not have side effects.
   */
  async update(
    tenant: string,
    sweepId: string,
    change: (record: SweepRecord) => SweepRecord,
    attempts = 12,
  ): Promise<VersionedSweep> {
    for (let i = 0; ; i++) {
      const current = await this.get(tenant, sweepId);
      let next: SweepRecord;
      try {
        next = change(structuredClone(current.record));
      } catch (error) {
        if (error instanceof SkipUpdate) return current;
        throw error;
      }
      try {
        return { record: next, etag: await this.replace(tenant, next, current.etag) };
      } catch (error) {
        if (!(error instanceof PreconditionFailedError) || i + 1 >= attempts) throw error;
        await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20 * (i + 1)));
      }
    }
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
