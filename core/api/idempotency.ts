/**
 * `Idempotency-Key` replays, shared by `POST /jobs` and `POST /sweeps`: the same key with the same
 * body returns what the first request created; with another body it is a 409.
 */
import { createHash } from 'node:crypto';
import { BadRequestError, ConflictError, NotFoundError } from '../platform/errors.ts';

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
