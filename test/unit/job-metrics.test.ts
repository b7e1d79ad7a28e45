/**
 * Who emits which job metric: the submit handler counts a new job once (not its idempotent replays),
 * and a job that ends is counted once, by the job lifecycle's change that ended it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jobEndMetrics } from '../../core/jobs/job-metrics.ts';
import { datasetKeys } from '../../core/platform/keys.ts';
import { createServices, type Services } from '../../core/services.ts';
import type { ApiEvent } from '../../functions/http.ts';
import { create as submitHandler } from '../../functions/submit-job.ts';
import { type LocalPorts, localPorts } from '../helpers/local-ports.ts';

const TENANT = 'acme';

/** A POST /jobs event as API Gateway passes it after the JWT authorizer. */
const submitEvent = (body: unknown, idempotencyKey?: string) =>
  ({
    routeKey: 'POST /jobs',
    rawPath: '/jobs',
    headers: {
      'content-type': 'application/json',
      ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
    },
    body: JSON.stringify(body),
    isBase64Encoded: false,
    requestContext: { requestId: 'r1', authorizer: { jwt: { claims: { client_id: TENANT }, scopes: [] } } },
  }) as unknown as ApiEvent;

describe('job metrics', () => {
  let ports: LocalPorts;
  let services: Services;
  let datasetId: string;
  const lines: string[] = [];
  const sink = (line: string) => {
    lines.push(line);
  };
  const metricsIn = (line: string | undefined) => {
    const parsed = JSON.parse(line ?? '{}') as Record<string, unknown> & {
      _aws: { CloudWatchMetrics: { Metrics: { Name: string }[] }[] };
    };
    return Object.fromEntries(
      parsed._aws.CloudWatchMetrics[0]?.Metrics.map((m) => [m.Name, parsed[m.Name]]) ?? [],
    );
  };

  before(async () => {
    ports = await localPorts();
    services = createServices(ports.store, ports.queue);
    datasetId = services.newId();
    const keys = datasetKeys(TENANT, datasetId);
    await ports.store.put(
      keys.meta,
      JSON.stringify({ id: datasetId, name: 'd', format: 'csv', createdAt: new Date().toISOString() }),
    );
    await ports.store.put(keys.data, 'a,b,label\n1,2,x\n2,3,y\n3,4,x\n4,5,y\n');
  });
  after(async () => {
    await ports.cleanup();
  });

  const spec = () => ({
    task: 'classification',
    dataset: { id: datasetId, label: 'label' },
    training: { epochs: 2 },
  });

  it('the submit handler counts a new job once, with its tenant and id, and not its replay', async () => {
    lines.length = 0;
    const handler = submitHandler(services, sink);
    const first = await handler(submitEvent(spec(), 'key-1'));
    assert.equal(first.statusCode, 201, first.body);
    const replay = await handler(submitEvent(spec(), 'key-1'));
    assert.equal(replay.statusCode, 200);
    assert.equal(lines.length, 1);
    assert.deepEqual(metricsIn(lines[0]), { jobsSubmitted: 1 });
    const { tenant, jobId } = JSON.parse(lines[0] as string) as { tenant: string; jobId: string };
    assert.deepEqual({ tenant, jobId }, { tenant: TENANT, jobId: JSON.parse(first.body as string).id });
  });

  it('a job is counted once, by the change that ended it: succeeded, failed, dead-lettered', async () => {
    lines.length = 0;
    services.lifecycle.subscribe(jobEndMetrics(sink));
    const { lifecycle } = services;
    const submit = async () =>
      JSON.parse((await submitHandler(services)(submitEvent(spec()))).body as string).id as string;

    // A run that fails the job (what runJob does for bad data).
    const failed = await submit();
    assert.equal((await lifecycle.claim(TENANT, failed, 'wasm')).kind, 'running');
    await lifecycle.finish(
      TENANT,
      failed,
      { attempt: 1 },
      {
        status: 'FAILED',
        patch: { error: { code: 'INVALID_DATA', message: 'row 2' } },
        message: () => 'Failed: row 2',
      },
    );
    assert.equal(lines.length, 1);
    assert.deepEqual(metricsIn(lines[0]), { jobsFailed: 1 });
    assert.equal(JSON.parse(lines[0] as string).status, 'FAILED');

    // A redelivery of the finished job and its dead letter change nothing and count nothing.
    assert.equal((await lifecycle.claim(TENANT, failed, 'wasm')).kind, 'ended');
    assert.equal(await lifecycle.deadLettered(TENANT, failed, 3), 'already-finished');
    assert.equal(lines.length, 1);

    // A job whose workers kept dying: dead-lettered.
    const dead = await submit();
    assert.equal(await lifecycle.deadLettered(TENANT, dead, 3), 'failed');
    assert.deepEqual(metricsIn(lines[1]), { jobsDeadLettered: 1 });

    // A success, with its training time.
    const ok = await submit();
    await lifecycle.claim(TENANT, ok, 'wasm');
    await lifecycle.finish(
      TENANT,
      ok,
      { attempt: 1 },
      {
        status: 'SUCCEEDED',
        patch: { resources: { trainingSeconds: 4.5 } },
        message: () => 'Succeeded.',
      },
    );
    assert.deepEqual(metricsIn(lines[2]), { jobsSucceeded: 1, trainingSeconds: 4.5 });
    assert.equal(lines.length, 3);
  });
});
