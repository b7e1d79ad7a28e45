/**
 * Retry delay after the n-th failed attempt (n ≥ 1): `min(cap, base · 2^(n−1))` seconds, so a
 * temporarily failing job is retried after 5 s, 10 s, 20 s, … at most 5 minutes.
 */
export function retryDelaySeconds(attempt: number, base = 5, cap = 300): number {
  const n = Math.max(1, Math.floor(attempt));
  return Math.min(cap, base * 2 ** Math.min(n - 1, 30));
}
