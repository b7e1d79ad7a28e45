/**
 * The sweep controller on the real local store and queue, with the trainers played by hand (each
 * trial's job is moved through its states as a worker would): at most `maxParallel` trials queued or
 * running, none queued twice even with concurrent controllers or a crash mid-claim, cancel stops
 * everything, and the report ranks the trials.
 */
import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import { isTerminal, type JobStatus } from '../../core/jobs/job-record.ts';
import { cancelJob, listJobs } from '../../core/jobs/job-service.ts';
import type { JobStore } from '../../core/jobs/job-store.ts';
import { ConflictError } from '../../core/platform/errors.ts';
import { toJson } from '../../core/platform/json.ts';
import { activeSweepsPrefix, jobKeys, sweepKeys } from '../../core/platform/keys.ts';
import type { JobQueue } from '../../core/platform/ports.ts';
import { createServices, type Services } from '../../core/services.ts';
import { advanceSweep, CLAIM_GRACE_MS } from '../../core/sweeps/sweep-controller.ts';
import type { SweepRecord } from '../../core/sweeps/sweep-record.ts';
import { cancelSweep, getSweep, listSweeps, submitSweep } from '../../core/sweeps/sweep-service.ts';
import { SweepStore } from '../../core/sweeps/sweep-store.ts';
import { eventually } from '../helpers/eventually.ts';
import { type LocalPorts, localPorts, putDataset } from '../helpers/local-ports.ts';

const TENANT = 'acme';
const CSV = `a,b,label\n${Array.from({ length: 40 }, (_, i) => `${i % 7},${i % 3},${i % 2 ? 'x' : 'y'}`).join('\n')}\n`;

describe('sweep controller', () => {
  let ports: LocalPorts;
  let services: Services;
  let clock: number;
  let datasetId: string;
  let jobs: JobStore;
  /** Messages a worker would have received, by job id. */
  let received: Map<string, number>;

  const sweepBody = (values: number[], extra: Record<string, unknown> = {}) => ({
    name: 'lr',
    spec: {
      task: 'classification',
      dataset: { id: datasetId, label: 'label' },
      training: { epochs: 3, seed: 1 },
    },
    parameters: { 'training.optimizer.learningRate': { type: 'choice', values } },
    objective: { metric: 'accuracy' },
    ...extra,
  });

  /** Receives every visible message, as idle workers would, counting each job's deliveries. */
  const drain = async () => {
    for (;;) {
      const messages = await ports.queue.receive({
        waitSeconds: 0,
        maxMessages: 10,
        visibilityTimeoutSeconds: 3600,
      });
      if (messages.length === 0) return;
      for (const m of messages) {
        const { jobId } = JSON.parse(m.body) as { jobId: string };
        received.set(jobId, (received.get(jobId) ?? 0) + 1);
        await ports.queue.delete(m.receiptHandle);
      }
    }
  };
  /** Plays a trainer: moves a trial's job to `status` (writing the report of a SUCCEEDED one). */
  const play = async (
    jobId: string,
    status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'STOPPED_EARLY',
    accuracy?: number,
  ) => {
    if (accuracy !== undefined)
      await ports.store.put(
        jobKeys(TENANT, jobId).report,
        toJson({ validation: { accuracy, loss: 1 - accuracy } }),
      );
    if (status === 'RUNNING') {
      assert.equal((await services.lifecycle.claim(TENANT, jobId, 'wasm')).kind, 'running');
      return;
    }
    const { record } = await jobs.get(TENANT, jobId);
    await services.lifecycle.finish(
      TENANT,
      jobId,
      { attempt: record.attempt },
      { status, message: () => status },
    );
  };
  const sweep = async (id: string) => (await new SweepStore(ports.store).get(TENANT, id)).record;
  const active = (record: SweepRecord) =>
    record.trials.filter((t) => t.jobId && !isTerminal(t.status as JobStatus) && t.status !== 'PENDING');

  beforeEach(async () => {
    await ports?.cleanup();
    ports = await localPorts();
    clock = Date.parse('2026-03-01T10:00:00Z');
    services = createServices(ports.store, ports.queue, { now: () => new Date(clock) });
    jobs = services.lifecycle.jobs;
    datasetId = await putDataset(ports.store, TENANT, services.newId(), CSV);
    received = new Map();
  });
  after(async () => {
    await ports?.cleanup();
  });

  it('queues at most maxParallel trials, the next ones as earlier ones end, each exactly once', async () => {
    const values = [0.001, 0.003, 0.01, 0.03, 0.1];
    const { record: submitted } = await submitSweep(services, TENANT, sweepBody(values, { maxParallel: 2 }));
    assert.equal(submitted.status, 'RUNNING');
    assert.deepEqual(
      submitted.trials.map((t) => t.status),
      ['QUEUED', 'QUEUED', 'PENDING', 'PENDING', 'PENDING'],
    );
    assert.deepEqual(await ports.queue.depth(), { visible: 2, inFlight: 0 });

    const accuracy = [0.6, 0.9, 0.7, 0.95, 0.5];
    for (let step = 0; step < 20; step++) {
      await drain();
      const record = await sweep(submitted.id);
      if (record.status !== 'RUNNING') break;
      assert.ok(active(record).length <= 2, `step ${step}: ${active(record).length} active`);
      assert.ok(received.size - countEnded(record) <= 2, 'at most 2 jobs sent and not ended');
      // One trial runs and ends; several controllers then race to queue the next.
      const next = active(record)[0];
      assert.ok(next?.jobId);
      clock += 1000;
      await play(next.jobId, 'RUNNING');
      clock += 1000;
      await play(next.jobId, 'SUCCEEDED', accuracy[next.trial - 1]);
      await Promise.all(Array.from({ length: 5 }, () => advanceSweep(services, TENANT, submitted.id)));
    }
    await drain();
    const done = await sweep(submitted.id);
    assert.equal(done.status, 'SUCCEEDED');
    assert.equal(received.size, 5, 'five jobs');
    assert.ok(
      [...received.values()].every((n) => n === 1),
      'each queued once',
    );
    assert.deepEqual(
      done.trials.map((t) => [t.trial, t.status, t.objective]),
      values.map((_, i) => [i + 1, 'SUCCEEDED', accuracy[i]]),
    );
    assert.deepEqual(done.best && { trial: done.best.trial, objective: done.best.objective }, {
      trial: 4,
      objective: 0.95,
    });
    assert.ok(done.trials.every((t) => t.durationSeconds === 1));

    // The trials are ordinary jobs, tagged with the sweep, listed by GET /jobs (and filtered by sweep).
    const listed = await listJobs(services, TENANT, { sweepId: submitted.id });
    assert.deepEqual(listed.jobs.map((j) => j.trial).sort(), [1, 2, 3, 4, 5]);
    assert.ok(listed.jobs.every((j) => j.sweepId === submitted.id && j.name.startsWith('lr-')));
    assert.equal((await listJobs(services, TENANT, { sweepId: services.newId() })).jobs.length, 0);

    // The report: ranked trials and one plot per parameter, with presigned URLs; the sweep leaves the active list.
    const view = await getSweep(services, TENANT, submitted.id);
    assert.deepEqual(view.ranking, [4, 2, 3, 1, 5]);
    assert.deepEqual(Object.keys(view.artifacts).sort(), [
      'objective-vs-training.optimizer.learningRate.svg',
      'report.json',
    ]);
    const report = JSON.parse(
      new TextDecoder().decode((await ports.store.get(sweepKeys(TENANT, submitted.id).report))?.body),
    );
    assert.deepEqual(
      report.ranking.map((r: { trial: number }) => r.trial),
      [4, 2, 3, 1, 5],
    );
    const svg = new TextDecoder().decode(
      (await ports.store.get(sweepKeys(TENANT, submitted.id).plot('training.optimizer.learningRate')))?.body,
    );
    assert.match(svg, /^<svg/);
    assert.equal((svg.match(/<circle/g) ?? []).length, 5);
    assert.match(svg, /log scale/);
    assert.equal((await ports.store.list(activeSweepsPrefix(TENANT))).objects.length, 0);
    const list = await listSweeps(services, TENANT, {});
    assert.deepEqual(
      list.sweeps.map((s) => [s.id, s.status, s.trials]),
      [[submitted.id, 'SUCCEEDED', 5]],
    );
  });

  it('finishes a claim that a crashed controller left half done, without a second job', async () => {
    // The controller dies between storing the job and sending its message: its send never returns.
    const stuck: JobQueue = Object.create(ports.queue);
    stuck.send = () => new Promise(() => {});
    const crashed = createServices(ports.store, stuck, { now: () => new Date(clock) });
    void submitSweep(crashed, TENANT, sweepBody([0.01, 0.1], { maxParallel: 1 }));
    const sweepStore = new SweepStore(ports.store);
    const record = await eventually(
      async () => {
        const [id] = (await sweepStore.listIds(TENANT, { limit: 1 })).ids;
        const found = id ? (await sweepStore.find(TENANT, id))?.record : undefined;
        const jobId = found?.trials[0]?.jobId;
        return found && jobId && (await jobs.find(TENANT, jobId)) ? found : undefined;
      },
      (found): found is SweepRecord => found !== undefined,
      { what: 'the crashed controller to store its first trial' },
    );
    const s = services;
    const claimed = record.trials[0];
    assert.ok(claimed?.jobId && claimed.claimedAt && !claimed.queuedAt);
    assert.equal((await jobs.get(TENANT, claimed.jobId)).record.status, 'QUEUED', 'the job was stored');
    assert.deepEqual(await ports.queue.depth(), { visible: 0, inFlight: 0 }, 'but not sent');

    // Within the grace period, another controller leaves the claim to its owner...
    await advanceSweep(s, TENANT, record.id);
    assert.equal((await ports.queue.depth()).visible, 0);
    // ...after it, finishes it: the same job, sent once, and nothing more while it is active.
    clock += CLAIM_GRACE_MS;
    await Promise.all([advanceSweep(s, TENANT, record.id), advanceSweep(s, TENANT, record.id)]);
    await drain();
    assert.deepEqual([...received], [[claimed.jobId, 1]]);
    const after = await sweep(record.id);
    assert.ok(after.trials[0]?.queuedAt);
    assert.equal(after.trials[1]?.status, 'PENDING');

    // A claim whose job was never stored (made while the first trial still runs): the job is created
    // under the claimed id.
    const orphanId = services.newId();
    await new SweepStore(ports.store).update(TENANT, record.id, (current) => {
      Object.assign(current.trials[1] ?? {}, {
        status: 'QUEUED',
        jobId: orphanId,
        claimedAt: new Date(clock).toISOString(),
      });
      return current;
    });
    clock += CLAIM_GRACE_MS;
    await advanceSweep(s, TENANT, record.id);
    await drain();
    assert.equal(received.get(orphanId), 1);
    const job = (await jobs.get(TENANT, orphanId)).record;
    assert.deepEqual([job.status, job.sweepId, job.trial], ['QUEUED', record.id, 2]);
    assert.equal((await listJobs(services, TENANT, { sweepId: record.id })).jobs.length, 2);
  });

  it('cancel stops everything: pending trials never start, queued and running ones are cancelled', async () => {
    const { record } = await submitSweep(
      services,
      TENANT,
      sweepBody([0.001, 0.01, 0.1, 1], { maxParallel: 2 }),
    );
    await drain();
    const [first, second] = record.trials.map((t) => t.jobId as string);
    await play(first as string, 'RUNNING');

    const cancelled = await cancelSweep(services, TENANT, record.id);
    assert.equal(cancelled.status, 'CANCELLING', 'the running trial still has to stop');
    assert.deepEqual(
      cancelled.trials.map((t) => t.status),
      ['CANCELLING', 'CANCELLED', 'CANCELLED', 'CANCELLED'],
    );
    assert.equal((await jobs.get(TENANT, first as string)).record.status, 'CANCELLING');
    assert.equal((await jobs.get(TENANT, second as string)).record.status, 'CANCELLED');
    assert.equal(cancelled.trials[2]?.jobId, undefined, 'never queued');

    // The trainer stops the running trial after its epoch, and reports it.
    await play(first as string, 'CANCELLED');
    const done = await getSweep(services, TENANT, record.id);
    assert.equal(done.status, 'CANCELLED');
    assert.ok(done.trials.every((t) => t.status === 'CANCELLED'));
    await drain();
    assert.equal(received.size, 2, 'no trial queued after the cancel');
    await assert.rejects(
      cancelSweep(services, TENANT, record.id),
      (e: unknown) => e instanceof ConflictError,
    );
  });

  it('goes on past failed, stopped and cancelled trials, and fails when none succeeded', async () => {
    const { record } = await submitSweep(services, TENANT, sweepBody([0.001, 0.01, 0.1], { maxParallel: 1 }));
    const t1 = record.trials[0]?.jobId as string;
    await play(t1, 'RUNNING');
    await play(t1, 'FAILED');
    const t2 = (await advanceSweep(services, TENANT, record.id)).trials[1]?.jobId as string;
    await play(t2, 'RUNNING');
    await play(t2, 'STOPPED_EARLY');
    const t3 = (await advanceSweep(services, TENANT, record.id)).trials[2]?.jobId as string;
    // A user cancels the last trial's job directly: cancelJob advances the sweep, which ends.
    await cancelJob(services, TENANT, t3);
    const done = await sweep(record.id);
    assert.deepEqual(
      done.trials.map((t) => t.status),
      ['FAILED', 'STOPPED_EARLY', 'CANCELLED'],
    );
    assert.equal(done.status, 'FAILED');
    assert.equal(done.error?.code, 'NO_TRIAL_SUCCEEDED');
  });

  it('records each private trial’s ε and warns in the report that tuning on private data spends extra budget', async () => {
    const body = sweepBody([0.01, 0.1]);
    const { record } = await submitSweep(services, TENANT, {
      ...body,
      spec: { ...body.spec, training: { ...body.spec.training, privacy: { targetEpsilon: 1 } } },
    });
    for (const [i, epsilon] of [0.98, 0.99].entries()) {
      const jobId = (await advanceSweep(services, TENANT, record.id)).trials[i]?.jobId as string;
      await ports.store.put(
        jobKeys(TENANT, jobId).report,
        toJson({ validation: { accuracy: 0.8 + i / 10 }, privacy: { epsilon, delta: 1e-5 } }),
      );
      await play(jobId, 'RUNNING');
      await play(jobId, 'SUCCEEDED');
    }
    const done = await advanceSweep(services, TENANT, record.id);
    assert.equal(done.status, 'SUCCEEDED');
    assert.deepEqual(
      done.trials.map((t) => t.epsilon),
      [0.98, 0.99],
    );
    const report = JSON.parse(
      new TextDecoder().decode((await ports.store.get(sweepKeys(TENANT, record.id).report))?.body),
    );
    assert.deepEqual(
      report.ranking.map((r: { epsilon: number }) => r.epsilon),
      [0.99, 0.98],
    );
    assert.match(report.warnings[0], /tuning on private data spends extra budget.*1\.970 for the 2 trials/);
  });
});

/** Trials the table knows to have ended (their messages have been consumed or are gone). */
function countEnded(record: SweepRecord): number {
  return record.trials.filter((t) => t.jobId && isTerminal(t.status as JobStatus)).length;
}
