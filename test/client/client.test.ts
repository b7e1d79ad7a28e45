/**
 * The typed client against a scripted HTTP server: which calls are retried and how, the typed
 * errors, the Idempotency-Key, presigned uploads, waiting and following a job.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DescentClient, type JobUpdate } from '../../client/client.ts';
import { DescentApiError, DescentError, DescentNetworkError } from '../../client/errors.ts';
import { type FakeServer, startFakeServer } from './fake-server.ts';

const FAST = { baseMs: 1, capMs: 4, jitter: 0 };

/** A job record as the API returns it, with only what these tests read. */
const jobOf = (status: string, epoch = 0, extra: Record<string, unknown> = {}) => ({
  id: '01JOB',
  name: 'test',
  status,
  attempt: status === 'QUEUED' ? 0 : 1,
  progress: { epoch, epochs: 5 },
  ...extra,
});

describe('DescentClient', () => {
  let server: FakeServer;
  let client: DescentClient;

  before(async () => {
    server = await startFakeServer();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.requests.length = 0;
    client = new DescentClient({ baseUrl: `${server.url}/`, token: 'tok', retry: FAST, poll: FAST });
  });

  it('sends the bearer token and returns the parsed body', async () => {
    server.handle(() => ({ status: 200, body: jobOf('RUNNING', 2) }));
    const job = await client.getJob('01JOB');
    assert.equal(job.status, 'RUNNING');
    assert.equal(server.requests[0]?.path, '/jobs/01JOB');
    assert.equal(server.requests[0]?.headers.authorization, 'Bearer tok');
  });

  it('asks a token provider for the token on every request', async () => {
    let calls = 0;
    client = new DescentClient({ baseUrl: server.url, token: async () => `t${++calls}`, retry: FAST });
    server.handle(() => ({ status: 200, body: { jobs: [], nextCursor: null } }));
    await client.listJobs({ status: 'FAILED', limit: 5 });
    await client.listJobs();
    assert.deepEqual(
      server.requests.map((r) => r.headers.authorization),
      ['Bearer t1', 'Bearer t2'],
    );
    assert.equal(server.requests[0]?.path, '/jobs?status=FAILED&limit=5');
  });

  it('retries a GET on 503 and 429 until it succeeds', async () => {
    server.handle((_r, n) =>
      n === 1
        ? { status: 503, body: { error: { code: 'UNAVAILABLE', message: 'later' } } }
        : n === 2
          ? {
              status: 429,
              body: { error: { code: 'TOO_MANY_REQUESTS', message: 'slow down' } },
              headers: { 'retry-after': '0' },
            }
          : { status: 200, body: jobOf('SUCCEEDED', 5) },
    );
    const job = await client.getJob('01JOB');
    assert.equal(job.status, 'SUCCEEDED');
    assert.equal(server.requests.length, 3);
  });

  it('gives up after maxAttempts and throws the last API error', async () => {
    server.handle(() => ({ status: 500, body: { error: { code: 'INTERNAL', message: 'Internal error.' } } }));
    await assert.rejects(client.getMetrics('01JOB'), (error: unknown) => {
      assert.ok(error instanceof DescentApiError);
      assert.equal(error.status, 500);
      assert.equal(error.code, 'INTERNAL');
      return true;
    });
    assert.equal(server.requests.length, 4);
  });

  it('never retries a 4xx and carries the API error code, message, details and request id', async () => {
    server.handle(() => ({
      status: 400,
      body: {
        error: {
          code: 'VALIDATION_ERROR',
          message: 'Invalid job spec: task',
          details: { problems: [{ path: 'task', message: 'bad' }] },
        },
      },
      headers: { 'apigw-requestid': 'req-1' },
    }));
    await assert.rejects(client.submitJob({ task: 'classification' } as never), (error: unknown) => {
      assert.ok(error instanceof DescentApiError);
      assert.equal(error.name, 'DescentApiError');
      assert.equal(error.status, 400);
      assert.equal(error.code, 'VALIDATION_ERROR');
      assert.equal(error.message, 'Invalid job spec: task');
      assert.deepEqual(error.details, { problems: [{ path: 'task', message: 'bad' }] });
      assert.equal(error.requestId, 'req-1');
      assert.equal(error.request, 'POST /jobs');
      assert.deepEqual(Object.keys(error.toJSON()), ['status', 'code', 'message', 'details', 'requestId']);
      return true;
    });
    assert.equal(server.requests.length, 1);
  });

  it('does not retry POST /datasets, which is not idempotent', async () => {
    server.handle(() => ({ status: 503, body: { error: { code: 'UNAVAILABLE', message: 'later' } } }));
    await assert.rejects(client.createDataset({ name: 'd', format: 'csv' }), DescentApiError);
    assert.equal(server.requests.length, 1);
  });

  it('retries a submit with the same generated Idempotency-Key', async () => {
    server.handle((_r, n) => (n < 3 ? 'drop' : { status: 201, body: jobOf('QUEUED') }));
    const job = await client.submitJob({ task: 'regression', dataset: { id: 'x', label: 'y' } });
    assert.equal(job.status, 'QUEUED');
    const keys = server.requests.map((r) => r.headers['idempotency-key']);
    assert.equal(keys.length, 3);
    assert.match(String(keys[0]), /^[0-9a-f-]{32,36}$/);
    assert.ok(
      keys.every((k) => k === keys[0]),
      'one key for every try',
    );
    assert.equal(server.requests[0]?.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(server.requests[0]?.body ?? ''), {
      task: 'regression',
      dataset: { id: 'x', label: 'y' },
    });
  });

  it('uses a given Idempotency-Key and a new one for each submit otherwise', async () => {
    server.handle(() => ({ status: 201, body: jobOf('QUEUED') }));
    await client.submitJob({} as never, { idempotencyKey: 'run-1' });
    await client.submitJob({} as never);
    await client.submitJob({} as never);
    const keys = server.requests.map((r) => r.headers['idempotency-key']);
    assert.equal(keys[0], 'run-1');
    assert.notEqual(keys[1], keys[2]);
  });

  it('retries cancel and delete, which are safe to repeat', async () => {
    server.handle((_r, n) =>
      n % 2 === 1 ? { status: 502, raw: 'Bad Gateway' } : { status: 200, body: jobOf('CANCELLING') },
    );
    await client.cancelJob('01JOB');
    await client.deleteJob('01JOB');
    assert.deepEqual(
      server.requests.map((r) => `${r.method} ${r.path}`),
      ['POST /jobs/01JOB/cancel', 'POST /jobs/01JOB/cancel', 'DELETE /jobs/01JOB', 'DELETE /jobs/01JOB'],
    );
  });

  it('turns a dropped connection into a DescentNetworkError after the retries', async () => {
    server.handle(() => 'drop');
    await assert.rejects(client.getEvents('01JOB'), (error: unknown) => {
      assert.ok(error instanceof DescentNetworkError);
      assert.equal(error.code, 'NETWORK_ERROR');
      assert.match(error.message, /GET \/jobs\/01JOB\/events: cannot reach/);
      return true;
    });
    assert.equal(server.requests.length, 4);
  });

  it('reports a timeout when no headers arrive in time', async () => {
    client = new DescentClient({
      baseUrl: server.url,
      token: 'tok',
      retry: { ...FAST, maxAttempts: 1 },
      timeoutMs: 100,
    });
    server.handle(() => 'hang');
    await assert.rejects(client.getJob('01JOB'), (error: unknown) => {
      assert.ok(error instanceof DescentNetworkError);
      assert.equal(error.code, 'TIMEOUT');
      return true;
    });
  });

  it('stops at once when the caller aborts', async () => {
    const controller = new AbortController();
    // Abort once the request is in flight (a timer raced a loaded machine's connect).
    server.handle(() => {
      controller.abort(new Error('user stop'));
      return 'hang';
    });
    await assert.rejects(client.getJob('01JOB', { signal: controller.signal }), /user stop/);
    assert.equal(server.requests.length, 1);
  });

  it('reads S3 XML errors and plain-text errors', async () => {
    server.handle((_r, n) =>
      n === 1
        ? {
            status: 403,
            raw: '<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>',
          }
        : { status: 404, raw: 'nothing here' },
    );
    await assert.rejects(
      client.openArtifact(`${server.url}/bucket/model.json?X-Amz-Signature=abc`),
      (error: unknown) => {
        assert.ok(error instanceof DescentApiError);
        assert.equal(error.code, 'AccessDenied');
        assert.equal(error.message, 'Request has expired');
        assert.ok(!error.request?.includes('Signature'), 'no presigned query in the error');
        return true;
      },
    );
    await assert.rejects(client.getJob('x'), { code: 'HTTP_404', message: 'nothing here' });
  });

  it('uploads a dataset: POST /datasets, then PUT the bytes to the presigned URL without the token', async () => {
    server.handle((r) =>
      r.method === 'POST'
        ? {
            status: 201,
            body: {
              datasetId: '01DATA',
              name: 'iris',
              format: 'csv',
              uploadUrl: `${server.url}/_storage/put?sig=1`,
              uploadMethod: 'PUT',
              uploadHeaders: { 'content-type': 'text/csv' },
              maxBytes: 1000,
              expiresAt: '',
            },
          }
        : { status: 200, raw: '' },
    );
    const dataset = await client.uploadDataset('a,b\n1,2\n', { name: 'iris' });
    assert.equal(dataset.datasetId, '01DATA');
    assert.equal(dataset.bytes, 8);
    const [create, put] = server.requests;
    assert.deepEqual(JSON.parse(create?.body ?? ''), { name: 'iris', format: 'csv' });
    assert.equal(put?.method, 'PUT');
    assert.equal(put?.path, '/_storage/put?sig=1');
    assert.equal(put?.headers['content-type'], 'text/csv');
    assert.equal(put?.headers.authorization, undefined);
    assert.equal(put?.body, 'a,b\n1,2\n');
  });

  it('refuses an upload larger than the service accepts', async () => {
    server.handle(() => ({
      status: 201,
      body: {
        datasetId: 'd',
        uploadUrl: `${server.url}/put`,
        uploadMethod: 'PUT',
        uploadHeaders: {},
        maxBytes: 4,
      },
    }));
    await assert.rejects(client.uploadDataset(new Uint8Array(10), { name: 'big' }), {
      code: 'DATASET_TOO_LARGE',
    });
    assert.equal(server.requests.length, 1);
  });

  it('waitForJob polls until the job has finished and returns it, failed or not', async () => {
    const states = [
      jobOf('QUEUED'),
      jobOf('RUNNING', 2),
      jobOf('RUNNING', 2),
      jobOf('FAILED', 3, { error: { code: 'X', message: 'y' } }),
    ];
    server.handle((_r, n) => ({ status: 200, body: states[Math.min(n, states.length) - 1] }));
    const seen: string[] = [];
    const job = await client.waitForJob('01JOB', { onUpdate: (j) => seen.push(j.status) });
    assert.equal(job.status, 'FAILED');
    assert.deepEqual(seen, ['QUEUED', 'RUNNING', 'RUNNING', 'FAILED']);
  });

  it('waitForJob gives up after timeoutMs with WAIT_TIMEOUT', async () => {
    client = new DescentClient({
      baseUrl: server.url,
      token: 'tok',
      poll: { baseMs: 20, capMs: 20, jitter: 0 },
    });
    server.handle(() => ({ status: 200, body: jobOf('RUNNING', 1) }));
    await assert.rejects(client.waitForJob('01JOB', { timeoutMs: 100 }), (error: unknown) => {
      assert.ok(error instanceof DescentError);
      assert.equal(error.code, 'WAIT_TIMEOUT');
      return true;
    });
  });

  it('follow yields each epoch and event once, in order, then returns the final record', async () => {
    const epochs = [1, 2, 3, 4, 5].map((epoch) => ({ epoch, loss: 1 / epoch, valLoss: 2 / epoch }));
    const events = [
      { at: 't0', type: 'state', status: 'QUEUED', message: 'queued' },
      { at: 't1', type: 'state', status: 'RUNNING', message: 'started' },
      { at: 't2', type: 'warning', message: 'slow' },
      { at: 't3', type: 'state', status: 'SUCCEEDED', message: 'done' },
    ];
    // Poll k sees the job, then its metrics and events as they were at that time.
    const timeline = [
      { job: jobOf('QUEUED'), epochs: 0, events: 1 },
      { job: jobOf('RUNNING', 2), epochs: 2, events: 2 },
      { job: jobOf('RUNNING', 2), epochs: 2, events: 2 },
      { job: jobOf('SUCCEEDED', 5), epochs: 5, events: 4 },
    ];
    let poll = -1;
    server.handle((r) => {
      if (r.path === '/jobs/01JOB') poll = Math.min(poll + 1, timeline.length - 1);
      const now = timeline[poll] as (typeof timeline)[number];
      if (r.path.endsWith('/metrics')) return { status: 200, body: { epochs: epochs.slice(0, now.epochs) } };
      if (r.path.endsWith('/events')) return { status: 200, body: { events: events.slice(0, now.events) } };
      return { status: 200, body: now.job };
    });
    const seen: string[] = [];
    const updates = client.follow('01JOB');
    let final: unknown;
    for (;;) {
      const next = await updates.next();
      if (next.done) {
        final = next.value;
        break;
      }
      const u: JobUpdate = next.value;
      seen.push(
        u.type === 'epoch'
          ? `epoch ${u.metrics.epoch}`
          : u.type === 'event'
            ? `event ${u.event.message}`
            : `job ${u.job.status}`,
      );
    }
    assert.deepEqual(seen, [
      'event queued',
      'job QUEUED',
      'event started',
      'epoch 1',
      'epoch 2',
      'job RUNNING',
      'epoch 3',
      'epoch 4',
      'epoch 5',
      'event slow',
      'event done',
      'job SUCCEEDED',
    ]);
    assert.equal((final as { status: string }).status, 'SUCCEEDED');
  });

  it('watchMetrics yields the epochs only and reads no events', async () => {
    server.handle((r) =>
      r.path.endsWith('/metrics')
        ? {
            status: 200,
            body: {
              epochs: [
                { epoch: 1, loss: 0.5 },
                { epoch: 2, loss: 0.25 },
              ],
            },
          }
        : { status: 200, body: jobOf('SUCCEEDED', 2) },
    );
    const losses: number[] = [];
    for await (const metrics of client.watchMetrics('01JOB')) losses.push(metrics.loss);
    assert.deepEqual(losses, [0.5, 0.25]);
    assert.ok(server.requests.every((r) => !r.path.endsWith('/events')));
  });
});
