/**
 * The whole path on one machine: upload, submit, train in a worker process, fetch the result,
 * download the model through the presigned URLs, load it with tf.loadLayersModel, check that its
 * predictions give the reported metrics, then restart the stack and find the jobs still listed.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';
import { regressionCsv } from '../helpers/tables.ts';

const irisCsv = await readFile(new URL('../../examples/iris/iris.csv', import.meta.url), 'utf8');

/** Rows of a CSV as numbers (label column as text), header dropped. */
const csvRows = (text: string) =>
  text
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => line.split(','));

async function loadModel(artifacts: Record<string, string>) {
  const model = await tf.loadLayersModel(artifacts['model.json'] as string, {
    weightUrlConverter: async (name) => artifacts[name] as string,
  });
  return model;
}

describe('local stack end to end', { timeout: 180_000 }, () => {
  let stack: TestStack;
  const jobIds: string[] = [];

  before(async () => {
    assert.ok(await tf.setBackend('wasm'));
    stack = await startTestStack();
  });
  after(async () => {
    await stack?.destroy();
  });

  it('trains a classification job and serves a model whose predictions give the reported accuracy', async () => {
    const datasetId = await stack.upload(irisCsv);
    const submitted = await stack.call('POST', '/jobs', {
      body: {
        name: 'iris-mlp',
        task: 'classification',
        dataset: { id: datasetId, label: 'species' },
        model: { layers: [{ type: 'dense', units: 16, activation: 'relu' }] },
        training: {
          optimizer: { type: 'adam', learningRate: 0.02 },
          epochs: 60,
          batchSize: 16,
          validation: { type: 'holdout', fraction: 0.2 },
          seed: 42,
        },
      },
    });
    assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
    assert.equal(submitted.body.status, 'QUEUED');
    jobIds.push(submitted.body.id);

    const job = await stack.waitFor(submitted.body.id);
    assert.equal(job.status, 'SUCCEEDED', JSON.stringify(job.error));
    assert.equal(job.attempt, 1);
    assert.equal(job.backend, 'wasm');
    assert.deepEqual(job.classes, ['setosa', 'versicolor', 'virginica']);
    assert.ok(job.startedAt && job.finishedAt);

    const metrics = await stack.call('GET', `/jobs/${job.id}/metrics`);
    assert.equal(metrics.status, 200);
    assert.equal(metrics.body.epochs.length, job.progress.epoch);
    assert.deepEqual(
      metrics.body.epochs.map((e: { epoch: number }) => e.epoch),
      Array.from({ length: job.progress.epoch }, (_, i) => i + 1),
    );
    assert.ok(metrics.body.epochs.at(-1).loss < metrics.body.epochs[0].loss, 'loss went down');

    const result = await stack.call('GET', `/jobs/${job.id}/result`);
    assert.equal(result.status, 200);
    const { report, artifacts } = result.body;
    assert.ok(report.validation.accuracy > 0.8, `accuracy ${report.validation.accuracy}`);
    assert.equal(result.body.metrics.accuracy, report.validation.accuracy);
    assert.equal(report.validation.rowIndices.length, 30);

    const model = await loadModel(artifacts);
    const rows = csvRows(irisCsv);
    const holdout = report.validation.rowIndices.map((i: number) => rows[i] as string[]);
    const x = tf.tensor2d(holdout.map((r: string[]) => r.slice(0, 4).map(Number)));
    const predicted = Array.from(await (model.predict(x) as tf.Tensor).argMax(-1).data());
    const correct = predicted.filter((p, i) => job.classes[p] === holdout[i][4]).length;
    assert.equal(correct / holdout.length, report.validation.accuracy);

    const svg = await fetch(artifacts['loss-curve.svg']);
    assert.equal(svg.status, 200);
    assert.match(await svg.text(), /^<svg/);
  });

  it('fine-tunes an uploaded TensorFlow.js model (a tfjs-model dataset holding model.json and weights.bin)', async () => {
    const baseData = await stack.upload(irisCsv);
    const baseJob = await stack.call('POST', '/jobs', {
      body: {
        task: 'classification',
        dataset: { id: baseData, label: 'species' },
        // A hidden layer for `freeze: 1` below to keep (the base's output layer is replaced).
        model: { layers: [{ type: 'dense', units: 8 }] },
        training: { epochs: 3, seed: 2 },
      },
    });
    assert.equal(baseJob.status, 201, JSON.stringify(baseJob.body));
    jobIds.push(baseJob.body.id);
    const base = await stack.waitFor(baseJob.body.id);
    assert.equal(base.status, 'SUCCEEDED', JSON.stringify(base.error));
    const { artifacts } = (await stack.call('GET', `/jobs/${base.id}/result`)).body;
    const created = await stack.call('POST', '/datasets', {
      body: { name: 'iris-model', format: 'tfjs-model' },
    });
    assert.equal(created.status, 201);
    for (const file of ['model.json', 'weights.bin']) {
      const bytes = await (await fetch(artifacts[file])).arrayBuffer();
      const put = await fetch(created.body.uploadUrls[file], {
        method: 'PUT',
        headers: created.body.uploadHeadersByFile[file],
        body: bytes,
      });
      assert.equal(put.status, 200, file);
    }
    const datasetId = await stack.upload(irisCsv);
    const submitted = await stack.call('POST', '/jobs', {
      body: {
        task: 'classification',
        dataset: { id: datasetId, label: 'species' },
        model: { baseModel: { datasetId: created.body.datasetId }, freeze: 1 },
        training: { epochs: 5, seed: 4 },
      },
    });
    assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
    jobIds.push(submitted.body.id);
    const job = await stack.waitFor(submitted.body.id);
    assert.equal(job.status, 'SUCCEEDED', JSON.stringify(job.error));
    assert.deepEqual(job.lineage.baseModel, { datasetId: created.body.datasetId });
    const asData = await stack.call('POST', '/jobs', {
      body: { task: 'classification', dataset: { id: created.body.datasetId, label: 'x' } },
    });
    assert.equal(asData.body.error.code, 'WRONG_DATASET_FORMAT');
  });

  it('trains a regression job and serves a model whose predictions give the reported MAE, RMSE and R²', async () => {
    const csv = regressionCsv();
    const datasetId = await stack.upload(csv);
    const submitted = await stack.call('POST', '/jobs', {
      body: {
        task: 'regression',
        dataset: { id: datasetId, label: 'y', features: ['a', 'b'] },
        model: { layers: [{ type: 'dense', units: 8, activation: 'tanh' }] },
        training: { optimizer: { type: 'adam', learningRate: 0.05 }, epochs: 80, batchSize: 'full', seed: 3 },
      },
    });
    assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
    jobIds.push(submitted.body.id);
    const job = await stack.waitFor(submitted.body.id);
    assert.equal(job.status, 'SUCCEEDED', JSON.stringify(job.error));

    const { body } = await stack.call('GET', `/jobs/${job.id}/result`);
    const v = body.report.validation;
    assert.ok(v.r2 > 0.9, `r2 ${v.r2}`);
    const model = await loadModel(body.artifacts);
    const rows = csvRows(csv).map((r) => r.map(Number));
    const holdout = v.rowIndices.map((i: number) => rows[i] as number[]);
    const predicted = await (
      model.predict(tf.tensor2d(holdout.map((r: number[]) => r.slice(0, 2)))) as tf.Tensor
    ).data();
    const errors = holdout.map((r: number[], i: number) => (r[2] as number) - (predicted[i] as number));
    const mae = errors.reduce((s: number, e: number) => s + Math.abs(e), 0) / errors.length;
    const rmse = Math.sqrt(errors.reduce((s: number, e: number) => s + e * e, 0) / errors.length);
    assert.ok(Math.abs(mae - v.mae) < 1e-4, `mae ${mae} vs reported ${v.mae}`);
    assert.ok(Math.abs(rmse - v.rmse) < 1e-4, `rmse ${rmse} vs reported ${v.rmse}`);
  });

  it('keeps every job across a restart', async () => {
    const { dataDir } = stack;
    await stack.stop();
    // The same stack again (a worker too, so the tests that run after this one still train).
    stack = await startTestStack({ dataDir });
    const listed = await stack.call('GET', '/jobs');
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.body.jobs.map((j: { id: string }) => j.id),
      [...jobIds].reverse(),
    );
    assert.ok(listed.body.jobs.every((j: { status: string }) => j.status === 'SUCCEEDED'));
  });
});

describe('local stack restarts', { timeout: 180_000 }, () => {
  it('runs jobs that were queued before a restart, from a JSON Lines dataset', async () => {
    let stack = await startTestStack({ workers: 0 });
    const { dataDir } = stack;
    try {
      const lines = csvRows(irisCsv).map(([a, b, c, d, species]) =>
        JSON.stringify({
          sepal_length: +(a as string),
          sepal_width: +(b as string),
          petal_length: +(c as string),
          petal_width: +(d as string),
          species,
        }),
      );
      const datasetId = await stack.upload(`${lines.join('\n')}\n`, 'jsonl');
      const submitted = await stack.call('POST', '/jobs', {
        body: {
          task: 'classification',
          dataset: { id: datasetId, label: 'species' },
          training: { epochs: 5, seed: 1 },
        },
      });
      assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
      await stack.stop();

      stack = await startTestStack({ dataDir, workers: 1 });
      const job = await stack.waitFor(submitted.body.id);
      assert.equal(job.status, 'SUCCEEDED', JSON.stringify(job.error));
      assert.equal(job.progress.epoch, 5);
    } finally {
      await stack.destroy();
    }
  });

  it('releases a job that was training when the stack stopped, and finishes it on the next start', async () => {
    let stack = await startTestStack({ workers: 1 });
    const { dataDir } = stack;
    try {
      const datasetId = await stack.upload(irisCsv);
      const submitted = await stack.call('POST', '/jobs', {
        body: {
          task: 'classification',
          dataset: { id: datasetId, label: 'species' },
          training: { epochs: 150, batchSize: 4, seed: 1 },
        },
      });
      await stack.waitFor(submitted.body.id, (job) => job.status === 'RUNNING' && job.progress.epoch >= 1);
      await stack.stop();
      stack = await startTestStack({ dataDir, workers: 1 });
      const job = await stack.waitFor(submitted.body.id);
      assert.equal(job.status, 'SUCCEEDED', JSON.stringify(job.error));
      assert.equal(job.attempt, 2);
      const events = await stack.call('GET', `/jobs/${job.id}/events`);
      assert.ok(events.body.events.some((e: { message: string }) => /interrupted/.test(e.message)));
    } finally {
      await stack.destroy();
    }
  });
});
