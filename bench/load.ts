/**
 * `npm run bench:load [-- JOBS [IN_FLIGHT [WORKERS]]]` (defaults 1000, 50, 2): submits JOBS tiny
 * training jobs with IN_FLIGHT requests at a time to a local stack on loopback, waits for all of
 * them (bounded: it stops by itself after 20 minutes), and prints accepted, completed, duplicates,
 * lost and latency percentiles. Every submit carries an Idempotency-Key and is retried on network
 * errors, as a careful client would.
 */
import { readFile } from 'node:fs/promises';
import { startEphemeralStack } from '../local/ephemeral-stack.ts';

const total = Number(process.argv[2] ?? 1000);
const inFlight = Number(process.argv[3] ?? 50);
const workers = Number(process.argv[4] ?? 2);
const deadline = Date.now() + 20 * 60_000;
const csv = await readFile(new URL('../examples/iris/iris.csv', import.meta.url), 'utf8');

const stack = await startEphemeralStack({ workers, limits: { maxActiveJobs: total + 10 } });
const pct = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length
    ? (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number)
    : Number.NaN;
};
try {
  const datasetId = await stack.upload(csv);
  const spec = {
    task: 'classification',
    dataset: { id: datasetId, label: 'species' },
    training: { epochs: 1, batchSize: 'full' },
  };
  const submitLatency: number[] = [];
  const accepted = new Map<string, string>(); // idempotency key → job id
  const rejected: string[] = [];
  let next = 0;
  const started = performance.now();
  async function client() {
    while (next < total && Date.now() < deadline) {
      const key = `load-${next++}`;
      for (let attempt = 0; attempt < 5; attempt++) {
        const t = performance.now();
        try {
          const r = await stack.call('POST', '/jobs', {
            body: { ...spec, name: key },
            headers: { 'idempotency-key': key },
          });
          submitLatency.push(performance.now() - t);
          if (r.status === 201 || r.status === 200) accepted.set(key, r.body.id);
          else rejected.push(`${r.status} ${r.body?.error?.code}`);
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
        }
      }
    }
  }
  await Promise.all(Array.from({ length: inFlight }, client));
  const submitSeconds = (performance.now() - started) / 1000;

  // Wait for every accepted job to end.
  const ids = [...new Set(accepted.values())];
  type JobView = {
    id: string;
    status: string;
    attempt: number;
    createdAt: string;
    startedAt: string;
    finishedAt: string;
  };
  const final = new Map<string, JobView>();
  while (final.size < ids.length && Date.now() < deadline) {
    for (const id of ids) {
      if (final.has(id)) continue;
      const { body } = await stack.call('GET', `/jobs/${id}`);
      if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(body.status)) final.set(id, body);
    }
    if (final.size < ids.length) await new Promise((r) => setTimeout(r, 500));
  }
  const allSeconds = (performance.now() - started) / 1000;
  const records = [...final.values()];
  const toRunning = records.map((j) => Date.parse(j.startedAt) - Date.parse(j.createdAt));
  const wall = records.map((j) => Date.parse(j.finishedAt) - Date.parse(j.createdAt));
  let duplicateRuns = 0;
  for (const j of records) {
    const events = (await stack.call('GET', `/jobs/${j.id}/events`)).body.events as { status?: string }[];
    if (events.filter((e) => e.status === 'SUCCEEDED').length > 1 || j.attempt > 1) duplicateRuns++;
  }
  const listed = new Set<string>();
  let cursor: string | null = null;
  do {
    const page: { body: { jobs: { id: string }[]; nextCursor: string | null } } = await stack.call(
      'GET',
      `/jobs?limit=100${cursor ? `&cursor=${cursor}` : ''}`,
    );
    for (const j of page.body.jobs) listed.add(j.id);
    cursor = page.body.nextCursor;
  } while (cursor);
  const lost = ids.filter((id) => !final.has(id) || !listed.has(id)).length;
  console.log(
    `load: ${total} jobs submitted by ${inFlight} concurrent clients to a local stack with ${workers} worker(s)`,
  );
  console.log(
    `accepted ${accepted.size}, rejected ${rejected.length}${rejected.length ? ` (${[...new Set(rejected)].join(', ')})` : ''}, distinct jobs ${ids.length}, duplicates ${accepted.size - ids.length + duplicateRuns}, lost ${lost}`,
  );
  console.log(
    `completed ${records.filter((j) => j.status === 'SUCCEEDED').length} SUCCEEDED, ${records.filter((j) => j.status !== 'SUCCEEDED').length} other, in ${allSeconds.toFixed(1)} s (${((records.length / allSeconds) * 3600).toFixed(0)} jobs/hour); submitting took ${submitSeconds.toFixed(1)} s`,
  );
  console.log(
    `POST /jobs latency: p50 ${pct(submitLatency, 0.5).toFixed(0)} ms, p99 ${pct(submitLatency, 0.99).toFixed(0)} ms, max ${Math.max(...submitLatency).toFixed(0)} ms`,
  );
  console.log(
    `submit → RUNNING: p50 ${(pct(toRunning, 0.5) / 1000).toFixed(1)} s, p99 ${(pct(toRunning, 0.99) / 1000).toFixed(1)} s; submit → done: p50 ${(pct(wall, 0.5) / 1000).toFixed(1)} s, p99 ${(pct(wall, 0.99) / 1000).toFixed(1)} s`,
  );
} finally {
  await stack.destroy();
}
