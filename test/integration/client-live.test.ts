/** The typed client against the real local stack: upload, submit, metrics as they arrive, result, delete. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { DescentClient } from '../../client/client.ts';
import { DescentApiError } from '../../client/errors.ts';
import type { EpochMetrics } from '../../client/types.ts';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';

const irisCsv = await readFile(new URL('../../examples/iris/iris.csv', import.meta.url));

describe('DescentClient against the local stack', { timeout: 120_000 }, () => {
  let stack: TestStack;
  let client: DescentClient;

  before(async () => {
    stack = await startTestStack();
    client = new DescentClient({ baseUrl: stack.url, token: stack.token });
  });
  after(async () => {
    await stack?.destroy();
  });

  it('trains a job end to end and streams its metrics epoch by epoch', async () => {
    const dataset = await client.uploadDataset(irisCsv, { name: 'iris.csv' });
    assert.equal(dataset.bytes, irisCsv.length);
    const spec = {
      task: 'classification' as const,
      dataset: { id: dataset.datasetId, label: 'species' },
      model: { layers: [{ type: 'dense' as const, units: 8 }] },
      training: {
        epochs: 10,
        batchSize: 16,
        seed: 5,
        optimizer: { type: 'adam' as const, learningRate: 0.05 },
      },
    };
    const submitted = await client.submitJob(spec, { idempotencyKey: 'live-1' });
    assert.equal(submitted.status, 'QUEUED');

    const streamed: EpochMetrics[] = [];
    for await (const metrics of client.watchMetrics(submitted.id)) streamed.push(metrics);
    assert.deepEqual(
      streamed.map((m) => m.epoch),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    assert.deepEqual(streamed, (await client.getMetrics(submitted.id)).epochs);

    const job = await client.waitForJob(submitted.id);
    assert.equal(job.status, 'SUCCEEDED');
    const result = await client.getResult(job.id);
    assert.equal(result.report.task, 'classification');
    const model = await client.openArtifact(result.artifacts['model.json']);
    assert.ok(((await model.json()) as { modelTopology?: unknown }).modelTopology);

    // The same key and body replay the same job; the same key with another body is refused.
    assert.equal((await client.submitJob(spec, { idempotencyKey: 'live-1' })).id, job.id);
    await assert.rejects(client.submitJob({ ...spec, name: 'other' }, { idempotencyKey: 'live-1' }), {
      status: 409,
      code: 'IDEMPOTENCY_KEY_REUSED',
    });

    const listed = [];
    for await (const j of client.jobs({ limit: 1 })) listed.push(j.id);
    assert.ok(listed.includes(job.id));
    assert.equal((await client.deleteJob(job.id)).deleted, true);
    await assert.rejects(
      client.getJob(job.id),
      (error: unknown) => error instanceof DescentApiError && error.status === 404,
    );
  });

  it('reads the OpenAPI document without a token', async () => {
    const anonymous = new DescentClient({ baseUrl: stack.url });
    const doc = await anonymous.getOpenApi();
    assert.equal(doc.openapi, '3.1.0');
  });
});
