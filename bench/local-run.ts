/**
 * `npm run bench:local [-- RUNS]`: one local stack (1 worker, temporary data folder), the Iris example
 * submitted RUNS times (default 10) one after another; prints submit→RUNNING latency and job wall
 * time (p50 / p90 / max). Timestamps come from the job records; API latency is measured by the client.
 */
import { readFile } from 'node:fs/promises';
import { startEphemeralStack } from '../local/ephemeral-stack.ts';

const runs = Number(process.argv[2] ?? 10);
const csv = await readFile(new URL('../examples/iris/iris.csv', import.meta.url), 'utf8');
const spec = JSON.parse(await readFile(new URL('../examples/iris/job.json', import.meta.url), 'utf8'));

const stack = await startEphemeralStack({ workers: 1 });
try {
  const datasetId = await stack.upload(csv);
  const rows: {
    submitMs: number;
    toRunningMs: number;
    trainingMs: number;
    wallMs: number;
    epochs: number;
    accuracy: number;
  }[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const submitted = await stack.call('POST', '/jobs', {
      body: { ...spec, dataset: { ...spec.dataset, id: datasetId } },
    });
    const submitMs = performance.now() - started;
    if (submitted.status !== 201) throw new Error(JSON.stringify(submitted.body));
    const job = await stack.waitFor(submitted.body.id, undefined, 120_000);
    if (job.status !== 'SUCCEEDED') throw new Error(`${job.status}: ${JSON.stringify(job.error)}`);
    const result = await stack.call('GET', `/jobs/${job.id}/result`);
    const t = (iso: string) => Date.parse(iso);
    rows.push({
      submitMs,
      toRunningMs: t(job.startedAt) - t(job.createdAt),
      trainingMs: t(job.finishedAt) - t(job.startedAt),
      wallMs: t(job.finishedAt) - t(job.createdAt),
      epochs: job.progress.epoch,
      accuracy: result.body.metrics.accuracy,
    });
  }
  const pct = (values: number[], p: number) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
  };
  const line = (name: string, values: number[]) =>
    `${name.padEnd(28)} p50 ${pct(values, 0.5).toFixed(0).padStart(6)} ms   p90 ${pct(values, 0.9).toFixed(0).padStart(6)} ms   max ${Math.max(
      ...values,
    )
      .toFixed(0)
      .padStart(6)} ms`;
  const first = rows[0];
  console.log(
    `Iris example (${csv.trim().split('\n').length - 1} rows, ${spec.model.layers.length} hidden layer), ${runs} runs, 1 worker, backend ${(await stack.call('GET', `/jobs?limit=1`)).body.jobs[0].backend}`,
  );
  console.log(
    line(
      'POST /jobs (client)',
      rows.map((r) => r.submitMs),
    ),
  );
  console.log(
    line(
      'submit → RUNNING',
      rows.map((r) => r.toRunningMs),
    ),
  );
  console.log(
    line(
      'RUNNING → SUCCEEDED',
      rows.map((r) => r.trainingMs),
    ),
  );
  console.log(
    line(
      'job wall time (submit→done)',
      rows.map((r) => r.wallMs),
    ),
  );
  console.log(
    `epochs per job ${first?.epochs} (lossThreshold stop), validation accuracy ${rows.map((r) => r.accuracy.toFixed(3)).join(' ')}`,
  );
} finally {
  await stack.destroy();
}
