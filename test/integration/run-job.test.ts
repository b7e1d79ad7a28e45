/**
 * One delivery of a job against the real local store and the wasm backend: failures say why in the
 * record, a cancel stops training within an epoch, and a fenced attempt overwrites nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { handleDeadLetter } from '../../core/jobs/dead-letter.ts';
import { cancelJob, deleteJob, submitJob } from '../../core/jobs/job-service.ts';
import type { JobStore } from '../../core/jobs/job-store.ts';
import { createServices, type Services } from '../../core/services.ts';
import type { SelectedBackend } from '../../trainer/backend.ts';
import { trainingBackends } from '../helpers/backends.ts';
import { eventually } from '../helpers/eventually.ts';
import { putDataset } from '../helpers/local-ports.ts';
import { quiet, TENANT, type TrainerFixture, trainerFixture } from '../helpers/trainer.ts';

const blobs = `a,b,label\n${Array.from({ length: 80 }, (_, i) => `${(i % 2) * 2 - 1 + Math.sin(i) * 0.3},${Math.cos(i)},${i % 2 ? 'pos' : 'neg'}`).join('\n')}\n`;

// Every case on each training backend of this machine (wasm; tensorflow after `npm run setup:native`).
for (const backend of await trainingBackends()) {
  describe(`runJob on ${backend.name}`, () => runJobTests(backend));
}

function runJobTests(backend: SelectedBackend): void {
  let fixture: TrainerFixture;
  let services: Services;
  let jobs: JobStore;

  /** Stores a dataset directly (as an upload would) and submits a job on it. */
  const submit = async (csv: string, training: Record<string, unknown> = {}) => {
    const id = await fixture.dataset(csv);
    return (await fixture.submit({ dataset: { id, label: 'label' }, training: { seed: 1, ...training } })).id;
  };
  const message = (jobId: string) => ({ tenant: TENANT, jobId });
  const waitForEpoch = (jobId: string, epoch: number) =>
    eventually(
      () => fixture.record(jobId),
      (record) => record.progress.epoch >= epoch,
      { what: `epoch ${epoch} of job ${jobId}` },
    );

  before(async () => {
    fixture = await trainerFixture({ backend });
    services = fixture.services;
    jobs = fixture.jobs;
  });
  after(async () => {
    await fixture.cleanup();
  });

  it('fails a job with bad data at once, naming the row and column', async () => {
    const jobId = await submit('a,b,label\n1,2,x\n3,oops,y\n4,5,x\n6,7,y\n');
    assert.equal(await fixture.run(jobId), 'done');
    const { record } = await jobs.get(TENANT, jobId);
    assert.equal(record.status, 'FAILED');
    assert.equal(record.error?.code, 'INVALID_DATA');
    assert.match(record.error?.message ?? '', /Row 2, column "b": "oops" is not a number/);
    const events = await jobs.events(TENANT, jobId);
    assert.deepEqual(
      events.map((e) => e.status),
      ['QUEUED', 'RUNNING', 'FAILED'],
    );
  });

  it('stops a running job within one epoch of a cancel and ends CANCELLED', async () => {
    const jobId = await submit(blobs, { epochs: 5000, batchSize: 4 });
    const run = fixture.run(jobId);
    await waitForEpoch(jobId, 2);
    const cancelled = await cancelJob(services, TENANT, jobId);
    assert.equal(cancelled.status, 'CANCELLING');
    const epochAtCancel = cancelled.progress.epoch;
    assert.equal(await run, 'done');
    const final = (await jobs.get(TENANT, jobId)).record;
    assert.equal(final.status, 'CANCELLED');
    assert.ok(
      final.progress.epoch <= epochAtCancel + 2,
      `stopped at ${final.progress.epoch}, cancel at ${epochAtCancel}`,
    );
    const metrics = await jobs.metrics(TENANT, jobId);
    assert.equal(metrics.length, final.progress.epoch, 'partial metrics kept');
  });

  it('drops its work without overwriting anything when another attempt takes the job over', async () => {
    const jobId = await submit(blobs, { epochs: 5000, batchSize: 4 });
    const run = fixture.run(jobId);
    await waitForEpoch(jobId, 1);
    // Another worker claims the job (as after a redelivery).
    assert.equal((await services.lifecycle.claim(TENANT, jobId, 'wasm')).kind, 'running');
    assert.equal(await run, 'fenced');
    const after = (await jobs.get(TENANT, jobId)).record;
    assert.equal(after.status, 'RUNNING');
    assert.equal(after.attempt, 2);
  });

  it('releases the job (interrupted) when the worker is stopping', async () => {
    const jobId = await submit(blobs, { epochs: 5000, batchSize: 4 });
    const abort = new AbortController();
    const run = fixture.run(jobId, abort.signal);
    await waitForEpoch(jobId, 1);
    abort.abort();
    assert.equal(await run, 'interrupted');
    const { record } = await jobs.get(TENANT, jobId);
    assert.equal(record.status, 'RUNNING', 'stays RUNNING until the redelivery claims it');
    const events = await jobs.events(TENANT, jobId);
    assert.match(events.at(-1)?.message ?? '', /interrupted/);
  });

  /** The bytes of a job's weights.bin. */
  const weightsOf = async (jobId: string) =>
    Buffer.from(
      (await fixture.ports.store.get(`tenants/${TENANT}/jobs/${jobId}/model/weights.bin`))?.body ?? [],
    );
  const epochsOf = async (jobId: string) => (await jobs.metrics(TENANT, jobId)).map((m) => m.epoch);
  const resumable = { epochs: 12, batchSize: 8, checkpoint: { everyEpochs: 1 }, seed: 9 };
  const withDropout = {
    model: {
      layers: [
        { type: 'dense', units: 8 },
        { type: 'dropout', rate: 0.2 },
      ],
    },
  };

  it('resumes from its checkpoint after an interruption with exactly the weights of an uninterrupted run', async () => {
    const submitWith = async () => {
      const id = services.newId();
      await putDataset(fixture.ports.store, TENANT, id, blobs);
      return (
        await submitJob(services, TENANT, {
          task: 'classification',
          dataset: { id, label: 'label' },
          ...withDropout,
          training: resumable,
        })
      ).record.id;
    };
    const straight = await submitWith();
    assert.equal(await fixture.run(straight), 'done');

    const interrupted = await submitWith();
    const abort = new AbortController();
    const first = fixture.run(interrupted, abort.signal);
    await waitForEpoch(interrupted, 4);
    abort.abort();
    assert.equal(await first, 'interrupted');
    const paused = (await jobs.get(TENANT, interrupted)).record;
    assert.ok(
      paused.checkpoint && paused.checkpoint.epoch >= 4 && paused.checkpoint.epoch < 12,
      JSON.stringify(paused.checkpoint),
    );
    // The checkpoint names its engine (its optimizer state is in that engine's form); the resume runs on it.
    const engine = backend.name === 'tensorflow' ? 'compiled' : 'eager';
    const pointer = await fixture.ports.store.get(
      `tenants/${TENANT}/jobs/${interrupted}/checkpoints/latest.json`,
    );
    assert.equal(JSON.parse(new TextDecoder().decode(pointer?.body)).engine, engine);
    assert.equal(await fixture.run(interrupted), 'done');

    const done = (await jobs.get(TENANT, interrupted)).record;
    assert.equal(done.status, 'SUCCEEDED');
    assert.equal(done.attempt, 2);
    assert.deepEqual(
      await epochsOf(interrupted),
      Array.from({ length: 12 }, (_, i) => i + 1),
      'no gap, no duplicate',
    );
    assert.deepEqual(await weightsOf(interrupted), await weightsOf(straight), 'bitwise the same weights');
    assert.equal(done.resources?.engine, engine);
    const events = await jobs.events(TENANT, interrupted);
    assert.ok(events.some((e) => /Resuming from the checkpoint at epoch/.test(e.message)));
    assert.equal(
      (await fixture.ports.store.list(`tenants/${TENANT}/jobs/${interrupted}/checkpoints/`)).objects.length,
      0,
      'checkpoints cleared after success',
    );
  });

  it('keeps the best weights of early stopping across a resume', async () => {
    const spec = {
      ...withDropout,
      training: {
        ...resumable,
        epochs: 40,
        earlyStopping: { monitor: 'valLoss', patience: 3, minDelta: 10, restoreBestWeights: true },
      },
    };
    const submitWith = async () => {
      const id = await putDataset(fixture.ports.store, TENANT, services.newId(), blobs);
      return (
        await submitJob(services, TENANT, {
          task: 'classification',
          dataset: { id, label: 'label' },
          ...spec,
        })
      ).record.id;
    };
    const straight = await submitWith();
    assert.equal(await fixture.run(straight), 'done');
    const interrupted = await submitWith();
    const abort = new AbortController();
    const first = fixture.run(interrupted, abort.signal);
    await waitForEpoch(interrupted, 2);
    abort.abort();
    assert.equal(await first, 'interrupted');
    assert.equal(await fixture.run(interrupted), 'done');
    const report = (await jobs.report(TENANT, interrupted)) as any;
    assert.equal(report.stoppedBy, 'earlyStopping');
    assert.equal(report.bestEpoch, 1);
    assert.deepEqual(
      await weightsOf(interrupted),
      await weightsOf(straight),
      'the restored best weights survived the resume',
    );
  });

  it('two deliveries of one job at once: exactly one result, one SUCCEEDED record, no interleaved metrics', async () => {
    const jobId = await submit(blobs, { epochs: 30, batchSize: 4, seed: 3 });
    const stale = fixture.run(jobId);
    await waitForEpoch(jobId, 2);
    // The visibility timeout expired while the first still ran: a second worker takes the job.
    const fresh = fixture.run(jobId);
    const outcomes = await Promise.all([stale, fresh]);
    assert.deepEqual(outcomes, ['fenced', 'done']);
    const { record } = await jobs.get(TENANT, jobId);
    assert.equal(record.status, 'SUCCEEDED');
    assert.equal(record.attempt, 2);
    assert.deepEqual(
      await epochsOf(jobId),
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    const states = (await jobs.events(TENANT, jobId)).filter((e) => e.status === 'SUCCEEDED');
    assert.equal(states.length, 1);
  });

  it('fails with TIMEOUT past resources.maxRuntimeSeconds, keeping its last checkpoint', async () => {
    const id = services.newId();
    await putDataset(fixture.ports.store, TENANT, id, blobs);
    const { record } = await submitJob(services, TENANT, {
      task: 'classification',
      dataset: { id, label: 'label' },
      training: { epochs: 100000, batchSize: 2, seed: 1 },
      resources: { maxRuntimeSeconds: 1 },
    });
    assert.equal(await fixture.run(record.id), 'done');
    const done = (await jobs.get(TENANT, record.id)).record;
    assert.equal(done.status, 'FAILED');
    assert.equal(done.error?.code, 'TIMEOUT');
    assert.match(done.error?.message ?? '', /maxRuntimeSeconds \(1 s\)/);
    assert.ok(done.checkpoint && done.checkpoint.epoch > 0);
    assert.ok(
      (await fixture.ports.store.head(`tenants/${TENANT}/jobs/${record.id}/checkpoints/latest.json`)) !==
        undefined,
    );
  });

  it('drops the message of a job deleted after it ended', async () => {
    const jobId = await submit(blobs, { epochs: 1 });
    await cancelJob(services, TENANT, jobId);
    await deleteJob(services, TENANT, jobId);
    assert.equal(await fixture.run(jobId), 'done');
  });

  it('checks the array length of every row, validation rows included, naming the row', async () => {
    const rows = Array.from({ length: 20 }, (_, i) =>
      JSON.stringify({ v: i === 13 || i === 4 ? [1, 2, 3] : [i, i], label: i % 2 ? 'a' : 'b' }),
    );
    const id = await putDataset(
      fixture.ports.store,
      TENANT,
      services.newId(),
      `${rows.join('\n')}\n`,
      'jsonl',
    );
    const { record } = await submitJob(services, TENANT, {
      task: 'classification',
      dataset: { id, label: 'label', features: [{ name: 'v', shape: [2] }] },
      training: { epochs: 1, seed: 1 },
    });
    assert.equal(await fixture.run(record.id), 'done');
    const done = (await jobs.get(TENANT, record.id)).record;
    assert.equal(done.status, 'FAILED');
    assert.equal(done.error?.code, 'INVALID_DATA');
    assert.match(
      done.error?.message ?? '',
      /Row (5|14), column "v": the array has 3 numbers; shape \[2\] needs 2/,
    );
  });

  it('a submit whose message cannot be queued is a 503 that leaves nothing behind, and a retry works', async () => {
    let failures = 1;
    const flaky = {
      ...fixture.ports.queue,
      send: async (body: string) => {
        if (failures-- > 0) throw new Error('SQS is down');
        return fixture.ports.queue.send(body);
      },
    } as typeof fixture.ports.queue;
    const flakyServices = createServices(fixture.ports.store, flaky, { log: quiet });
    const id = await putDataset(fixture.ports.store, TENANT, services.newId(), blobs);
    const body = { task: 'classification', dataset: { id, label: 'label' }, training: { epochs: 1 } };
    const before = (await fixture.ports.store.list(`tenants/${TENANT}/`)).objects.length;
    await assert.rejects(
      submitJob(flakyServices, TENANT, body, 'retry-me'),
      (e: { status?: number }) => e.status === 503,
    );
    assert.equal(
      (await fixture.ports.store.list(`tenants/${TENANT}/`)).objects.length,
      before,
      'nothing stored',
    );
    const retried = await submitJob(flakyServices, TENANT, body, 'retry-me');
    assert.equal(retried.replayed, false);
    assert.equal(retried.record.status, 'QUEUED');
  });

  it('a dead-lettered job is marked FAILED with MAX_ATTEMPTS; a finished one is left alone', async () => {
    const jobId = await submit(blobs, { epochs: 1 });
    assert.equal(await handleDeadLetter(services.lifecycle, JSON.stringify(message(jobId)), 3), 'failed');
    const { record } = await jobs.get(TENANT, jobId);
    assert.equal(record.status, 'FAILED');
    assert.equal(record.error?.code, 'MAX_ATTEMPTS');
    assert.match(record.error?.message ?? '', /3 times/);
    assert.equal(
      await handleDeadLetter(services.lifecycle, JSON.stringify(message(jobId)), 3),
      'already-finished',
    );
    assert.equal(await handleDeadLetter(services.lifecycle, 'not json'), 'malformed');
    assert.equal(
      await handleDeadLetter(
        services.lifecycle,
        JSON.stringify({ tenant: TENANT, jobId: '01M8JH2TQYPMBNJ50HMGRP3N6M' }),
      ),
      'unknown-job',
    );
  });

  it('does nothing with a job that has already ended', async () => {
    const jobId = await submit(blobs, { epochs: 1 });
    await cancelJob(services, TENANT, jobId);
    assert.equal(await fixture.run(jobId), 'done');
    const { record } = await jobs.get(TENANT, jobId);
    assert.equal(record.status, 'CANCELLED');
    assert.equal(record.attempt, 0);
  });
}
