/**
 * Sweeps on the real local stack (gateway, two worker processes, the sweep loop): trials fan out over
 * both workers but never more than `maxParallel` at once (watched on the queue and the records while
 * the sweep runs), cancel stops everything, a crash and restart mid-sweep neither loses nor duplicates a trial,
 * an invalid domain is a 400 naming the parameter, and `descent sweep --follow` follows one to its end.
 */
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openJobQueue } from '../../local/layout.ts';
import type { SqliteJobQueue } from '../../local/sqlite-job-queue.ts';
import { runCli } from '../cli/run-cli.ts';
import { eventually } from '../helpers/eventually.ts';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';

const IRIS = new URL('../../examples/iris/iris.csv', import.meta.url).pathname;
const iris = await readFile(IRIS, 'utf8');
const ACTIVE = ['QUEUED', 'RUNNING', 'CANCELLING'];
/** Two workers; a crashed worker's job is delivered again after 2 s; the sweep loop every 0.5 s. */
const STACK = { workers: 2, visibilityTimeoutSeconds: 2, sweepIntervalMs: 500 };

describe('sweeps on the local stack', { timeout: 600_000 }, () => {
  let stack: TestStack;
  let queue: SqliteJobQueue;
  let datasetId: string;

  /** A sweep over iris: `lr` × `units` (a grid unless told otherwise). */
  const body = (
    lr: number[],
    units: number[],
    training: Record<string, unknown> = {},
    extra: Record<string, unknown> = {},
  ) => ({
    name: 'iris-sweep',
    spec: {
      task: 'classification',
      dataset: { id: datasetId, label: 'species' },
      model: { layers: [{ type: 'dense', units: 8 }] },
      training: { epochs: 10, batchSize: 32, seed: 5, ...training },
    },
    parameters: {
      'training.optimizer.learningRate': { type: 'choice', values: lr },
      'model.layers[0].units': { type: 'choice', values: units },
    },
    objective: { metric: 'loss' },
    ...extra,
  });
  const submit = async (request: unknown) => {
    const response = await stack.call('POST', '/sweeps', { body: request });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    return response.body;
  };
  const trialJobs = async (sweepId: string) =>
    (await stack.call('GET', `/jobs?sweepId=${sweepId}&limit=100`)).body.jobs as any[];
  const waitForSweep = (sweepId: string, until: (s: any) => boolean, onPoll?: () => Promise<void>) =>
    eventually(
      async () => {
        if (onPoll) await onPoll();
        return (await stack.call('GET', `/sweeps/${sweepId}`)).body;
      },
      until,
      { timeoutMs: 180_000, intervalMs: 40, what: `sweep ${sweepId}` },
    );
  const finished = (s: any) => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(s.status);
  /** Each trial exactly one job, each job one trial. */
  const assertOneJobPerTrial = async (sweep: any) => {
    const jobs = await trialJobs(sweep.id);
    assert.deepEqual(
      jobs.map((j) => j.trial).sort((a, b) => a - b),
      sweep.trials.filter((t: any) => t.jobId).map((t: any) => t.trial),
    );
    assert.deepEqual(
      new Set(jobs.map((j) => j.id)),
      new Set(sweep.trials.filter((t: any) => t.jobId).map((t: any) => t.jobId)),
    );
    return jobs;
  };

  before(async () => {
    stack = await startTestStack(STACK);
    queue = openJobQueue(stack.dataDir, 3);
    datasetId = await stack.upload(iris);
  });
  after(async () => {
    queue?.close();
    await stack?.destroy();
  });

  it('refuses a domain that can produce an invalid spec with a 400 naming the parameter', async () => {
    const sweepsBefore = (await stack.call('GET', '/sweeps?limit=100')).body.sweeps.length;
    const response = await stack.call('POST', '/sweeps', {
      body: body(
        [0.01],
        [8],
        {},
        {
          parameters: { 'model.layers[0].units': { type: 'intUniform', min: 0, max: 16 } },
        },
      ),
    });
    assert.equal(response.status, 400);
    assert.equal(response.body.error.code, 'VALIDATION_ERROR');
    assert.match(
      response.body.error.message,
      /model\.layers\[0\]\.units: the value 0 gives an invalid job spec/,
    );
    assert.equal(response.body.error.details.parameter, 'model.layers[0].units');
    const unknown = await stack.call('POST', '/sweeps', {
      body: {
        ...body([0.01], [8]),
        spec: { ...body([0.01], [8]).spec, dataset: { id: '01M8JH2TQYPMBNJ50HMGRP3N6M', label: 'species' } },
      },
    });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error.code, 'UNKNOWN_DATASET');
    assert.equal(
      (await stack.call('GET', '/sweeps?limit=100')).body.sweeps.length,
      sweepsBefore,
      'nothing stored',
    );
  });

  it('fans trials out over two workers, never more than maxParallel queued or running', async () => {
    const sweep = await submit(body([0.01, 0.05, 0.2], [4, 16], {}, { maxParallel: 2 }));
    assert.equal(sweep.trials.length, 6);
    let maxWaiting = 0;
    let maxActive = 0;
    const watch = async () => {
      const depth = await queue.depth();
      maxWaiting = Math.max(maxWaiting, depth.visible);
      assert.ok(depth.visible <= 2, `${depth.visible} trial messages waiting`);
      const active = (await trialJobs(sweep.id)).filter((j) => ACTIVE.includes(j.status)).length;
      maxActive = Math.max(maxActive, active);
      assert.ok(active <= 2, `${active} trial jobs queued or running`);
    };
    const done = await waitForSweep(sweep.id, finished, watch);
    assert.equal(done.status, 'SUCCEEDED', JSON.stringify(done.trials));
    assert.equal(maxActive, 2, 'both slots used');
    assert.ok(done.trials.every((t: any) => t.status === 'SUCCEEDED' && typeof t.objective === 'number'));

    // After the fact, from the records: no instant had more than two trials between queued and ended.
    const jobs = await assertOneJobPerTrial(done);
    const edges = jobs.flatMap((j) => [
      [Date.parse(j.createdAt), 1],
      [Date.parse(j.finishedAt), -1],
    ]);
    edges.sort((a, b) => (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number));
    let alive = 0;
    for (const [, d] of edges) {
      alive += d as number;
      assert.ok(alive <= 2, `${alive} trials alive at once`);
    }
    assert.ok(new Set(jobs.map((j) => j.backend)).size >= 1);

    // Ranked trials, the best one, and the report with one plot per parameter behind presigned URLs.
    assert.equal(done.ranking.length, 6);
    assert.equal(done.best.trial, done.ranking[0]);
    const objectives = done.ranking.map((n: number) => done.trials[n - 1].objective);
    assert.deepEqual(
      objectives,
      [...objectives].sort((a, b) => a - b),
      'loss ranked lowest first',
    );
    assert.deepEqual(Object.keys(done.artifacts).sort(), [
      'objective-vs-model.layers.0.units.svg',
      'objective-vs-training.optimizer.learningRate.svg',
      'report.json',
    ]);
    const svg = await fetch(done.artifacts['objective-vs-model.layers.0.units.svg']);
    assert.equal(svg.status, 200);
    assert.equal((((await svg.text()).match(/<circle/g) ?? []) as string[]).length, 6);
    const report = await (await fetch(done.artifacts['report.json'])).json();
    assert.equal(report.ranking[0].jobId, done.best.jobId);
  });

  it('cancel stops everything: running trials stop, queued and pending ones never run', async () => {
    const sweep = await submit(
      body([0.001, 0.002, 0.003], [4, 8], { epochs: 5000, batchSize: 8 }, { maxParallel: 2 }),
    );
    await waitForSweep(sweep.id, (s) => s.trials.some((t: any) => t.status === 'RUNNING' && t.epochs > 0));
    const cancel = await stack.call('POST', `/sweeps/${sweep.id}/cancel`);
    assert.equal(cancel.status, 200);
    assert.ok(['CANCELLING', 'CANCELLED'].includes(cancel.body.status));
    const done = await waitForSweep(sweep.id, finished);
    assert.equal(done.status, 'CANCELLED');
    assert.ok(
      done.trials.every((t: any) => t.status === 'CANCELLED'),
      JSON.stringify(done.trials),
    );
    assert.deepEqual(
      done.trials.filter((t: any) => t.jobId).map((t: any) => t.trial),
      [1, 2],
      'only the first two were ever queued',
    );
    const jobs = await assertOneJobPerTrial(done);
    assert.ok(jobs.every((j) => j.status === 'CANCELLED' && j.progress.epoch < 5000));
    assert.equal((await stack.call('POST', `/sweeps/${sweep.id}/cancel`)).status, 409);
  });

  it('follows a sweep from the CLI to its ranked table (and --json)', async () => {
    const file = join(stack.dataDir, 'sweep.json');
    const request = body([0.02, 0.2], [8], {}, { name: 'cli-sweep' });
    await writeFile(
      file,
      JSON.stringify({
        ...request,
        spec: { ...request.spec, dataset: { id: '<datasetId>', label: 'species' } },
      }),
    );
    const env = { HOME: stack.dataDir, DESCENT_URL: stack.url, DESCENT_TOKEN: stack.token };
    const run = await runCli(['sweep', file, '--data', IRIS, '--follow', '--json'], env);
    assert.equal(run.code, 0, run.stderr);
    const sweep = run.json();
    assert.equal(sweep.status, 'SUCCEEDED');
    assert.equal(sweep.name, 'cli-sweep');
    assert.equal(sweep.trials.length, 2);
    const show = await runCli(['sweeps', 'show', sweep.id], env);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /TRIAL\s+STATUS\s+learningRate\s+units\s+LOSS\s+EPOCHS/);
    assert.match(show.stdout, new RegExp(`Best: trial ${sweep.best.trial} \\(job ${sweep.best.jobId}\\)`));
    await rm(file);
  });

  it('neither loses nor duplicates a trial across a crash and restart mid-sweep', async () => {
    const sweep = await submit(
      body([0.01, 0.03, 0.1, 0.3], [8], { epochs: 60, batchSize: 8 }, { maxParallel: 2 }),
    );
    // Crash once a trial has ended and another has just started (by the job records; the table may lag).
    // Just started: no progress written since its first epoch (the next write comes a second later).
    await eventually(
      () => trialJobs(sweep.id),
      (jobs) =>
        jobs.some((j) => j.status === 'RUNNING' && j.progress.epoch <= 1) &&
        jobs.some((j) => j.status === 'SUCCEEDED'),
      {
        timeoutMs: 30_000,
        intervalMs: 20,
        what: 'a trial that has just started while another has succeeded',
      },
    );
    const { dataDir } = stack;
    // The workers crash (their trials' messages come back after the visibility timeout), then the stack
    // stops. A crash inside a worker's controller pass (a claimed trial whose job is not sent yet) is
    // finished by the restarted stack's loop once the claim is CLAIM_GRACE_MS old.
    for (const pid of stack.workerPids()) process.kill(pid, 'SIGKILL');
    await stack.stop();
    queue.close();
    stack = await startTestStack({ ...STACK, dataDir });
    queue = openJobQueue(dataDir, 3);
    const done = await waitForSweep(sweep.id, finished);
    assert.equal(done.status, 'SUCCEEDED', JSON.stringify(done.trials));
    assert.ok(done.trials.every((t: any) => t.status === 'SUCCEEDED'));
    const jobs = await assertOneJobPerTrial(done);
    assert.equal(jobs.length, 4);
    assert.ok(
      jobs.some((j) => j.attempt === 2),
      'the trial a crash interrupted ran again',
    );
    // Nothing left behind in the queue (the last worker deletes its message just after the sweep ends).
    const depth = await eventually(
      () => queue.depth(),
      (d) => d.inFlight === 0,
      { timeoutMs: 5000, what: 'the last message to be deleted' },
    );
    assert.deepEqual(depth, { visible: 0, inFlight: 0 });
  });
});
