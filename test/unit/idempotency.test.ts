import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { replayEarlier } from '../../core/api/idempotency.ts';
import { ConflictError, NotFoundError } from '../../core/platform/errors.ts';

describe('replayEarlier', () => {
  it('returns what the first request created when the body is the same', async () => {
    assert.equal(
      await replayEarlier({ id: 'a', requestHash: 'h' }, 'h', 'job', async (id) => `record ${id}`),
      'record a',
    );
  });
  it('is a 409 naming the earlier id when the body differs', async () => {
    await assert.rejects(
      replayEarlier({ id: 'a', requestHash: 'h' }, 'other', 'sweep', async () => 'x'),
      (e: unknown) =>
        e instanceof ConflictError &&
        e.code === 'IDEMPOTENCY_KEY_REUSED' &&
        (e.details as { sweepId: string }).sweepId === 'a',
    );
  });
  it('waits while the first request is still storing its record', async () => {
    let calls = 0;
    const load = async () => {
      if (++calls < 3) throw new NotFoundError('not yet');
      return 'stored';
    };
    assert.equal(await replayEarlier({ id: 'a', requestHash: 'h' }, 'h', 'job', load), 'stored');
    assert.equal(calls, 3);
  });
  it('gives up with IDEMPOTENCY_IN_PROGRESS when the record never appears', async () => {
    await assert.rejects(
      replayEarlier({ id: 'a', requestHash: 'h' }, 'h', 'job', async () => {
        throw new NotFoundError('never');
      }),
      (e: unknown) => e instanceof ConflictError && e.code === 'IDEMPOTENCY_IN_PROGRESS',
    );
  });
});
