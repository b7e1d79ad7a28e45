import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotFoundError, PreconditionFailedError } from '../../core/platform/errors.ts';
import { createLogger } from '../../core/platform/log.ts';
import { type ApiEvent, api } from '../../functions/http.ts';

const event = { routeKey: 'GET /x', requestContext: { requestId: 'req-1' } } as unknown as ApiEvent;
const body = (r: { body?: string }) => JSON.parse(r.body ?? '{}');

describe('api() error mapping', () => {
  it('maps a typed error to its status and the error shape', async () => {
    const r = await api(async () => {
      throw new NotFoundError('No job x.', 'JOB_NOT_FOUND');
    })(event);
    assert.equal(r.statusCode, 404);
    assert.deepEqual(body(r), { error: { code: 'JOB_NOT_FOUND', message: 'No job x.' } });
  });
  it('maps a compare-and-swap that kept losing to a 409 the caller can retry', async () => {
    const r = await api(async () => {
      throw new PreconditionFailedError('tenants/t/jobs/x/job.json');
    })(event);
    assert.equal(r.statusCode, 409);
    assert.equal(body(r).error.code, 'BUSY');
  });
  it('maps a write the storage had no room for (ENOSPC) to a 507 that says so', async () => {
    const r = await api(async () => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    })(event);
    assert.equal(r.statusCode, 507);
    assert.equal(body(r).error.code, 'INSUFFICIENT_STORAGE');
    assert.match(body(r).error.message, /no storage space left/);
  });
  it('bounds a message and details that quote huge user input', async () => {
    const r = await api(async () => {
      throw new NotFoundError(`No column "${'c'.repeat(100_000)}".`);
    })(event);
    assert.ok((r.body ?? '').length < 3000, `a body of ${r.body?.length} characters`);
    assert.match(body(r).error.message, /\[truncated: \d+ more characters\]/);
  });
  it('turns anything else into a 500 with the request id, never the stack', async () => {
    const lines: string[] = [];
    const { log } = await import('../../core/platform/log.ts');
    const original = log.error;
    log.error = createLogger({}, (l) => lines.push(l)).error;
    try {
      const r = await api(async () => {
        throw new Error('secret internals');
      })(event);
      assert.equal(r.statusCode, 500);
      assert.deepEqual(body(r).error.details, { requestId: 'req-1' });
      assert.ok(!r.body?.includes('secret internals'));
      assert.equal(lines.length, 1, 'logged once');
    } finally {
      log.error = original;
    }
  });
});
