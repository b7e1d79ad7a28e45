import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  backoffDelayMs,
  DEFAULT_RETRY,
  isRetryableStatus,
  parseRetryAfterMs,
  retryDelayMs,
  sleep,
} from '../../client/backoff.ts';

const policy = { baseMs: 100, capMs: 1000, jitter: 0.5 };

describe('backoffDelayMs', () => {
  it('doubles the ceiling with each retry up to the cap', () => {
    const top = (n: number) => backoffDelayMs(n, { ...policy, jitter: 0 });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(top), [100, 200, 400, 800, 1000, 1000]);
  });

  it('keeps the delay within [ceiling · (1 − jitter), ceiling)', () => {
    assert.equal(
      backoffDelayMs(3, policy, () => 0),
      200,
    );
    assert.equal(
      backoffDelayMs(3, policy, () => 0.5),
      300,
    );
    assert.ok(backoffDelayMs(3, policy, () => 0.999999) < 400);
  });

  it('is uniform in [0, ceiling) with full jitter and fixed without jitter', () => {
    assert.equal(
      backoffDelayMs(2, { ...policy, jitter: 1 }, () => 0),
      0,
    );
    assert.equal(
      backoffDelayMs(2, { ...policy, jitter: 1 }, () => 0.25),
      50,
    );
    assert.equal(
      backoffDelayMs(2, { ...policy, jitter: 0 }, () => 0.9),
      200,
    );
  });

  it('treats attempts below 1 as the first and never overflows', () => {
    assert.equal(backoffDelayMs(0, { ...policy, jitter: 0 }), 100);
    assert.equal(backoffDelayMs(10_000, { ...policy, jitter: 0 }), 1000);
  });

  it('gives the documented default retry waits', () => {
    const waits = [1, 2, 3].map((n) => [
      backoffDelayMs(n, DEFAULT_RETRY, () => 0),
      backoffDelayMs(n, DEFAULT_RETRY, () => 1),
    ]);
    assert.deepEqual(waits, [
      [150, 300],
      [300, 600],
      [600, 1200],
    ]);
  });
});

describe('isRetryableStatus', () => {
  it('retries throttling and server errors only', () => {
    for (const status of [429, 500, 502, 503, 504])
      assert.equal(isRetryableStatus(status), true, String(status));
    for (const status of [200, 400, 401, 403, 404, 409, 413, 501])
      assert.equal(isRetryableStatus(status), false, String(status));
  });
});

describe('parseRetryAfterMs', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  it('reads delay-seconds and HTTP dates', () => {
    assert.equal(parseRetryAfterMs('3', now), 3000);
    assert.equal(parseRetryAfterMs('0.5', now), 500);
    assert.equal(parseRetryAfterMs('Wed, 01 Jan 2025 00:00:10 GMT', now), 10_000);
  });
  it('never goes negative and ignores what it cannot read', () => {
    assert.equal(parseRetryAfterMs('Tue, 31 Dec 2024 23:59:00 GMT', now), 0);
    assert.equal(parseRetryAfterMs('soon', now), undefined);
    assert.equal(parseRetryAfterMs(null, now), undefined);
    assert.equal(parseRetryAfterMs('', now), undefined);
  });
});

describe('retryDelayMs', () => {
  const retry = { ...DEFAULT_RETRY, baseMs: 100, capMs: 1000, jitter: 0, maxRetryAfterMs: 5000 };
  it("waits the larger of the backoff and the server's Retry-After, capped", () => {
    assert.equal(retryDelayMs(1, retry, undefined), 100);
    assert.equal(retryDelayMs(1, retry, 2000), 2000);
    assert.equal(retryDelayMs(4, retry, 10), 800);
    assert.equal(retryDelayMs(1, retry, 60_000), 5000);
  });
});

describe('sleep', () => {
  it('rejects with the reason as soon as the signal aborts', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const pending = sleep(10_000, controller.signal);
    controller.abort(new Error('stop'));
    await assert.rejects(pending, /stop/);
    assert.ok(Date.now() - started < 1000);
  });
});
