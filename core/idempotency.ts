/**
 * `Idempotency-Key` replays, shared by `POST /jobs` and `POST /sweeps`: the same key with the same
 * body returns what the first request created; with another body it is a 409.
 */
import { ConflictError, NotFoundError } from './errors.ts';

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
