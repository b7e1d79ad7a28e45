/**
 * Retry and polling delays as pure functions (the caller passes `random`), so tests can pin them.
 * Browser-safe: no Node imports.
 */

export interface BackoffPolicy {
  /** Delay ceiling of the first retry, in ms. */
  readonly baseMs: number;
  /** Largest delay ceiling, in ms. */
  readonly capMs: number;
  /** Share of the ceiling that is random: 0 = plain exponential, 1 = "full jitter". */
  readonly jitter: number;
}

export interface RetryPolicy extends BackoffPolicy {
  /** Tries in all, the first one included (1 = never retry). */
  readonly maxAttempts: number;
  /** Longest `Retry-After` the client honours, in ms. */
  readonly maxRetryAfterMs: number;
}

/** Retries of idempotent calls: 4 tries, waiting about 0.15–0.3 s, 0.3–0.6 s, 0.6–1.2 s. */
export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 4,
  baseMs: 300,
  capMs: 10_000,
  jitter: 0.5,
  maxRetryAfterMs: 30_000,
};

/** Polling a job: 0.25 s at first (and again whenever something changed), then slower up to 2 s. */
export const DEFAULT_POLL: BackoffPolicy = { baseMs: 250, capMs: 2000, jitter: 0.2 };

/**
 * Delay before retry number `attempt` (1 = the first retry), in ms:
 *
 *     ceiling = min(capMs, baseMs · 2^(attempt − 1))
 *     delay   = ceiling · (1 − jitter) + random() · ceiling · jitter
 *
 * so the delay lies in `[ceiling · (1 − jitter), ceiling)`. Jitter spreads out the retries of
 * many clients that failed together, so they do not hit the service again in step.
 */
export function backoffDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const n = Math.max(1, Math.floor(attempt));
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(n - 1, 40));
  const jitter = Math.min(1, Math.max(0, policy.jitter));
  return ceiling * (1 - jitter) + random() * ceiling * jitter;
}

/** Statuses worth retrying: throttling (429) and server-side failures (5xx, but not 501). */
export const isRetryableStatus = (status: number): boolean =>
  status === 429 || (status >= 500 && status <= 599 && status !== 501);

/**
 * A `Retry-After` header in ms: either delay-seconds (`"3"`) or an HTTP date, measured from `now`.
 * `undefined` when absent or unreadable; never negative.
 */
export function parseRetryAfterMs(value: string | null | undefined, now: number): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The wait before retry `attempt` after a response that carried `retryAfterMs`: the larger of the
 * backoff delay and the server's wish, the latter capped at `policy.maxRetryAfterMs`.
 */
export function retryDelayMs(
  attempt: number,
  policy: RetryPolicy,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  const backoff = backoffDelayMs(attempt, policy, random);
  return retryAfterMs === undefined
    ? backoff
    : Math.max(backoff, Math.min(retryAfterMs, policy.maxRetryAfterMs));
}

/** Waits `ms`, or rejects with the signal's reason as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
