/**
 * Who emits which job metric: the submit handler counts a new job once (not its idempotent replays),
 * and the trainer counts a job it finished, read from the record after the run, once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { transition } from '../../core/jobs/job-record.ts';
import { JobStore } from '../../core/jobs/job-store.ts';
import { datasetKeys } from '../../core/platform/keys.ts';
import { createLogger } from '../../core/platform/log.ts';
import { createServices, type Services } from '../../core/services.ts';
import type { ApiEvent } from '../../functions/http.ts';
import { create as submitHandler } from '../../functions/submit-job.ts';
import { measuredRun } from '../../trainer/main.ts';
import { type LocalPorts, localPorts } from '../helpers/local-ports.ts';

const TENANT = 'acme';
const quiet = createLogger({}, () => {}, 'error');

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

  it('the trainer counts the job its run finished, and nothing for a run that did not finish one', async () => {
    lines.length = 0;
    const jobs = new JobStore(ports.store);
    const submitted = await submitHandler(services)(submitEvent(spec()));
    const jobId = JSON.parse(submitted.body as string).id as string;
    const message = { tenant: TENANT, jobId };
    const signal = new AbortController().signal;

    // A run that trains and fails the job (what runJob does for bad data).
    const failing = measuredRun(
      async () => {
        await jobs.update(TENANT, jobId, (r) => transition(r, 'RUNNING', new Date(), { attempt: 1 }));
        await jobs.update(TENANT, jobId, (r) =>
          transition(r, 'FAILED', new Date(), { error: { code: 'INVALID_DATA', message: 'row 2' } }),
        );
        return 'done';
      },
      { store: ports.store, metrics: sink, log: quiet },
    );
    assert.equal(await failing(message, signal), 'done');
    assert.equal(lines.length, 1);
    assert.deepEqual(metricsIn(lines[0]), { jobsFailed: 1 });
    assert.equal(JSON.parse(lines[0] as string).status, 'FAILED');

    // A redelivery of the finished job: runJob leaves it alone and says 'done'; it is not counted again.
    const later = () => new Date(Date.now() + 1000);
    const redelivered = measuredRun(async () => 'done', {
      store: ports.store,
      metrics: sink,
      log: quiet,
      now: later,
    });
    assert.equal(await redelivered(message, signal), 'done');
    // An interrupted run, and a run whose record cannot be read: no metric, the outcome unchanged.
    const interrupted = measuredRun(async () => 'interrupted', {
      store: ports.store,
      metrics: sink,
      log: quiet,
    });
    assert.equal(await interrupted(message, signal), 'interrupted');
    const unknown = measuredRun(async () => 'done', { store: ports.store, metrics: sink, log: quiet });
    assert.equal(await unknown({ tenant: TENANT, jobId: '01M8JH2TQYPMBNJ50HMGRP3N6M' }, signal), 'done');
    assert.equal(lines.length, 1);
  });
});
