/**
 * A private job through the whole pipeline on a real data set (iris): it succeeds with a useful
 * held-out accuracy, its report's `privacy` section gives an ε within the target that the accountant
 * recomputes from the reported q, σ and steps, its warnings say what is not covered, its resources
 * say where it trained and what a private step cost; an interrupted run resumes its accounting.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { epsilonOf } from '../../core/training/privacy-accountant.ts';
import type { SelectedBackend } from '../../trainer/backend.ts';
import { trainingBackends } from '../helpers/backends.ts';
import { eventually } from '../helpers/eventually.ts';
import { readJson } from '../helpers/local-ports.ts';
import { TENANT, type TrainerFixture, trainerFixture } from '../helpers/trainer.ts';

const iris = await readFile(new URL('../../examples/iris/iris.csv', import.meta.url), 'utf8');

for (const backend of await trainingBackends()) {
  describe(`a private job on ${backend.name}`, () => privateJobTests(backend));
}

function privateJobTests(backend: SelectedBackend): void {
  let fixture: TrainerFixture;
  let datasetId: string;
  before(async () => {
    fixture = await trainerFixture({ backend });
    datasetId = await fixture.dataset(iris);
  });
  after(async () => {
    await fixture.cleanup();
  });
  const submit = (training: Record<string, unknown>) =>
    fixture.submit({
      dataset: { id: datasetId, label: 'species' },
      // Ranges known without looking at the rows (centimetres), so that scaling publishes nothing of them.
      preprocessing: {
        scale: 'standardize',
        columns: {
          sepal_length: { range: [4, 8] },
          sepal_width: { range: [2, 4.5] },
          petal_length: { range: [1, 7] },
          petal_width: { range: [0, 2.5] },
        },
      },
      model: { layers: [{ type: 'dense', units: 16 }] },
      training: {
        optimizer: { type: 'adam', learningRate: 0.01 },
        batchSize: 16,
        seed: 42,
        ...training,
      },
    });

  it('succeeds within its target ε, says what is not covered, and keeps a useful accuracy', async () => {
    const job = await submit({ epochs: 60, privacy: { targetEpsilon: 3 } });
    assert.equal(await fixture.run(job.id), 'done');
    const record = await fixture.record(job.id);
    assert.equal(record.status, 'SUCCEEDED', JSON.stringify(record.error));
    const report = await readJson(fixture.ports.store, `tenants/${TENANT}/jobs/${job.id}/report.json`);
    const p = report.privacy;
    assert.equal(p.steps, 60 * Math.ceil(120 / 16));
    assert.equal(p.sampleRate, 16 / 120);
    assert.equal(p.delta, 1e-5);
    assert.equal(p.clipNorm, 1);
    assert.ok(p.epsilon <= 3, String(p.epsilon));
    const recomputed = epsilonOf({
      sampleRate: p.sampleRate,
      noiseMultiplier: p.noiseMultiplier,
      steps: p.steps,
      delta: p.delta,
    });
    assert.equal(p.epsilon, recomputed.epsilon);
    assert.equal(p.optimalOrder, recomputed.order);
    assert.equal(p.accountant, 'rdp');
    assert.ok(p.orders.includes(512));
    assert.match(p.notCovered.join(' '), /hold-out rows/);
    assert.doesNotMatch(p.notCovered.join(' '), /Preprocessing statistics/);
    assert.ok(record.warnings?.some((w) => /^Privacy \(ε = .*hold-out rows/.test(w)));
    assert.ok(report.validation.accuracy >= 0.7, `held-out accuracy ${report.validation.accuracy}`);
    const resources = record.resources;
    // A chain of dense layers: vectorised per-example gradients, compiled where the worker compiles.
    if (backend.name === 'tensorflow') {
      assert.equal(resources?.engine, 'compiled');
      assert.match(resources?.engineReason ?? '', /^private training with vectorised per-example gradients/);
    } else {
      assert.equal(resources?.engine, 'eager');
      assert.match(resources?.engineReason ?? '', /the backend is wasm/);
    }
    assert.equal(resources?.privateTraining?.perExampleGradients, 'vectorized');
    assert.equal(resources?.privateTraining?.steps, p.steps);
    assert.ok((resources?.privateTraining?.secondsPerStep ?? 0) > 0);
    assert.ok((resources?.privateTraining?.overhead ?? 0) > 0);
  });

  it('resumes an interrupted private run with its step count: the accounting is neither lost nor doubled', async () => {
    const job = await submit({ epochs: 40, privacy: { targetEpsilon: 2 }, checkpoint: { everyEpochs: 1 } });
    const abort = new AbortController();
    const first = fixture.run(job.id, abort.signal);
    await eventually(
      () => fixture.record(job.id),
      (r) => r.progress.epoch >= 3,
      { what: 'epoch 3' },
    );
    abort.abort();
    assert.equal(await first, 'interrupted');
    const pointer = await readJson(
      fixture.ports.store,
      `tenants/${TENANT}/jobs/${job.id}/checkpoints/latest.json`,
    );
    assert.equal(pointer.state.privacy.steps, pointer.epoch * 8);
    assert.equal(Buffer.from(pointer.state.privacy.random.key, 'base64').length, 32);
    assert.equal(await fixture.run(job.id), 'done');
    const record = await fixture.record(job.id);
    assert.equal(record.status, 'SUCCEEDED');
    const report = await readJson(fixture.ports.store, `tenants/${TENANT}/jobs/${job.id}/report.json`);
    assert.equal(report.privacy.steps, 40 * 8);
    assert.ok(report.privacy.epsilon <= 2);
  });
}
