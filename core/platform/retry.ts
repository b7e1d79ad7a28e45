/**
 * Retry and backoff, as pure functions: the one policy for lost compare-and-swaps, and the delay
 * before a temporarily failed job is tried again.
 */

/**
 * Retry delay after the n-th failed attempt (n ≥ 1): `min(cap, base · 2^(n−1))` seconds, so a
 * temporarily failing job is retried after 5 s, 10 s, 20 s, … at most 5 minutes.
 */
export function retryDelaySeconds(attempt: number, base = 5, cap = 300): number {
  const n = Math.max(1, Math.floor(attempt));
  return Math.min(cap, base * 2 ** Math.min(n - 1, 30));
}

export interface RetryPolicy {
  /** Writes tried in all, the first one included. */
  readonly tries: number;
  /** The first wait's ceiling, in ms; it doubles after every lost write... */
  readonly baseMs: number;
  /** ...up to this ceiling. */
  readonly capMs: number;
}

/**
 * The one policy for compare-and-swap writes: 20 tries, waits doubling from 5 ms to at most 400 ms.
 * Under heavy contention that is about 3–6 s in all before a writer gives up with a 409 BUSY.
 */
export const CAS_RETRY: RetryPolicy = { tries: 20, baseMs: 5, capMs: 400 };

/**
 * The wait after the `failures`-th lost write (failures ≥ 1), or `undefined` once `policy.tries`
 * writes have been tried: with `d = min(capMs, baseMs · 2^(failures−1))`, a uniform draw in
 * `[d/2, d]` ("equal jitter": writers that collided spread out, and none retries at once).
 */
export function casBackoffMs(
  failures: number,
  policy: RetryPolicy,
  random: () => number,
): number | undefined {
  if (failures >= policy.tries) return undefined;
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(Math.max(failures, 1) - 1, 30));
  return ceiling / 2 + (random() * ceiling) / 2;
}
