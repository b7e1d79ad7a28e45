/**
 * Never lose a job: real worker processes of the local stack are killed (SIGKILL, also in the middle
 * of a checkpoint write), stopped (SIGTERM), or crashed by a poison job; every job still ends exactly
 * once, resumed jobs end with the weights of an uninterrupted run, and histories have no gap or
 * duplicate epoch.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { eventually } from '../helpers/eventually.ts';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';

const irisCsv = await readFile(new URL('../../examples/iris/iris.csv', import.meta.url), 'utf8');
const EPOCHS = 120;
/** A job long enough (a few seconds) to be killed in the middle, checkpointing every 5 epochs. */
const longSpec = (datasetId: string, name = 'long') => ({
  name,
  task: 'classification',
  dataset: { id: datasetId, label: 'species' },
  model: {
    layers: [
      { type: 'dense', units: 8 },
      { type: 'dropout', rate: 0.1 },
    ],
  },
  training: {
    epochs: EPOCHS,
    batchSize: 4,
    seed: 17,
    checkpoint: { everyEpochs: 5 },
    validation: { type: 'none' },
  },
});

async function weights(stack: TestStack, jobId: string): Promise<Buffer> {
  const { body } = await stack.call('GET', `/jobs/${jobId}/result`);
  return Buffer.from(await (await fetch(body.artifacts['weights.bin'])).arrayBuffer());
}
async function epochs(stack: TestStack, jobId: string): Promise<number[]> {
  return (await stack.call('GET', `/jobs/${jobId}/metrics`)).body.epochs.map(
    (e: { epoch: number }) => e.epoch,
  );
}
const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const submit = async (stack: TestStack, body: object) => {
  const r = await stack.call('POST', '/jobs', { body });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id as string;
};

describe('recovery', { timeout: 600_000 }, () => {
  it('SIGKILL of the worker mid-job: the job resumes on the restarted worker and ends with the weights of an uninterrupted run', async () => {
    const stack = await startTestStack({ workers: 1, visibilityTimeoutSeconds: 2 });
    try {
      const datasetId = await stack.upload(irisCsv);
      const reference = await submit(stack, longSpec(datasetId));
      assert.equal((await stack.waitFor(reference)).status, 'SUCCEEDED');

      const victim = await submit(stack, longSpec(datasetId));
      await stack.waitFor(victim, (job) => job.status === 'RUNNING' && job.checkpoint?.epoch >= 20);
      const [pid] = stack.workerPids();
      process.kill(pid as number, 'SIGKILL');
      const job = await stack.waitFor(victim);
      assert.equal(job.status, 'SUCCEEDED', JSON.stringify(job.error));
      assert.equal(job.attempt, 2);
      assert.deepEqual(await epochs(stack, victim), oneToN(EPOCHS));
      assert.deepEqual(await weights(stack, victim), await weights(stack, reference));
      const events = (await stack.call('GET', `/jobs/${victim}/events`)).body.events;
      assert.ok(
        events.some((e: { message: string }) =>
          /Resuming from the checkpoint at epoch (2\d|[3-9]\d)/.test(e.message),
        ),
      );
    } finally {
      await stack.destroy();
    }
  });

  it('SIGKILL during a checkpoint write: the half-written checkpoint is ignored and the job still ends right', async () => {
    let stack = await startTestStack({ workers: 0 });
    const { dataDir } = stack;
    try {
      const datasetId = await stack.upload(irisCsv);
      const victim = await submit(stack, longSpec(datasetId, 'fault'));
      await stack.stop();
      stack = await startTestStack({
        dataDir,
        workers: 1,
        visibilityTimeoutSeconds: 2,
        workerEnv: {
          DESCENT_LOG_LEVEL: 'error',
          DESCENT_FAULT: 'kill-during-checkpoint',
          DESCENT_FAULT_ONCE_FILE: join(dataDir, 'fault-fired'),
        },
      });
      const job = await stack.waitFor(victim);
      assert.equal(job.status, 'SUCCEEDED', JSON.stringify(job.error));
      assert.equal(job.attempt, 2, 'the first attempt died mid-write');
      await readFile(join(dataDir, 'fault-fired'));
      assert.deepEqual(await epochs(stack, victim), oneToN(EPOCHS));
      const reference = await submit(stack, longSpec(datasetId));
      assert.equal((await stack.waitFor(reference)).status, 'SUCCEEDED');
      assert.deepEqual(await weights(stack, victim), await weights(stack, reference));
    } finally {
      await stack.destroy();
    }
  });

  it('SIGTERM (stop) mid-job: a checkpoint is written, the job is released, resumed on the next start and succeeds', async () => {
    let stack = await startTestStack({ workers: 1, visibilityTimeoutSeconds: 2 });
    const { dataDir } = stack;
    try {
      const datasetId = await stack.upload(irisCsv);
      const jobId = await submit(stack, {
        ...longSpec(datasetId),
        training: { ...longSpec(datasetId).training, checkpoint: { everySeconds: 3600 } },
      });
      await stack.waitFor(jobId, (job) => job.status === 'RUNNING' && job.progress.epoch >= 10);
      await stack.stop();
      stack = await startTestStack({ dataDir, workers: 0 });
      const paused = (await stack.call('GET', `/jobs/${jobId}`)).body;
      assert.equal(paused.status, 'RUNNING');
      assert.ok(paused.checkpoint?.epoch >= 10, 'checkpointed on SIGTERM, not on the hourly schedule');
      await stack.stop();
      stack = await startTestStack({ dataDir, workers: 1, visibilityTimeoutSeconds: 2 });
      const job = await stack.waitFor(jobId);
      assert.equal(job.status, 'SUCCEEDED', JSON.stringify(job.error));
      assert.equal(job.attempt, 2);
      assert.deepEqual(await epochs(stack, jobId), oneToN(EPOCHS));
    } finally {
      await stack.destroy();
    }
  });

  it('a job that always crashes its worker ends FAILED with MAX_ATTEMPTS, and the worker keeps serving other jobs', async () => {
    const stack = await startTestStack({
      workers: 1,
      visibilityTimeoutSeconds: 1,
      maxAttempts: 2,
      workerEnv: { DESCENT_LOG_LEVEL: 'error', DESCENT_FAULT: 'crash-on-job:poison' },
    });
    try {
      const datasetId = await stack.upload(irisCsv);
      const poison = await submit(stack, {
        name: 'poison',
        task: 'classification',
        dataset: { id: datasetId, label: 'species' },
        training: { epochs: 2 },
      });
      const job = await stack.waitFor(poison, undefined, 60_000);
      assert.equal(job.status, 'FAILED');
      assert.equal(job.error.code, 'MAX_ATTEMPTS');
      assert.match(job.error.message, /2 times/);
      const healthy = await submit(stack, {
        name: 'healthy',
        task: 'classification',
        dataset: { id: datasetId, label: 'species' },
        training: { epochs: 2 },
      });
      assert.equal((await stack.waitFor(healthy)).status, 'SUCCEEDED');
    } finally {
      await stack.destroy();
    }
  });

  it('a restart of the whole stack with jobs queued and running: all finish, none duplicated', async () => {
    let stack = await startTestStack({ workers: 1, visibilityTimeoutSeconds: 2 });
    const { dataDir } = stack;
    try {
      const datasetId = await stack.upload(irisCsv);
      const ids: string[] = [];
      for (let i = 0; i < 4; i++)
        ids.push(
          await submit(stack, {
            ...longSpec(datasetId, `batch-${i}`),
            training: { ...longSpec(datasetId).training, epochs: 40 },
          }),
        );
      await stack.waitFor(ids[0] as string, (job) => job.status === 'RUNNING' && job.progress.epoch >= 5);
      await stack.stop();
      stack = await startTestStack({ dataDir, workers: 2, visibilityTimeoutSeconds: 2 });
      for (const id of ids) {
        const job = await stack.waitFor(id);
        assert.equal(job.status, 'SUCCEEDED', `${id}: ${JSON.stringify(job.error)}`);
        assert.deepEqual(await epochs(stack, id), oneToN(40));
        // The state event is appended just after the record is written: wait for it, then count.
        const events = await eventually(
          async () => (await stack.call('GET', `/jobs/${id}/events`)).body.events as { status?: string }[],
          (list) => list.some((e) => e.status === 'SUCCEEDED'),
          { what: `the SUCCEEDED event of ${id}` },
        );
        assert.equal(events.filter((e) => e.status === 'SUCCEEDED').length, 1);
      }
      const listed = (await stack.call('GET', '/jobs?limit=100')).body.jobs;
      assert.equal(listed.length, 4);
    } finally {
      await stack.destroy();
    }
  });
});
