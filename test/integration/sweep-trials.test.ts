/**
 * Sweep trials trained for real (the worker loop and runJob in this process, wasm backend, iris): the
 * trainer queues the next trial as each one ends, and the median stopping rule ends a deliberately
 * bad trial early with its partial metrics.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { getResult } from '../../core/jobs/job-service.ts';
import type { Services } from '../../core/services.ts';
import { getSweep, submitSweep } from '../../core/sweeps/sweep-service.ts';
import { Worker } from '../../trainer/worker.ts';
import { eventually } from '../helpers/eventually.ts';
import { quiet, TENANT, type TrainerFixture, trainerFixture } from '../helpers/trainer.ts';

const iris = await readFile(new URL('../../examples/iris/iris.csv', import.meta.url), 'utf8');

describe('sweep trials on a real worker', { timeout: 60_000 }, () => {
  let fixture: TrainerFixture;
  let services: Services;

  before(async () => {
    fixture = await trainerFixture({ deps: { progressIntervalMs: 1000 } });
    services = fixture.services;
  });
  after(async () => {
    await fixture?.cleanup();
  });

  it('median stopping ends a deliberately bad trial early, keeping its partial metrics', async () => {
    const datasetId = await fixture.dataset(iris);
    const { record: sweep } = await submitSweep(services, TENANT, {
      name: 'median',
      spec: {
        task: 'classification',
        dataset: { id: datasetId, label: 'species' },
        model: { layers: [{ type: 'dense', units: 8 }] },
        training: { epochs: 30, batchSize: 16, seed: 3 },
      },
      // Two good learning rates first, then one far too small to learn anything in 30 epochs.
      parameters: { 'training.optimizer.learningRate': { type: 'choice', values: [0.05, 0.1, 1e-6] } },
      objective: { metric: 'loss' },
      maxParallel: 1,
      earlyStopping: { type: 'median', minEpochs: 5, minTrials: 2 },
    });
    const worker = new Worker({
      queue: fixture.ports.queue,
      log: quiet,
      waitSeconds: 0.1,
      run: (message, signal) => fixture.run(message.jobId, signal),
    });
    const loop = worker.start();
    const view = await eventually(
      () => getSweep(services, TENANT, sweep.id),
      (v) => v.status !== 'RUNNING',
      { timeoutMs: 50_000, intervalMs: 50, what: 'the sweep to end' },
    );
    await worker.stop();
    await loop;

    assert.equal(view.status, 'SUCCEEDED', JSON.stringify(view.trials));
    assert.deepEqual(
      view.trials.map((t) => t.status),
      ['SUCCEEDED', 'SUCCEEDED', 'STOPPED_EARLY'],
    );
    const bad = view.trials[2];
    assert.ok(bad?.jobId);
    assert.equal(bad.epochs, 5, 'stopped as soon as the rule applied');
    assert.equal(bad.objective, undefined);
    const jobs = fixture.jobs;
    const record = (await jobs.get(TENANT, bad.jobId)).record;
    assert.equal(record.status, 'STOPPED_EARLY');
    assert.ok(record.finishedAt);
    assert.deepEqual(
      (await jobs.metrics(TENANT, bad.jobId)).map((m) => m.epoch),
      [1, 2, 3, 4, 5],
      'its partial metrics are kept',
    );
    const events = await jobs.events(TENANT, bad.jobId);
    assert.match(
      events.at(-1)?.message ?? '',
      /Stopped early at epoch 5: .*worse than the median .* of 2 completed trials/,
    );
    await assert.rejects(getResult(services, TENANT, bad.jobId), /STOPPED_EARLY/);
    // The good trials ran their 30 epochs; the ranking leaves the stopped one out.
    assert.deepEqual(
      view.trials.slice(0, 2).map((t) => t.epochs),
      [30, 30],
    );
    assert.equal(view.ranking.length, 2);
    assert.equal(view.best?.trial, view.ranking[0]);
    assert.equal(worker.handled.done, 3);
  });
});
