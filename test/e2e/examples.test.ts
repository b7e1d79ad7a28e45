/**
 * Every example in examples/ trains to the result the README promises, with the real trainer on
 * each training backend of this machine (the fine-tuning pair runs its base job first): eager on
 * wasm, compiled on tensorflow (the engine a worker picks there).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { jobKeys } from '../../core/platform/keys.ts';
import type { SelectedBackend } from '../../trainer/backend.ts';
import { trainingBackends } from '../helpers/backends.ts';
import { readJson } from '../helpers/local-ports.ts';
import { TENANT, type TrainerFixture, trainerFixture } from '../helpers/trainer.ts';

const read = (path: string) => readFile(new URL(`../../examples/${path}`, import.meta.url), 'utf8');

// Every case on each training backend of this machine (wasm; tensorflow after `npm run setup:native`).
for (const backend of await trainingBackends()) {
  describe(`examples train to their documented results on ${backend.name}`, { timeout: 600_000 }, () =>
    exampleTests(backend),
  );
}

function exampleTests(backend: SelectedBackend): void {
  let fixture: TrainerFixture;

  const train = async (specPath: string, dataPath: string, fill: Record<string, string> = {}) => {
    const id = await fixture.dataset(await read(dataPath), dataPath.endsWith('.csv') ? 'csv' : 'jsonl');
    let text = (await read(specPath)).replace('<datasetId>', id);
    for (const [k, v] of Object.entries(fill)) text = text.replace(k, v);
    const spec = JSON.parse(text);
    const record = await fixture.submit(spec);
    assert.equal(await fixture.run(record.id), 'done');
    const done = await fixture.record(record.id);
    assert.equal(done.status, 'SUCCEEDED', JSON.stringify(done.error));
    // On TensorFlow native every example, fine-tuning included, trains on the compiled engine.
    assert.equal(
      done.resources?.engine,
      backend.name === 'tensorflow' ? 'compiled' : 'eager',
      done.resources?.engineReason,
    );
    return { id: record.id, report: await readJson(fixture.ports.store, jobKeys(TENANT, record.id).report) };
  };

  before(async () => {
    fixture = await trainerFixture({ backend, deps: { progressIntervalMs: 1000 } });
  });
  after(async () => {
    await fixture.cleanup();
  });

  it('iris: validation accuracy ≥ 0.9', async () => {
    const { report } = await train('iris/job.json', 'iris/iris.csv');
    assert.ok(report.validation.accuracy >= 0.9, String(report.validation.accuracy));
  });
  it('house prices (regression, categorical + missing values): test R² ≥ 0.95', async () => {
    const { report } = await train('house-prices/job.json', 'house-prices/houses.csv');
    assert.ok(report.test.r2 >= 0.95, `test r2 ${report.test.r2}, validation ${report.validation.r2}`);
  });
  it('churn (a raw table: id column left out, a date, blanks): test accuracy ≥ 0.85, the id column flagged', async () => {
    const { id, report } = await train('churn/job.json', 'churn/customers.csv');
    assert.ok(report.test.accuracy >= 0.85, `test accuracy ${report.test.accuracy}`);
    assert.deepEqual(
      report.data.excluded.map((e: { name: string }) => e.name),
      ['customer_id'],
    );
    assert.ok((await fixture.record(id)).warnings?.some((w) => w.includes('"customer_id"')));
  });
  it('sequence LSTM: validation accuracy ≥ 0.9', async () => {
    const { report } = await train('sequence-lstm/job.json', 'sequence-lstm/trends.jsonl');
    assert.ok(report.validation.accuracy >= 0.9, String(report.validation.accuracy));
  });
  it('image CNN: validation accuracy ≥ 0.95, then fine-tuned to diagonals ≥ 0.9 with frozen convolutions', async () => {
    const base = await train('shapes-cnn/job.json', 'shapes-cnn/bars.jsonl');
    assert.ok(base.report.validation.accuracy >= 0.95, String(base.report.validation.accuracy));
    const tuned = await train('fine-tune/job.json', 'fine-tune/diagonals.jsonl', { '<baseJobId>': base.id });
    assert.ok(tuned.report.validation.accuracy >= 0.9, String(tuned.report.validation.accuracy));
  });
}
