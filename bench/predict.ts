/**
 * `npm run bench:predict`: the churn example end to end on the real local stack, measured as a
 * client sees it, and compared with scikit-learn when `bench/predict_reference.py` has run.
 *
 * - trains `examples/churn/job.json` on `customers.csv` (raw: an id column, a date, text, blanks);
 * - predicts the 200 raw rows of `new-customers.csv` through `POST /jobs/{id}/predict`: accuracy
 *   and ROC AUC against their labels;
 * - latency of the predict route (p50 / p95, client side, one call at a time) for 1, 100 and 1,000
 *   rows, with and without `explain`.
 *
 * Not run by CI. Options: --calls 30
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { startEphemeralStack } from '../local/ephemeral-stack.ts';

const { values: opts } = parseArgs({ options: { calls: { type: 'string', default: '30' } } });
const calls = Number(opts.calls);
const churn = new URL('../examples/churn/', import.meta.url);
const rowsOf = (csv: string) => {
  const [head, ...lines] = csv.trim().split('\n');
  const columns = (head as string).split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [columns[i], v])));
};

/** ROC AUC by the rank statistic (ties counted half). */
function rocAuc(scores: number[], positive: boolean[]): number {
  let pos = 0;
  let neg = 0;
  let pairs = 0;
  scores.forEach((s, i) => {
    scores.forEach((t, j) => {
      if (positive[i] && !positive[j]) pairs += s > t ? 1 : s === t ? 0.5 : 0;
    });
    if (positive[i]) pos++;
    else neg++;
  });
  return pairs / (pos * neg);
}

const quantile = (xs: number[], q: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
};

const stack = await startEphemeralStack();
try {
  const spec = JSON.parse(await readFile(new URL('job.json', churn), 'utf8'));
  const datasetId = await stack.upload(await readFile(new URL('customers.csv', churn), 'utf8'));
  const submitted = await stack.call('POST', '/jobs', {
    body: { ...spec, dataset: { ...spec.dataset, id: datasetId } },
  });
  const job = await stack.waitFor(submitted.body.id, undefined, 600_000);
  if (job.status !== 'SUCCEEDED') throw new Error(`training ${job.status}: ${JSON.stringify(job.error)}`);
  const rows = rowsOf(await readFile(new URL('new-customers.csv', churn), 'utf8'));
  const answer = await stack.call('POST', `/jobs/${job.id}/predict`, { body: { rows } });
  const predictions = answer.body.predictions as { label: string; probabilities: Record<string, number> }[];
  const accuracy = predictions.filter((p, i) => p.label === rows[i]?.churned).length / rows.length;
  const auc = rocAuc(
    predictions.map((p) => p.probabilities.yes as number),
    rows.map((r) => r.churned === 'yes'),
  );
  console.log(`churn, 200 held-out raw rows: accuracy ${accuracy.toFixed(4)}, ROC AUC ${auc.toFixed(4)}`);
  console.log(
    `  (job ${job.id}: test accuracy ${job.summary?.test?.toFixed(4)}, validation ${job.summary?.validation?.toFixed(4)})`,
  );
  try {
    const reference = JSON.parse(await readFile(new URL('predict-reference.json', import.meta.url), 'utf8'));
    for (const [name, r] of Object.entries(reference as Record<string, { accuracy: number; rocAuc: number }>))
      console.log(
        `  scikit-learn ${name}: accuracy ${r.accuracy.toFixed(4)}, ROC AUC ${r.rocAuc.toFixed(4)}`,
      );
  } catch {
    console.log(
      '  (no bench/predict-reference.json: run `python3 bench/predict_reference.py` for scikit-learn)',
    );
  }

  const many = Array.from({ length: 1000 }, (_, i) => rows[i % rows.length]);
  for (const explain of [false, true]) {
    for (const n of [1, 100, 1000]) {
      const body = { rows: many.slice(0, n), explain };
      const times: number[] = [];
      for (let c = 0; c < (explain && n === 1000 ? Math.min(calls, 5) : calls); c++) {
        const t = performance.now();
        const r = await stack.call('POST', `/jobs/${job.id}/predict`, { body });
        if (r.status !== 200) throw new Error(JSON.stringify(r.body));
        times.push(performance.now() - t);
      }
      console.log(
        `predict ${String(n).padStart(4)} rows${explain ? ' explained' : '          '}: p50 ${quantile(times, 0.5).toFixed(1)} ms, p95 ${quantile(times, 0.95).toFixed(1)} ms (${times.length} calls)`,
      );
    }
  }
} finally {
  await stack.destroy();
}
