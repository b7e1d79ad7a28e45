/**
 * Every route's 4xx cases, through the real local gateway and handlers (no workers: nothing trains).
 * Nothing invalid may be stored or queued.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { routes } from '../../core/api/routes.ts';
import { jobIndexPrefix } from '../../core/platform/keys.ts';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';

const CSV = 'x1,x2,label\n1,2,a\n2,3,b\n3,4,a\n4,5,b\n';
const validSpec = (datasetId: string) => ({
  task: 'classification',
  dataset: { id: datasetId, label: 'label' },
  training: { epochs: 2 },
});

describe('API routes reject bad requests with a 4xx that says what to fix', () => {
  let stack: TestStack;
  let datasetId: string;
  let jobId: string;
  let otherToken: string;

  before(async () => {
    stack = await startTestStack({ workers: 0 });
    datasetId = await stack.upload(CSV);
    const job = await stack.call('POST', '/jobs', { body: validSpec(datasetId) });
    assert.equal(job.status, 201);
    jobId = job.body.id;
    otherToken = await stack.tokens.set('other-tenant');
  });
  after(async () => {
    await stack?.destroy();
  });

  const expectError = (
    response: { status: number; body: any },
    status: number,
    code?: string,
    message?: RegExp,
  ) => {
    assert.equal(response.status, status, JSON.stringify(response.body));
    assert.equal(typeof response.body.error.message, 'string');
    if (code) assert.equal(response.body.error.code, code);
    if (message) assert.match(response.body.error.message, message);
  };

  describe('authentication on every route that needs it', () => {
    const calls: [string, string][] = [
      ['POST', '/datasets'],
      ['POST', '/jobs'],
      ['GET', '/jobs'],
      ['GET', '/jobs/01M8JH2TQYPMBNJ50HMGRP3N6M'],
      ['GET', '/jobs/01M8JH2TQYPMBNJ50HMGRP3N6M/metrics'],
      ['GET', '/jobs/01M8JH2TQYPMBNJ50HMGRP3N6M/events'],
      ['POST', '/jobs/01M8JH2TQYPMBNJ50HMGRP3N6M/cancel'],
      ['GET', '/jobs/01M8JH2TQYPMBNJ50HMGRP3N6M/result'],
      ['DELETE', '/jobs/01M8JH2TQYPMBNJ50HMGRP3N6M'],
    ];
    for (const [method, path] of calls) {
      it(`${method} ${path} without a token is 401`, async () => {
        expectError(await stack.call(method, path, { token: null }), 401, 'UNAUTHORIZED', /Bearer/);
      });
      it(`${method} ${path} with a wrong token is 401`, async () => {
        expectError(await stack.call(method, path, { token: 'dsc_not-a-real-token' }), 401, 'UNAUTHORIZED');
      });
    }
    it('a malformed Authorization header is 401', async () => {
      expectError(
        await stack.call('GET', '/jobs', { token: null, headers: { authorization: 'Basic abc' } }),
        401,
      );
    });
    it('GET /openapi.json needs no token', async () => {
      const { status, body } = await stack.call('GET', '/openapi.json', { token: null });
      assert.equal(status, 200);
      assert.equal(body.openapi, '3.1.0');
      for (const route of routes) {
        assert.ok(
          body.paths[route.path]?.[route.method.toLowerCase()],
          `${route.method} ${route.path} documented`,
        );
      }
      const spec = body.components.schemas.JobSpec;
      assert.equal(spec.additionalProperties, false, 'unknown fields are rejected, as documented');
      assert.deepEqual(spec.properties.task.enum, ['classification', 'regression']);
    });
  });

  describe('routing', () => {
    it('an unknown path is 404', async () => {
      expectError(await stack.call('GET', '/nope'), 404, 'ROUTE_NOT_FOUND');
    });
    it('a known path with another method is 405', async () => {
      expectError(await stack.call('PUT', '/jobs'), 405, 'METHOD_NOT_ALLOWED', /GET, POST|POST, GET/);
    });
  });

  describe('POST /datasets', () => {
    it('rejects a malformed body', async () => {
      expectError(
        await stack.call('POST', '/datasets', {
          rawBody: '{"name":',
          headers: { 'content-type': 'application/json' },
        }),
        400,
        'MALFORMED_JSON',
      );
    });
    it('rejects a missing body', async () => {
      expectError(await stack.call('POST', '/datasets'), 400, 'MISSING_BODY');
    });
    it('rejects a wrong type', async () => {
      expectError(
        await stack.call('POST', '/datasets', { body: { name: 5, format: 'csv' } }),
        400,
        'VALIDATION_ERROR',
        /name/,
      );
    });
    it('rejects an unknown format', async () => {
      expectError(
        await stack.call('POST', '/datasets', { body: { name: 'x', format: 'xlsx' } }),
        400,
        'VALIDATION_ERROR',
        /format/,
      );
    });
    it('rejects an unknown field', async () => {
      expectError(
        await stack.call('POST', '/datasets', { body: { name: 'x', format: 'csv', color: 'red' } }),
        400,
        'VALIDATION_ERROR',
        /unknown field color/,
      );
    });
    it('rejects a body that is not JSON by content type', async () => {
      expectError(
        await stack.call('POST', '/datasets', {
          rawBody: 'name=x',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        }),
        415,
      );
    });
    it('rejects a body over 1 MiB', async () => {
      const big = JSON.stringify({ name: 'x'.repeat(1_100_000), format: 'csv' });
      expectError(
        await stack.call('POST', '/datasets', {
          rawBody: big,
          headers: { 'content-type': 'application/json' },
        }),
        413,
      );
    });
    it('refuses an upload with a forged signature or another content type', async () => {
      const created = await stack.call('POST', '/datasets', { body: { name: 'x', format: 'csv' } });
      const forged = created.body.uploadUrl.replace(/signature=[0-9a-f]{4}/, 'signature=0000');
      assert.equal(
        (await fetch(forged, { method: 'PUT', headers: created.body.uploadHeaders, body: CSV })).status,
        403,
      );
      assert.equal(
        (
          await fetch(created.body.uploadUrl, {
            method: 'PUT',
            headers: { 'content-type': 'text/plain' },
            body: CSV,
          })
        ).status,
        403,
      );
    });
  });

  describe('POST /jobs', () => {
    const queued = async () => (await stack.call('GET', '/jobs?status=QUEUED&limit=100')).body.jobs.length;

    it('rejects a malformed body, a wrong type, an unknown field, and stores nothing', async () => {
      const before = await queued();
      expectError(
        await stack.call('POST', '/jobs', { rawBody: '{', headers: { 'content-type': 'application/json' } }),
        400,
        'MALFORMED_JSON',
      );
      expectError(
        await stack.call('POST', '/jobs', { body: { ...validSpec(datasetId), training: { epochs: 'ten' } } }),
        400,
        'VALIDATION_ERROR',
        /training\.epochs/,
      );
      expectError(
        await stack.call('POST', '/jobs', { body: { ...validSpec(datasetId), gpu: true } }),
        400,
        'VALIDATION_ERROR',
        /unknown field gpu/,
      );
      expectError(
        await stack.call('POST', '/jobs', {
          body: { ...validSpec(datasetId), training: { optimizer: { type: 'lbfgs' } } },
        }),
        400,
        'VALIDATION_ERROR',
        /training\.optimizer/,
      );
      expectError(
        await stack.call('POST', '/jobs', { body: { ...validSpec(datasetId), task: 'clustering' } }),
        400,
        'VALIDATION_ERROR',
        /task/,
      );
      expectError(await stack.call('POST', '/jobs', { body: [] }), 400, 'VALIDATION_ERROR');
      assert.equal(await queued(), before);
    });
    it('lists every problem in details', async () => {
      const response = await stack.call('POST', '/jobs', {
        body: { task: 'x', dataset: { id: 'bad', label: '' } },
      });
      expectError(response, 400, 'VALIDATION_ERROR');
      const paths = response.body.error.details.problems.map((p: { path: string }) => p.path);
      assert.ok(
        paths.includes('task') && paths.includes('dataset.id') && paths.includes('dataset.label'),
        paths.join(','),
      );
    });
    it('rejects an unknown dataset', async () => {
      expectError(
        await stack.call('POST', '/jobs', { body: validSpec('01M8JH2TQYPMBNJ50HMGRP3N6M') }),
        400,
        'UNKNOWN_DATASET',
        /POST \/datasets/,
      );
    });
    it('rejects a dataset whose file was never uploaded', async () => {
      const created = await stack.call('POST', '/datasets', { body: { name: 'x', format: 'csv' } });
      expectError(
        await stack.call('POST', '/jobs', { body: validSpec(created.body.datasetId) }),
        400,
        'DATASET_NOT_UPLOADED',
      );
    });
    it('rejects a label or feature the dataset does not have, naming its columns', async () => {
      const response = await stack.call('POST', '/jobs', {
        body: { ...validSpec(datasetId), dataset: { id: datasetId, label: 'species' } },
      });
      expectError(response, 400, 'VALIDATION_ERROR', /"species".*"x1", "x2", "label"/);
      expectError(
        await stack.call('POST', '/jobs', {
          body: { ...validSpec(datasetId), dataset: { id: datasetId, label: 'label', features: ['x3'] } },
        }),
        400,
        'VALIDATION_ERROR',
        /"x3"/,
      );
    });
    it("rejects another tenant's dataset as unknown", async () => {
      expectError(
        await stack.call('POST', '/jobs', { body: validSpec(datasetId), token: otherToken }),
        400,
        'UNKNOWN_DATASET',
      );
    });
    it('honours Idempotency-Key: same body → same job (200), other body → 409', async () => {
      const headers = { 'idempotency-key': 'order-42' };
      const first = await stack.call('POST', '/jobs', { body: validSpec(datasetId), headers });
      assert.equal(first.status, 201);
      const again = await stack.call('POST', '/jobs', { body: validSpec(datasetId), headers });
      assert.equal(again.status, 200);
      assert.equal(again.body.id, first.body.id);
      const other = await stack.call('POST', '/jobs', {
        body: { ...validSpec(datasetId), name: 'other' },
        headers,
      });
      expectError(other, 409, 'IDEMPOTENCY_KEY_REUSED');
      expectError(
        await stack.call('POST', '/jobs', {
          body: validSpec(datasetId),
          headers: { 'idempotency-key': 'bad key/..' },
        }),
        400,
      );
    });
  });

  describe('GET /jobs', () => {
    it('rejects a bad status, limit or cursor', async () => {
      expectError(await stack.call('GET', '/jobs?status=DONE'), 400, 'VALIDATION_ERROR', /status/);
      expectError(await stack.call('GET', '/jobs?limit=0'), 400, 'VALIDATION_ERROR', /limit/);
      expectError(await stack.call('GET', '/jobs?limit=abc'), 400, 'VALIDATION_ERROR', /limit/);
      expectError(await stack.call('GET', '/jobs?cursor=%%%'), 400, 'INVALID_CURSOR');
      expectError(
        await stack.call('GET', '/jobs?colour=red'),
        400,
        'VALIDATION_ERROR',
        /unknown field colour/,
      );
    });
    it("never lists another tenant's jobs", async () => {
      const { status, body } = await stack.call('GET', '/jobs', { token: otherToken });
      assert.equal(status, 200);
      assert.deepEqual(body.jobs, []);
    });
    it('pages newest first with a cursor', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++)
        ids.push(
          (await stack.call('POST', '/jobs', { body: { ...validSpec(datasetId), name: `page-${i}` } })).body
            .id,
        );
      const first = await stack.call('GET', '/jobs?limit=2');
      assert.deepEqual(
        first.body.jobs.map((j: { id: string }) => j.id),
        [ids[2], ids[1]],
      );
      const second = await stack.call('GET', `/jobs?limit=2&cursor=${first.body.nextCursor}`);
      assert.equal(second.body.jobs[0].id, ids[0]);
    });
  });

  describe('job routes', () => {
    const jobRoutes: [string, string][] = [
      ['GET', ''],
      ['GET', '/metrics'],
      ['GET', '/events'],
      ['POST', '/cancel'],
      ['GET', '/result'],
      ['DELETE', ''],
    ];
    for (const [method, suffix] of jobRoutes) {
      it(`${method} /jobs/{id}${suffix}: another tenant's job is 404`, async () => {
        expectError(
          await stack.call(method, `/jobs/${jobId}${suffix}`, { token: otherToken }),
          404,
          'JOB_NOT_FOUND',
        );
      });
      it(`${method} /jobs/{id}${suffix}: an unknown or malformed id is 404`, async () => {
        expectError(
          await stack.call(method, `/jobs/01M8JH2TQYPMBNJ50HMGRP3N6M${suffix}`),
          404,
          'JOB_NOT_FOUND',
        );
        expectError(await stack.call(method, `/jobs/..%2F..%2Fsecret${suffix}`), 404, 'JOB_NOT_FOUND');
      });
    }
    it('GET /jobs/{id}/result of an unfinished job is 409', async () => {
      expectError(await stack.call('GET', `/jobs/${jobId}/result`), 409, 'NOT_READY');
    });
    it('DELETE /jobs/{id} of an unfinished job is 409', async () => {
      expectError(await stack.call('DELETE', `/jobs/${jobId}`), 409, 'INVALID_STATE');
    });
    it('cancel of a queued job makes it CANCELLED at once; a second cancel is 409; then it can be deleted', async () => {
      const cancelled = await stack.call('POST', `/jobs/${jobId}/cancel`);
      assert.equal(cancelled.status, 200);
      assert.equal(cancelled.body.status, 'CANCELLED');
      expectError(await stack.call('POST', `/jobs/${jobId}/cancel`), 409, 'INVALID_STATE');
      const events = await stack.call('GET', `/jobs/${jobId}/events`);
      assert.deepEqual(
        events.body.events.map((e: { status: string }) => e.status),
        ['QUEUED', 'CANCELLED'],
      );
      const deleted = await stack.call('DELETE', `/jobs/${jobId}`);
      assert.equal(deleted.status, 200);
      expectError(await stack.call('GET', `/jobs/${jobId}`), 404);
      const index = await stack.call('GET', '/jobs?limit=100');
      assert.ok(!index.body.jobs.some((j: { id: string }) => j.id === jobId));
      assert.ok(jobIndexPrefix('default').startsWith('tenants/default/'));
    });
  });
});
