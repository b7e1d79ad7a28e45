/**
 * What a finished job delivers: the report (k-fold, test split, metrics, permutation importance,
 * warnings), lineage and resources in the record, the saved preprocessing, and fine-tuning.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { submitJob } from '../../core/jobs/job-service.ts';
import type { JobStore } from '../../core/jobs/job-store.ts';
import { datasetKeys, jobKeys } from '../../core/platform/keys.ts';
import type { Services } from '../../core/services.ts';
import type { SelectedBackend } from '../../trainer/backend.ts';
import { trainingBackends } from '../helpers/backends.ts';
import { readJson } from '../helpers/local-ports.ts';
import { lcg } from '../helpers/tables.ts';
import { TENANT, type TrainerFixture, trainerFixture } from '../helpers/trainer.ts';

/** label is decided by `signal` alone; `noise` is random. */
function signalCsv(n = 200): string {
  const r = lcg(4);
  const lines = ['signal,noise,label'];
  for (let i = 0; i < n; i++) {
    const signal = r() * 2 - 1;
    lines.push(`${signal.toFixed(4)},${(r() * 2 - 1).toFixed(4)},${signal > 0 ? 'yes' : 'no'}`);
  }
  return `${lines.join('\n')}\n`;
}

// Every case on each training backend of this machine (wasm; tensorflow after `npm run setup:native`).
for (const backend of await trainingBackends()) {
  describe(`runJob deliverables on ${backend.name}`, () => deliverableTests(backend));
}

function deliverableTests(backend: SelectedBackend): void {
  let fixture: TrainerFixture;
  let services: Services;
  let jobs: JobStore;
  const csv = signalCsv();
  let datasetId: string;

  const run = async (body: Record<string, unknown>) => {
    const record = await fixture.submit({ dataset: { id: datasetId, label: 'label' }, ...body });
    assert.equal(await fixture.run(record.id), 'done');
    const done = await fixture.record(record.id);
    const report = (await jobs.report(TENANT, record.id)) as any;
    return { record: done, report };
  };

  before(async () => {
    fixture = await trainerFixture({ backend, deps: { hourlyPriceUsd: 3.6 } });
    services = fixture.services;
    jobs = fixture.jobs;
    datasetId = await fixture.dataset(csv);
  });
  after(async () => {
    await fixture.cleanup();
  });

  it('reports metrics, permutation importance (the pure-noise feature last), lineage and resources', async () => {
    const { record, report } = await run({
      model: { layers: [{ type: 'dense', units: 8 }] },
      training: { optimizer: { type: 'adam', learningRate: 0.05 }, epochs: 40, testFraction: 0.2, seed: 3 },
    });
    assert.equal(record.status, 'SUCCEEDED', JSON.stringify(record.error));
    assert.ok(report.validation.accuracy > 0.85);
    assert.equal(typeof report.validation.logLoss, 'number');
    assert.ok(report.validation.rocAuc > 0.9, 'binary task: ROC AUC');
    assert.deepEqual(report.validation.classes, ['no', 'yes']);
    assert.equal(report.validation.confusionMatrix.length, 2);
    assert.equal(report.test.rows, 40);
    assert.equal(typeof report.test.accuracy, 'number');
    assert.equal(report.gap.metric, 'accuracy');
    assert.deepEqual(
      report.featureImportance.map((f: { feature: string }) => f.feature),
      ['signal', 'noise'],
    );
    assert.ok(report.featureImportance[0].importance > 0.2);
    assert.ok(Math.abs(report.featureImportance[1].importance) < 0.05);

    assert.equal(record.lineage?.datasetSha256, createHash('sha256').update(csv).digest('hex'));
    assert.equal(record.lineage?.seed, 3);
    assert.equal(record.lineage?.backend, backend.name);
    assert.match(record.lineage?.serviceVersion ?? '', /^\d+\.\d+\.\d+/);
    const res = record.resources ?? {};
    assert.equal(res.epochsRun, 40);
    assert.deepEqual(res.rows, { training: 128, validation: 32, test: 40 });
    assert.ok(
      (res.samplesPerSecond ?? 0) > 0 && (res.peakRssBytes ?? 0) > 0 && (res.trainingSeconds ?? 0) > 0,
    );
    assert.ok(Math.abs((res.estimatedCostUsd ?? 0) - (3.6 * (res.trainingSeconds ?? 0)) / 3600) < 1e-9);
    assert.equal(res.backend, backend.name);
    assert.equal(res.device, backend.device);
    // A worker on TensorFlow native trains compiled; elsewhere eager, and says why.
    assert.equal(res.engine, backend.name === 'tensorflow' ? 'compiled' : 'eager');
    assert.match(
      String(res.engineReason),
      backend.name === 'tensorflow' ? /one TensorFlow graph/ : /backend is wasm/,
    );
  });

  it('saves the fitted preprocessing with the model', async () => {
    const { record } = await run({
      preprocessing: { scale: 'standardize' },
      training: { epochs: 2, seed: 1 },
    });
    const keys = jobKeys(TENANT, record.id);
    const saved = await readJson(fixture.ports.store, keys.preprocessing);
    assert.equal(saved.columns[0].scale, 'standardize');
    const modelJson = await readJson(fixture.ports.store, keys.modelJson);
    assert.deepEqual(modelJson.userDefinedMetadata.descent.preprocessing, saved);
    assert.deepEqual(modelJson.userDefinedMetadata.descent.classes, ['no', 'yes']);
  });

  it('k-fold: trains every fold, reports each and mean ± std, then delivers a model retrained on all rows', async () => {
    const { record, report } = await run({
      training: {
        optimizer: { type: 'adam', learningRate: 0.05 },
        epochs: 10,
        validation: { type: 'kfold', k: 4 },
        seed: 2,
      },
    });
    assert.equal(record.status, 'SUCCEEDED', JSON.stringify(record.error));
    assert.equal(report.kfold.k, 4);
    assert.equal(report.kfold.folds.length, 4);
    assert.equal(
      report.kfold.folds.reduce((s: number, f: { validationRows: number }) => s + f.validationRows, 0),
      200,
    );
    const accuracies = report.kfold.folds.map((f: { accuracy: number }) => f.accuracy);
    const mean = accuracies.reduce((a: number, b: number) => a + b, 0) / 4;
    assert.ok(Math.abs(report.kfold.summary.accuracy.mean - mean) < 1e-12);
    assert.ok(report.kfold.summary.accuracy.std >= 0);
    assert.equal(report.validation.accuracy, report.kfold.summary.accuracy.mean);
    assert.match(report.kfold.deliveredModel, /Retrained on all 200 rows/);
    assert.equal(record.resources?.rows?.training, 200);
  });

  it('warns in words when the learning rate is too small to move the loss', async () => {
    const { record, report } = await run({
      training: { optimizer: { type: 'gd', learningRate: 0.00001 }, epochs: 25, seed: 1 },
    });
    assert.equal(record.status, 'SUCCEEDED');
    assert.ok(record.warnings?.some((w) => /likely too small/.test(w)));
    assert.ok(report.warnings.some((w: string) => /likely too small/.test(w)));
    const events = await jobs.events(TENANT, record.id);
    assert.ok(events.some((e) => e.type === 'warning' && /likely too small/.test(e.message)));
  });

  it('fails at once, naming the problem, when an uploaded base model.json is not a layers model', async () => {
    const id = services.newId();
    const keys = datasetKeys(TENANT, id);
    await fixture.ports.store.put(
      keys.meta,
      JSON.stringify({ id, name: 'broken', format: 'tfjs-model', createdAt: new Date().toISOString() }),
    );
    await fixture.ports.store.put(
      keys.modelJson,
      JSON.stringify({ format: 'layers-model', weightsManifest: 'no' }),
    );
    await fixture.ports.store.put(keys.weights, new Uint8Array(8));
    const broken = await run({ model: { baseModel: { datasetId: id } }, training: { epochs: 1 } });
    assert.equal(broken.record.status, 'FAILED');
    assert.equal(broken.record.error?.code, 'INVALID_SPEC');
    assert.match(broken.record.error?.message ?? '', /not a layers model's \(modelTopology: /);
    assert.equal(broken.record.attempt, 1);
  });

  it('fails at once, not as a temporary error, when model.freeze leaves nothing to train', async () => {
    const base = await run({ training: { epochs: 2, seed: 5 } }); // only the output layer
    const frozen = await run({
      model: { baseModel: { jobId: base.record.id }, freeze: 1 },
      training: { epochs: 2 },
    });
    assert.equal(frozen.record.status, 'FAILED');
    assert.equal(frozen.record.error?.code, 'INVALID_SPEC');
    assert.match(frozen.record.error?.message ?? '', /base model keeps 0 layers/);
    assert.equal(frozen.record.attempt, 1);
  });

  it('fine-tunes an earlier job: new head, frozen layers keep the base weights, lineage recorded', async () => {
    const base = await run({
      model: { layers: [{ type: 'dense', units: 6 }] },
      training: { epochs: 5, seed: 5 },
    });
    const tuned = await run({
      model: { baseModel: { jobId: base.record.id }, freeze: 1 },
      training: { epochs: 5, seed: 6 },
    });
    assert.equal(tuned.record.status, 'SUCCEEDED', JSON.stringify(tuned.record.error));
    assert.deepEqual(tuned.record.lineage?.baseModel, { jobId: base.record.id });
    /** One named weight out of model.json + weights.bin. */
    const weightOf = async (jobId: string, name: string) => {
      const manifest = await readJson(fixture.ports.store, jobKeys(TENANT, jobId).modelJson);
      const bin = (await fixture.ports.store.get(jobKeys(TENANT, jobId).weights))?.body as Uint8Array;
      let offset = 0;
      for (const w of manifest.weightsManifest[0].weights) {
        const size = w.shape.reduce((a: number, b: number) => a * b, 1) * 4;
        if (w.name === name)
          return Array.from(new Float32Array(Uint8Array.from(bin.subarray(offset, offset + size)).buffer));
        offset += size;
      }
      throw new Error(`no weight ${name}`);
    };
    assert.deepEqual(
      await weightOf(tuned.record.id, 'dense_1/kernel'),
      await weightOf(base.record.id, 'dense_1/kernel'),
      'the frozen first layer did not move',
    );
    const topology = (await readJson(fixture.ports.store, jobKeys(TENANT, tuned.record.id).modelJson))
      .modelTopology;
    assert.match(JSON.stringify(topology), /output_finetuned/);
  });

  it('refuses at submit a base model that is not a SUCCEEDED job of this tenant, or combined with new layers', async () => {
    await assert.rejects(
      submitJob(services, TENANT, {
        task: 'classification',
        dataset: { id: datasetId, label: 'label' },
        model: { baseModel: { jobId: '01M8JH2TQYPMBNJ50HMGRP3N6M' } },
      }),
      (e: { code?: string }) => e.code === 'UNKNOWN_BASE_MODEL',
    );
    await assert.rejects(
      submitJob(services, 'other', { task: 'classification', dataset: { id: datasetId, label: 'label' } }),
      (e: { code?: string }) => e.code === 'UNKNOWN_DATASET',
    );
    await assert.rejects(
      submitJob(services, TENANT, {
        task: 'classification',
        dataset: { id: datasetId, label: 'label' },
        model: { freeze: 1 },
      }),
      (e: { code?: string }) => e.code === 'VALIDATION_ERROR',
    );
  });
}
