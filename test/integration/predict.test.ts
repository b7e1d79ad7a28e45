/**
 * From a raw table to predictions, in process on the wasm backend: a model trained on a table with an
 * id column, a date, text categories and blank cells; raw held-out rows predicted through the
 * service the predict route runs (accuracy checked against their labels), explained (attributions
 * add up to output − baseline output), malformed rows refused naming row and column; and a batch
 * of predictions run by the worker pipeline as a job of kind `predictions`.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { loadModel } from '../../client/model.ts';
import { cellAt, parseTable } from '../../core/datasets/tabular.ts';
import { cancelJob, getResult } from '../../core/jobs/job-service.ts';
import { jobKeys } from '../../core/platform/keys.ts';
import { submitPredictions } from '../../core/predictions/batch-service.ts';
import { predictOnline } from '../../core/predictions/predict-service.ts';
import { TfjsModelRunner } from '../../inference/runner.ts';
import { runJob } from '../../trainer/run-job.ts';
import { storeWith } from '../helpers/local-ports.ts';
import { TENANT, type TrainerFixture, trainerFixture } from '../helpers/trainer.ts';

const examples = new URL('../../examples/churn/', import.meta.url);
const trainCsv = await readFile(new URL('customers.csv', examples), 'utf8');
const heldOutCsv = await readFile(new URL('new-customers.csv', examples), 'utf8');
const spec = JSON.parse(await readFile(new URL('job.json', examples), 'utf8'));

/** The held-out file's rows as a client would send them: raw cells, strings as in the file. */
function rawRows(csv: string): Record<string, string>[] {
  const [head, ...lines] = csv.trim().split('\n');
  const columns = (head as string).split(',');
  return lines.map((line) => Object.fromEntries(line.split(',').map((v, i) => [columns[i], v])));
}

describe('predictions from a raw table', { timeout: 240_000 }, () => {
  let f: TrainerFixture;
  let jobId: string;
  let runner: TfjsModelRunner;

  before(async () => {
    f = await trainerFixture();
    const datasetId = await f.dataset(trainCsv);
    const job = await f.submit({ ...spec, dataset: { ...spec.dataset, id: datasetId } });
    jobId = job.id;
    assert.equal(await f.run(jobId), 'done');
    runner = new TfjsModelRunner(f.deps.tf, f.ports.store);
  });
  after(() => f?.cleanup());

  it('trains on the raw table, leaving out the id column with a warning that names it, dates as numbers', async () => {
    const record = await f.record(jobId);
    assert.equal(record.status, 'SUCCEEDED', JSON.stringify(record.error));
    assert.ok(record.warnings?.some((w) => w.includes('"customer_id"') && w.includes('identifier')));
    const result = await getResult(f.services, TENANT, jobId);
    const report = result.report as any;
    assert.deepEqual(report.features, [
      'signup_date',
      'plan',
      'region',
      'monthly_spend',
      'tenure_months',
      'support_calls',
    ]);
    assert.equal(report.data.excluded[0].name, 'customer_id');
    const date = report.preprocessing.columns.find((c: any) => c.name === 'signup_date');
    assert.equal(date.kind, 'date');
    assert.deepEqual(date.parts, ['daysSinceEpoch', 'year', 'month', 'dayOfWeek']);
    assert.ok(record.summary?.test !== undefined && record.summary.metric === 'accuracy');
  });

  it('predicts raw held-out rows (strings, blanks, the id and label columns included) as well as it tested', async () => {
    const rows = rawRows(heldOutCsv);
    const answer = await predictOnline(f.services, runner, TENANT, jobId, { rows });
    assert.equal(answer.predictions.length, rows.length);
    let right = 0;
    answer.predictions.forEach((p, i) => {
      assert.ok('label' in p);
      const sum = Object.values(p.probabilities).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-4);
      if (p.label === rows[i]?.churned) right++;
    });
    const accuracy = right / rows.length;
    assert.ok(accuracy > 0.8, `held-out accuracy ${accuracy}`);
  });

  it('gives per-column attributions that add up to the output minus the baseline output', async () => {
    const rows = rawRows(heldOutCsv).slice(0, 20);
    const answer = await predictOnline(f.services, runner, TENANT, jobId, { rows, explain: true });
    assert.equal(answer.explanation?.method, 'integratedGradients');
    for (const p of answer.predictions) {
      assert.deepEqual(Object.keys(p.attributions ?? {}).sort(), [
        'monthly_spend',
        'plan',
        'region',
        'signup_date',
        'support_calls',
        'tenure_months',
      ]);
      const total = Object.values(p.attributions ?? {}).reduce((a, b) => a + b, 0);
      const gap = (p.explanation?.value ?? 0) - (p.explanation?.baseline ?? 0);
      assert.ok(Math.abs(total - gap) < 0.02 + 0.02 * Math.abs(gap), `sum ${total} vs ${gap}`);
    }
  });

  it("runs the downloaded model in Node with the client's loader, predicting as the service does", async () => {
    const keys = jobKeys(TENANT, jobId);
    const [modelJson, weights] = await Promise.all([
      f.ports.store.get(keys.modelJson),
      f.ports.store.get(keys.weights),
    ]);
    const model = await loadModel(
      { 'model.json': modelJson?.body as Uint8Array, 'weights.bin': weights?.body as Uint8Array },
      { tf: f.deps.tf as never },
    );
    assert.equal(model.label, 'churned');
    const rows = rawRows(heldOutCsv).slice(0, 50);
    const local = await model.predict(rows);
    const served = (await predictOnline(f.services, runner, TENANT, jobId, { rows })).predictions;
    local.forEach((p, i) => {
      const s = served[i] as { label: string; probabilities: Record<string, number> };
      assert.equal((p as { label: string }).label, s.label);
      const probabilities = (p as { probabilities: Record<string, number> }).probabilities;
      assert.ok(Math.abs((probabilities.yes as number) - (s.probabilities.yes as number)) < 1e-5);
    });
    model.dispose();
  });

  it('refuses a malformed row with a 400 naming the row and the column', async () => {
    const rows = rawRows(heldOutCsv).slice(0, 3);
    (rows[1] as Record<string, string>).tenure_months = 'about two years';
    await assert.rejects(predictOnline(f.services, runner, TENANT, jobId, { rows }), (error: any) => {
      assert.equal(error.status, 400);
      assert.equal(error.code, 'INVALID_ROW');
      assert.deepEqual(error.details, { row: 2, index: 1, column: 'tenure_months' });
      assert.match(error.message, /row 2.*tenure_months.*not a number/);
      return true;
    });
    await assert.rejects(
      predictOnline(f.services, runner, TENANT, jobId, { rows: [{ ...rows[0], signup_date: '2023-13-45' }] }),
      /column "signup_date": "2023-13-45" is not an ISO-8601 date/,
    );
    await assert.rejects(predictOnline(f.services, runner, TENANT, jobId, { rows: [] }), { status: 400 });
  });

  it('runs batch predictions as a job of kind predictions, writing the rows with their predictions', async () => {
    const datasetId = await f.dataset(heldOutCsv);
    const request = { datasetId, explain: true };
    const { record: job, replayed } = await submitPredictions(f.services, TENANT, jobId, request, 'batch-1');
    assert.equal(job.kind, 'predictions');
    assert.equal(job.status, 'QUEUED');
    assert.equal(replayed, false);
    // A retry with the same Idempotency-Key is the same job; the key with another request is a 409.
    const again = await submitPredictions(f.services, TENANT, jobId, { explain: true, datasetId }, 'batch-1');
    assert.deepEqual([again.record.id, again.replayed], [job.id, true]);
    await assert.rejects(submitPredictions(f.services, TENANT, jobId, { datasetId }, 'batch-1'), {
      status: 409,
      code: 'IDEMPOTENCY_KEY_REUSED',
    });
    assert.equal(await f.run(job.id), 'done');
    const done = await f.record(job.id);
    assert.equal(done.status, 'SUCCEEDED', JSON.stringify(done.error));
    assert.equal(done.predictions?.rows, 200);
    const output = await f.ports.store.get(jobKeys(TENANT, job.id).predictions('csv'));
    const table = await parseTable(output?.body as Uint8Array, 'csv');
    assert.equal(table.rowCount, 200);
    for (const column of [
      'customer_id',
      'predicted_churned',
      'probability_no',
      'probability_yes',
      'attribution_plan',
    ])
      assert.ok(table.columns.includes(column), column);
    const online = await predictOnline(f.services, runner, TENANT, jobId, {
      rows: rawRows(heldOutCsv).slice(0, 5),
    });
    const predicted = table.columns.indexOf('predicted_churned');
    online.predictions.forEach((p, i) => {
      assert.equal(cellAt(table, predicted, i), (p as { label: string }).label);
    });
    const result = await getResult(f.services, TENANT, job.id);
    assert.ok(Object.keys(result.artifacts).includes('predictions.csv'));
  });
  /** heldOutCsv's rows repeated to `rows` rows (three chunks of the trainer's 1,000 for 2,500). */
  const repeated = (rows: number) => {
    const [header, ...body] = heldOutCsv.trim().split('\n');
    return `${[header, ...Array.from({ length: rows }, (_, i) => body[i % body.length])].join('\n')}\n`;
  };

  /** Runs the job with the store's putStream watched: the size of each chunk the worker hands it. */
  async function runWatched(jobId: string, onChunk: (index: number) => Promise<void> = async () => {}) {
    const chunks: number[] = [];
    const store = storeWith(f.ports.store, {
      putStream: (key, body, options) =>
        f.ports.store.putStream(
          key,
          (async function* () {
            for await (const chunk of body) {
              chunks.push(chunk.byteLength);
              yield chunk;
              await onChunk(chunks.length);
            }
          })(),
          options,
        ),
    });
    const outcome = await runJob(
      { ...f.deps, store },
      { tenant: TENANT, jobId },
      new AbortController().signal,
    );
    return { outcome, chunks };
  }

  it('streams the output into the store a chunk of rows at a time, never holding it whole', async () => {
    const datasetId = await f.dataset(repeated(2500));
    const { record: job } = await submitPredictions(f.services, TENANT, jobId, {
      datasetId,
      format: 'jsonl',
    });
    const { outcome, chunks } = await runWatched(job.id);
    assert.equal(outcome, 'done');
    const done = await f.record(job.id);
    assert.equal(done.status, 'SUCCEEDED', JSON.stringify(done.error));
    assert.equal(chunks.length, 3);
    const total = chunks.reduce((a, b) => a + b, 0);
    assert.equal(done.predictions?.output?.bytes, total);
    assert.ok(Math.max(...chunks) < total / 2, `chunks ${chunks}`);
    const output = await f.ports.store.get(jobKeys(TENANT, job.id).predictions('jsonl'));
    const lines = new TextDecoder().decode(output?.body).trim().split('\n');
    assert.equal(lines.length, 2500);
    assert.ok('predicted_churned' in JSON.parse(lines[2499] as string));
  });

  it('a cancel between chunks ends the job CANCELLED and keeps no partial output', async () => {
    const datasetId = await f.dataset(repeated(2500));
    const { record: job } = await submitPredictions(f.services, TENANT, jobId, { datasetId });
    const { outcome, chunks } = await runWatched(job.id, async (index) => {
      if (index === 1) await cancelJob(f.services, TENANT, job.id);
    });
    assert.equal(outcome, 'done');
    const done = await f.record(job.id);
    assert.equal(done.status, 'CANCELLED');
    assert.match((await f.jobs.events(TENANT, job.id)).at(-1)?.message ?? '', /after 1000 of 2500 rows/);
    assert.equal(chunks.length, 1);
    assert.equal(await f.ports.store.head(jobKeys(TENANT, job.id).predictions('csv')), undefined);
  });
  it('an output past the store limit fails once as RESOURCE_LIMIT, saying what to do, and keeps nothing', async () => {
    const datasetId = await f.dataset(repeated(1500));
    const { record: job } = await submitPredictions(f.services, TENANT, jobId, { datasetId, explain: true });
    // The real limit is 8 GiB; a store that takes 50 kB stands in for it.
    const store = storeWith(f.ports.store, {
      putStream: (key, body, options) => f.ports.store.putStream(key, body, { ...options, maxBytes: 50_000 }),
    });
    const outcome = await runJob(
      { ...f.deps, store },
      { tenant: TENANT, jobId: job.id },
      new AbortController().signal,
    );
    assert.equal(outcome, 'done');
    const done = await f.record(job.id);
    assert.equal(done.status, 'FAILED');
    assert.equal(done.error?.code, 'RESOURCE_LIMIT');
    assert.match(done.error?.message ?? '', /split the dataset and predict each part, or leave out explain/);
    assert.equal(done.attempt, 1);
    assert.equal(await f.ports.store.head(jobKeys(TENANT, job.id).predictions('csv')), undefined);
  });
});
