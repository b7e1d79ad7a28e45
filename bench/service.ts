/**
 * `npm run bench:service [-- OPTIONS]`: the service on loopback (the real local stack: gateway,
 * SQLite queue, filesystem store, worker processes; a temporary data folder), measured from a client:
 *
 * - API latency per route (p50 / p99 over `--calls` calls each, client-side, one at a time);
 * - submit → RUNNING: one small job at a time on an idle worker (`--pickups` jobs; from the job
 *   record's createdAt and startedAt), p50 / p99;
 * - jobs/hour: a stream of `--jobs` small jobs submitted at once, with 1 and with 2 workers (the
 *   time from the first submit until the last job ends), and the mean job time.
 *
 * The small job is the Iris example (150 rows, one hidden layer of 16, at most 100 epochs).
 * Bounded: `--jobs` jobs per stream and `--deadline` seconds per stream (then it reports what
 * finished). Not run by CI.
 *
 * Options: --workers 1,2  --jobs 16  --pickups 10  --calls 40  --deadline 240
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { type EphemeralStack, startEphemeralStack } from '../local/ephemeral-stack.ts';

const { values: opts } = parseArgs({
  options: {
    workers: { type: 'string', default: '1,2' },
    jobs: { type: 'string', default: '16' },
    pickups: { type: 'string', default: '10' },
    calls: { type: 'string', default: '40' },
    deadline: { type: 'string', default: '240' },
  },
});

const csv = await readFile(new URL('../examples/iris/iris.csv', import.meta.url), 'utf8');
const example = JSON.parse(await readFile(new URL('../examples/iris/job.json', import.meta.url), 'utf8'));

const pct = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] as number;
};
const ms = (v: number) => `${v.toFixed(v < 10 ? 1 : 0)} ms`;
const summary = (values: number[]) =>
  values.length
    ? `p50 ${ms(pct(values, 0.5)).padStart(8)}   p99 ${ms(pct(values, 0.99)).padStart(8)}`
    : 'n/a';

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const value = await f();
  return [value, performance.now() - started];
}

function specFor(datasetId: string, i: number) {
  return { ...example, name: `bench-${i}`, dataset: { ...example.dataset, id: datasetId } };
}

async function submit(stack: EphemeralStack, datasetId: string, i: number): Promise<string> {
  const r = await stack.call('POST', '/jobs', { body: specFor(datasetId, i) });
  if (r.status !== 201) throw new Error(`POST /jobs: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id;
}

const waitFor = (stack: EphemeralStack, id: string, deadline: number) =>
  stack.waitFor(id, undefined, Math.max(1000, deadline - Date.now()));

/** Latency of each route the API serves, against a finished job. */
async function apiLatency(stack: EphemeralStack, datasetId: string, calls: number): Promise<void> {
  const jobId = await submit(stack, datasetId, 0);
  const done = await waitFor(stack, jobId, Date.now() + 120_000);
  if (done.status !== 'SUCCEEDED') throw new Error(`warm-up job ${done.status}`);
  const routes: [string, () => Promise<{ status: number }>][] = [
    ['GET /jobs/{id}', () => stack.call('GET', `/jobs/${jobId}`)],
    ['GET /jobs?limit=20', () => stack.call('GET', '/jobs?limit=20')],
    ['GET /jobs/{id}/metrics', () => stack.call('GET', `/jobs/${jobId}/metrics`)],
    ['GET /jobs/{id}/events', () => stack.call('GET', `/jobs/${jobId}/events`)],
    ['GET /jobs/{id}/result', () => stack.call('GET', `/jobs/${jobId}/result`)],
    ['GET /openapi.json', () => stack.call('GET', '/openapi.json')],
    ['POST /datasets', () => stack.call('POST', '/datasets', { body: { name: 'bench', format: 'csv' } })],
    ['GET /jobs/{unknown}', () => stack.call('GET', '/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV')],
  ];
  console.log(`API latency, ${calls} calls per route, one at a time (client-side):`);
  const line = (name: string, times: number[]) => console.log(`  ${name.padEnd(28)} ${summary(times)}`);
  for (const [name, call] of routes) {
    const times: number[] = [];
    for (let i = 0; i < calls; i++) {
      const [r, t] = await timed(call);
      if (r.status >= 500) throw new Error(`${name}: ${r.status}`);
      times.push(t);
    }
    line(name, times);
  }
  // POST /jobs and its cancel, while the worker picks each job up (so some cancels meet a RUNNING job).
  const posts: number[] = [];
  const cancels: number[] = [];
  for (let i = 0; i < calls; i++) {
    const [r, t] = await timed(() => stack.call('POST', '/jobs', { body: specFor(datasetId, 1) }));
    if (r.status !== 201) throw new Error(`POST /jobs: ${r.status}`);
    posts.push(t);
    const [c, tc] = await timed(() => stack.call('POST', `/jobs/${r.body.id}/cancel`));
    if (c.status >= 500) throw new Error(`cancel: ${c.status}`);
    cancels.push(tc);
  }
  line('POST /jobs', posts);
  line('POST /jobs/{id}/cancel', cancels);
  // The cancelled jobs above must not be in the way of what follows.
  for (;;) {
    const active = await stack.call('GET', '/jobs?status=CANCELLING&limit=1');
    if (!active.body.jobs?.length) break;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** submit → RUNNING on an idle worker, one job at a time. */
async function pickups(stack: EphemeralStack, datasetId: string, count: number): Promise<void> {
  const waits: number[] = [];
  const runs: number[] = [];
  for (let i = 0; i < count; i++) {
    const id = await submit(stack, datasetId, 100 + i);
    const job = await waitFor(stack, id, Date.now() + 120_000);
    if (job.status !== 'SUCCEEDED') throw new Error(`job ${id} ${job.status}`);
    waits.push(Date.parse(job.startedAt) - Date.parse(job.createdAt));
    runs.push(Date.parse(job.finishedAt) - Date.parse(job.startedAt));
  }
  console.log(`  submit → RUNNING (idle worker, ${count} jobs)   ${summary(waits)}`);
  console.log(`  RUNNING → SUCCEEDED                        ${summary(runs)}`);
}

/** A stream of `count` jobs submitted at once; jobs/hour until the last one ends. */
async function stream(stack: EphemeralStack, datasetId: string, count: number, deadline: number) {
  const started = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await submit(stack, datasetId, 1000 + i));
  const jobs = await Promise.all(
    ids.map((id) => waitFor(stack, id, deadline).catch((error: Error) => ({ id, error }))),
  );
  const elapsed = (performance.now() - started) / 1000;
  const ok = jobs.filter((j) => 'status' in j && j.status === 'SUCCEEDED') as { [k: string]: string }[];
  const run = ok.map((j) => Date.parse(j.finishedAt as string) - Date.parse(j.startedAt as string));
  const wait = ok.map((j) => Date.parse(j.startedAt as string) - Date.parse(j.createdAt as string));
  return { done: ok.length, elapsed, perHour: (ok.length / elapsed) * 3600, run, wait };
}

const workerCounts = (opts.workers as string).split(',').map(Number);
const results: { workers: number; r: Awaited<ReturnType<typeof stream>> }[] = [];
for (const [index, workers] of workerCounts.entries()) {
  const stack = await startEphemeralStack({ workers });
  try {
    const datasetId = await stack.upload(csv);
    console.log(
      `\n${workers} worker${workers === 1 ? '' : 's'} (local stack on loopback, temporary data folder)`,
    );
    if (index === 0) await apiLatency(stack, datasetId, Number(opts.calls));
    else await waitFor(stack, await submit(stack, datasetId, 0), Date.now() + 120_000); // workers up
    await pickups(stack, datasetId, Number(opts.pickups));
    const r = await stream(stack, datasetId, Number(opts.jobs), Date.now() + Number(opts.deadline) * 1000);
    results.push({ workers, r });
    console.log(
      `  stream of ${opts.jobs} jobs submitted at once: ${r.done} done in ${r.elapsed.toFixed(1)} s → ${Math.round(r.perHour).toLocaleString('en')} jobs/hour; job run ${summary(r.run)}; queue wait ${summary(r.wait)}`,
    );
  } finally {
    await stack.destroy();
  }
}
const one = results.find((x) => x.workers === 1);
for (const other of results.filter((x) => x.workers !== 1 && one)) {
  console.log(
    `\njobs/hour: 1 worker ${Math.round(one?.r.perHour ?? 0)}, ${other.workers} workers ${Math.round(other.r.perHour)} (×${(other.r.perHour / (one?.r.perHour ?? 1)).toFixed(2)})`,
  );
}
