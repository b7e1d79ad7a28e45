/**
 * The active-jobs quota, atomic: a tenant's QUEUED, RUNNING and CANCELLING jobs each hold one numbered
 * slot, `tenants/{t}/active-slots/{n}`, taken create-once through the versioned-document primitive
 * (as idempotency records are). Two submits racing for the last slot both try to create the same
 * object and only one can, so concurrent submits never hold more slots than the quota; the count in
 * a 429 is the number of slots held. The job lifecycle takes a slot before it stores a job and gives
 * it back when the job ends or is deleted.
 *
 * A slot whose job has ended (a crash between the end and the release) or was never stored (a crash
 * between the reservation and the record) is swept when a submit finds the quota full, after a grace
 * period that lets the normal release happen first.
 */
import { z } from 'zod';
import { PreconditionFailedError, TooManyRequestsError } from '../platform/errors.ts';
import { activeSlotKey, activeSlotPrefix } from '../platform/keys.ts';
import type { ObjectStore } from '../platform/ports.ts';
import { VersionedDocuments } from '../platform/versioned-document.ts';
import { isTerminal, type JobRecord } from './job-record.ts';

const slotDocument = z.object({ jobId: z.string(), at: z.string() });

/** A slot's job may be missing or ended this long before the slot is taken to be left over. */
export const SLOT_GRACE_MS = 60_000;

export interface ActiveJobsDeps {
  readonly store: ObjectStore;
  readonly now: () => Date;
  /** The job's record, or `undefined` when there is none. */
  readonly find: (tenant: string, jobId: string) => Promise<JobRecord | undefined>;
}

export class ActiveJobs {
  readonly #deps: ActiveJobsDeps;
  readonly #slots: VersionedDocuments<typeof slotDocument>;

  constructor(deps: ActiveJobsDeps) {
    this.#deps = deps;
    this.#slots = new VersionedDocuments(deps.store, slotDocument, { what: 'active-job slot' });
  }

  /** How many slots the tenant's jobs hold (its active jobs). */
  async count(tenant: string): Promise<number> {
    return (await this.#held(tenant)).size;
  }

  /**
   * Takes a free slot for `jobId` and returns its number. With `limit`, only slots below it are
   * free: when none is, left-over slots are swept once, then a 429 states the count. Without (a
   * sweep's trials, which pace themselves by `count`), any free slot is taken.
   */
  async reserve(tenant: string, jobId: string, limit?: number): Promise<number> {
    const at = this.#deps.now().toISOString();
    for (let round = 0; round < 2; round++) {
      const held = await this.#held(tenant);
      for (let slot = 0; limit === undefined || slot < limit; slot++) {
        if (held.has(slot)) continue;
        try {
          await this.#slots.create(activeSlotKey(tenant, slot), { jobId, at });
          return slot;
        } catch (error) {
          if (!(error instanceof PreconditionFailedError)) throw error;
          held.set(slot, ''); // taken by a racing submit: try the next one
        }
      }
      if (round === 0 && !(await this.#sweep(tenant, held))) break;
    }
    const count = await this.count(tenant);
    throw new TooManyRequestsError(
      `This account has ${count} queued or running jobs, the most it may have at once (${limit}); wait for one to finish or cancel one.`,
    );
  }

  /** The ids of the jobs that hold slots: the tenant's active jobs (and any that is ending just now). */
  async jobIds(tenant: string): Promise<string[]> {
    const held = await this.#held(tenant);
    const slots = await Promise.all([...held.values()].map((key) => this.#slots.read(key)));
    return slots.flatMap((slot) => (slot ? [slot.value.jobId] : []));
  }

  /** Gives back the slot `record` holds, if it still holds it. */
  async release(tenant: string, record: Pick<JobRecord, 'id' | 'activeSlot'>): Promise<void> {
    if (record.activeSlot === undefined) return;
    const key = activeSlotKey(tenant, record.activeSlot);
    const slot = await this.#slots.read(key);
    if (slot?.value.jobId === record.id) await this.#deps.store.delete(key);
  }

  /** Slot number → the key's object, for every slot held. */
  async #held(tenant: string): Promise<Map<number, string>> {
    const prefix = activeSlotPrefix(tenant);
    const held = new Map<number, string>();
    let cursor: string | undefined;
    do {
      const page = await this.#deps.store.list(prefix, cursor ? { cursor } : {});
      for (const object of page.objects) {
        const slot = Number(object.key.slice(prefix.length));
        if (Number.isInteger(slot)) held.set(slot, object.key);
      }
      cursor = page.nextCursor;
    } while (cursor);
    return held;
  }

  /** Frees the slots whose job has ended or was never stored, past the grace period; whether any was. */
  async #sweep(tenant: string, held: Map<number, string>): Promise<boolean> {
    const now = this.#deps.now().getTime();
    let freed = false;
    for (const key of held.values()) {
      if (!key) continue;
      const slot = await this.#slots.read(key).catch(() => undefined);
      if (!slot) continue;
      const record = await this.#deps.find(tenant, slot.value.jobId);
      const since = record ? Date.parse(record.finishedAt ?? record.updatedAt) : Date.parse(slot.value.at);
      const leftOver = (!record || isTerminal(record.status)) && now - since >= SLOT_GRACE_MS;
      if (leftOver) {
        await this.#deps.store.delete(key);
        freed = true;
      }
    }
    return freed;
  }
}
