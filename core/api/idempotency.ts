/**
 * `Idempotency-Key` replays, shared by `POST /jobs` and `POST /sweeps`: the same key with the same
 * body returns what the first request created; with another body it is a 409.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  BadRequestError,
  ConflictError,
  NotFoundError,
  PreconditionFailedError,
} from '../platform/errors.ts';
import { idempotencyKey } from '../platform/keys.ts';
import type { ObjectStore } from '../platform/ports.ts';
import { VersionedDocuments } from '../platform/versioned-document.ts';

/** Canonical JSON (sorted keys), so that the same body in another key order is the same request. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** What two requests must share to be the same request: the hash of the canonical body. */
export const requestHash = (body: unknown): string => sha256(canonical(body));

/** Listing cursors: the last key read, opaque to callers. */
export const encodeCursor = (raw: string): string => Buffer.from(raw).toString('base64url');

export function decodeCursor(cursor: string, route: string): string {
  const raw = Buffer.from(cursor, 'base64url').toString();
  if (!raw || Buffer.from(raw).toString('base64url') !== cursor) {
    throw new BadRequestError(
      `cursor: not a cursor returned by ${route}.`,
      { path: 'cursor' },
      'INVALID_CURSOR',
    );
  }
  return raw;
}

/**
 * What the first request created, once it exists. `id` is what it stored under the key;
 * `load` reads it (and throws `NotFoundError` while the first request is still storing it).
 */
export async function replayEarlier<T>(
  earlier: { id: string; requestHash: string },
  requestHash: string,
  what: 'job' | 'sweep',
  load: (id: string) => Promise<T>,
): Promise<T> {
  if (earlier.requestHash !== requestHash) {
    throw new ConflictError(
      `This Idempotency-Key was already used with a different request body; use a new key for a new ${what}.`,
      'IDEMPOTENCY_KEY_REUSED',
      { [`${what}Id`]: earlier.id },
    );
  }
  // The earlier request may still be between storing the key and storing its record: wait briefly.
  for (let i = 0; i < 20; i++) {
    try {
      return await load(earlier.id);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new ConflictError(
    'An earlier request with this Idempotency-Key is still being processed; retry shortly.',
    'IDEMPOTENCY_IN_PROGRESS',
  );
}

export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

/** What an `Idempotency-Key` made: stored as `{jobId | sweepId, requestHash}` (the formats of earlier versions). */
const idempotencyRecord = z.union([
  z.object({ jobId: z.string(), requestHash: z.string() }),
  z.object({ sweepId: z.string(), requestHash: z.string() }),
]);

export interface Earlier {
  readonly id: string;
  readonly requestHash: string;
}

/**
 * The `Idempotency-Key`s of one kind of resource: `reserve` records, create-once, which id the key
 * makes; a request that loses the race (or comes later) gets the earlier one instead.
 */
export class IdempotencyKeys {
  readonly #docs: VersionedDocuments<typeof idempotencyRecord>;
  readonly #kind: 'job' | 'sweep';

  constructor(store: ObjectStore, kind: 'job' | 'sweep') {
    this.#docs = new VersionedDocuments(store, idempotencyRecord, { what: 'idempotency record' });
    this.#kind = kind;
  }

  /** The storage key of a caller's `Idempotency-Key`; a 400 when it is not well formed. */
  objectKey(tenant: string, key: string): string {
    if (!IDEMPOTENCY_KEY_PATTERN.test(key))
      throw new BadRequestError('Idempotency-Key must be 1–128 characters of letters, digits, _ . : -');
    return idempotencyKey(tenant, this.#kind, sha256(key));
  }

  /** What the key made before, if it was used. */
  async earlier(objectKey: string): Promise<Earlier | undefined> {
    const found = await this.#docs.read(objectKey);
    if (!found) return undefined;
    const value = found.value;
    return { id: 'jobId' in value ? value.jobId : value.sweepId, requestHash: value.requestHash };
  }

  /** Records that the key makes `id`; returns the earlier use instead when another request got there first. */
  async reserve(objectKey: string, id: string, requestHash: string): Promise<Earlier | undefined> {
    const value = this.#kind === 'job' ? { jobId: id, requestHash } : { sweepId: id, requestHash };
    try {
      await this.#docs.create(objectKey, value);
      return undefined;
    } catch (error) {
      if (!(error instanceof PreconditionFailedError)) throw error;
      const earlier = await this.earlier(objectKey);
      if (!earlier) throw error;
      return earlier;
    }
  }

  /** Frees the key (its request was taken back). */
  async release(objectKey: string): Promise<void> {
    await this.#docs.store.delete(objectKey);
  }

  /** Frees the key with this SHA-256 if it still names `id` (what it made was deleted). */
  async releaseFor(tenant: string, keySha256: string, id: string): Promise<void> {
    const objectKey = idempotencyKey(tenant, this.#kind, keySha256);
    const earlier = await this.earlier(objectKey);
    if (earlier?.id === id) await this.release(objectKey);
  }
}
