/**
 * From the SQS intake to AWS Batch and back, on real local ports: the dispatcher submits one Batch job
 * per job and records it through the lifecycle (a redelivered message never submits twice, a crashed
 * dispatch is found by name, a duplicate is terminated); a cancel reaches Batch; Batch's job-state
 * events end what a trainer could not; and every change of status becomes one state-change event.
 */
import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import type { BatchJobDetail } from '../../aws/batch-events.ts';
import { batchFailure, handleBatchEvent } from '../../aws/batch-events.ts';
import { attemptDurationFor, batchJobName, parseBatchJobName } from '../../aws/batch-jobs.ts';
import { dispatchJob } from '../../aws/dispatch.ts';
import { type AwsContext, composeAws } from '../../aws/services.ts';
import { watchTraining } from '../../aws/watch-training.ts';
import type { JobStateDetail } from '../../core/jobs/job-events.ts';
import { submitJob } from '../../core/jobs/job-service.ts';
import { loadRuntimeConfig } from '../../core/platform/runtime-config.ts';
import { InMemoryBatch } from '../helpers/batch.ts';
import { type LocalPorts, localPorts, putDataset } from '../helpers/local-ports.ts';
import { quiet, TENANT } from '../helpers/trainer.ts';

describe('dispatch to AWS Batch', () => {
  let ports: LocalPorts;
  let batch: InMemoryBatch;
  let context: AwsContext;
  let events: JobStateDetail[];
  let metrics: string[];
  let datasetId: string;

  const submit = async (body: Record<string, unknown> = {}) =>
    (
      await submitJob(context.services, TENANT, {
        task: 'classification',
        dataset: { id: datasetId, label: 'label' },
        training: { epochs: 2 },
        ...body,
      })
    ).record;
  const record = async (id: string) => (await context.services.lifecycle.jobs.get(TENANT, id)).record;
  const dispatch = (jobId: string, receiveCount = 1) =>
    dispatchJob(
      { lifecycle: context.services.lifecycle, batch, log: quiet },
      { tenant: TENANT, jobId },
      receiveCount,
    );
  const batchEvent = (detail: Partial<BatchJobDetail> & { jobId: string; jobName: string; status: string }) =>
    handleBatchEvent(
      {
        lifecycle: context.services.lifecycle,
        metrics: (line) => metrics.push(line),
        log: quiet,
        capacityWaitMinutes: 60,
      },
      'Batch Job State Change',
      detail,
    );

  beforeEach(async () => {
    await ports?.cleanup();
    ports = await localPorts();
    batch = new InMemoryBatch();
    events = [];
    metrics = [];
    context = composeAws(
      { store: ports.store, queue: ports.queue, batch, events: (detail) => void events.push(detail) },
      { config: loadRuntimeConfig({}), metrics: (line) => metrics.push(line), log: quiet },
    );
    datasetId = context.services.newId();
    await putDataset(ports.store, TENANT, datasetId, 'a,label\n1,x\n2,y\n3,x\n4,y\n');
  });
  after(async () => {
    await ports?.cleanup();
  });

  it('submits one Batch job for the job, with its limit, and records its id through the lifecycle', async () => {
    const job = await submit({ resources: { maxRuntimeSeconds: 3600 } });
    assert.equal(await dispatch(job.id), 'dispatched');
    assert.equal(batch.jobs.length, 1);
    assert.deepEqual(batch.jobs[0]?.run, {
      tenant: TENANT,
      jobId: job.id,
      attemptDurationSeconds: attemptDurationFor(3600),
    });
    assert.equal(batch.jobs[0]?.name, batchJobName(TENANT, job.id));
    const after = await record(job.id);
    assert.equal(after.batchJob?.id, 'batch-1');
    assert.equal(after.status, 'QUEUED');
    const info = (await context.services.lifecycle.jobs.events(TENANT, job.id)).at(-1);
    assert.match(info?.message ?? '', /Submitted to AWS Batch as job batch-1/);
  });

  it('never submits twice for a redelivered message', async () => {
    const job = await submit();
    assert.equal(await dispatch(job.id), 'dispatched');
    assert.equal(await dispatch(job.id, 2), 'already-dispatched');
    assert.equal(batch.jobs.length, 1);
  });

  it('finds the Batch job of a delivery that crashed after submitting, instead of submitting again', async () => {
    const job = await submit();
    // The first delivery submitted, then died before recording the id.
    await batch.submit({ tenant: TENANT, jobId: job.id, attemptDurationSeconds: 60 });
    assert.equal(await dispatch(job.id, 2), 'dispatched');
    assert.equal(batch.jobs.length, 1);
    assert.equal((await record(job.id)).batchJob?.id, 'batch-1');
  });

  it('terminates a Batch job that lost the race to another, and leaves a job cancelled before dispatch alone', async () => {
    const raced = await submit();
    assert.equal(await context.services.lifecycle.dispatched(TENANT, raced.id, 'batch-other'), 'recorded');
    // A delivery that read the record before the other's write.
    const id = await batch.submit({ tenant: TENANT, jobId: raced.id, attemptDurationSeconds: 60 });
    assert.equal(await context.services.lifecycle.dispatched(TENANT, raced.id, id), 'other-recorded');
    const cancelled = await submit();
    await context.services.lifecycle.cancel(TENANT, cancelled.id, 'api');
    assert.equal(await dispatch(cancelled.id), 'ended');
    assert.equal(batch.jobs.length, 1, 'no Batch job for a job cancelled while queued');
  });

  it('lets a failed submit be retried by SQS (nothing recorded)', async () => {
    const job = await submit();
    batch.failNext('submit');
    await assert.rejects(dispatch(job.id), /throttled/);
    assert.equal((await record(job.id)).batchJob, undefined);
    assert.equal(await dispatch(job.id, 2), 'dispatched');
    assert.equal(batch.jobs.length, 1);
  });

  it('terminates the Batch job of a job cancelled while it waits for a GPU, and of one cancelled while training', async () => {
    const waiting = await submit();
    await dispatch(waiting.id);
    await context.services.lifecycle.cancel(TENANT, waiting.id, 'api');
    assert.equal((await record(waiting.id)).status, 'CANCELLED');
    assert.deepEqual(batch.terminated, [{ id: 'batch-1', reason: 'descent: cancelled (CANCELLED)' }]);

    const training = await submit();
    await dispatch(training.id);
    await context.services.lifecycle.claim(TENANT, training.id, 'wasm');
    await context.services.lifecycle.cancel(TENANT, training.id, 'api');
    assert.equal((await record(training.id)).status, 'CANCELLING');
    assert.deepEqual(batch.terminated.at(-1), { id: 'batch-2', reason: 'descent: cancelled (CANCELLING)' });
    // The trainer was stopped before it could end the job: Batch's FAILED event ends it CANCELLED.
    assert.equal(
      await batchEvent({
        jobId: 'batch-2',
        jobName: batchJobName(TENANT, training.id),
        status: 'FAILED',
        statusReason: 'descent: cancelled (CANCELLING)',
      }),
      'cancelled',
    );
    assert.equal((await record(training.id)).status, 'CANCELLED');
  });

  it('fails a job that waited too long for a GPU with NO_GPU_CAPACITY, saying why, and counts it', async () => {
    const job = await submit();
    await dispatch(job.id);
    const outcome = await batchEvent({
      jobId: 'batch-1',
      jobName: batchJobName(TENANT, job.id),
      status: 'FAILED',
      statusReason:
        'Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY',
      attempts: [],
    });
    assert.equal(outcome, 'failed');
    const failed = await record(job.id);
    assert.equal(failed.status, 'FAILED');
    assert.equal(failed.error?.code, 'NO_GPU_CAPACITY');
    assert.match(
      failed.error?.message ?? '',
      /No GPU capacity could be had within 60 minutes: EC2 had no capacity/,
    );
    assert.ok(metrics.some((l) => l.includes('"jobsWithoutCapacity":1')));
    assert.ok(metrics.some((l) => l.includes('"jobsFailed":1')));
    assert.deepEqual(
      events.filter((e) => e.jobId === job.id).map((e) => [e.status, e.errorCode]),
      [
        ['QUEUED', undefined],
        ['FAILED', 'NO_GPU_CAPACITY'],
      ],
    );
  });

  it('leaves a job its trainer ended alone, and ignores events of a Batch job that is not the recorded one', async () => {
    const job = await submit();
    await dispatch(job.id);
    const claim = await context.services.lifecycle.claim(TENANT, job.id, 'wasm');
    assert.equal(claim.kind, 'running');
    const name = batchJobName(TENANT, job.id);
    assert.equal(
      await batchEvent({
        jobId: 'batch-9',
        jobName: name,
        status: 'FAILED',
        statusReason: 'Essential container in task exited',
      }),
      'not-current',
    );
    assert.equal((await record(job.id)).status, 'RUNNING');
    await context.services.lifecycle.finish(
      TENANT,
      job.id,
      { attempt: 1 },
      { status: 'SUCCEEDED', message: () => 'done' },
    );
    assert.equal(
      await batchEvent({ jobId: 'batch-1', jobName: name, status: 'SUCCEEDED' }),
      'already-finished',
    );
    assert.equal((await record(job.id)).status, 'SUCCEEDED');
  });

  it('fails a job whose trainer exited 0 without ending it, and counts Batch queue states', async () => {
    const job = await submit();
    await dispatch(job.id);
    const name = batchJobName(TENANT, job.id);
    assert.equal(await batchEvent({ jobId: 'batch-1', jobName: name, status: 'RUNNABLE' }), 'counted');
    assert.equal(await batchEvent({ jobId: 'batch-1', jobName: name, status: 'SUCCEEDED' }), 'failed');
    assert.equal((await record(job.id)).error?.code, 'TRAINER_EXITED');
    assert.ok(metrics.some((l) => l.includes('"batchJobsRunnable":1')));
    assert.equal(await batchEvent({ jobId: 'x', jobName: 'someone-elses-job', status: 'FAILED' }), 'ignored');
  });

  it('leaves a dead-lettered message whose job Batch already runs to Batch', async () => {
    const job = await submit();
    await dispatch(job.id);
    assert.equal(await context.services.lifecycle.deadLettered(TENANT, job.id, 3), 'dispatched');
    assert.equal((await record(job.id)).status, 'QUEUED');
  });
});

describe('Batch job names', () => {
  it('round-trip the tenant and job id, and refuse other names', () => {
    const jobId = '01M8JH2TQYPMBNJ50HMGRP3N6M';
    for (const tenant of ['acme', 'a_b-c', '3abc9def0ghi1jkl2mno3pqr4s']) {
      const name = batchJobName(tenant, jobId);
      assert.ok(name.length <= 128 && /^[A-Za-z0-9_-]+$/.test(name), name);
      assert.deepEqual(parseBatchJobName(name), { tenant, jobId });
    }
    for (const other of [
      'descent-',
      'descent-acme',
      `other-acme-${jobId}`,
      `descent-ACME-${jobId}`,
      `descent-acme_${jobId}`,
    ])
      assert.equal(parseBatchJobName(other), undefined, other);
  });
});

describe('the capacity watch', () => {
  const log = quiet;
  const now = () => new Date('2026-05-01T12:00:00Z');
  const minutes = (n: number) => now().getTime() - n * 60_000;
  const run = (jobId: string) => ({ tenant: TENANT, jobId, attemptDurationSeconds: 60 });

  it("ends only jobs waiting past the capacity wait and its grace while nothing trains, and gauges Batch's queue", async () => {
    const batch = new InMemoryBatch();
    const old = await batch.submit(run('01M8JH2TQYPMBNJ50HMGRP0001'));
    const young = await batch.submit(run('01M8JH2TQYPMBNJ50HMGRP0002'));
    Object.assign(batch.jobs.find((j) => j.id === old) ?? {}, {
      createdAt: minutes(60 + 16),
      reason: undefined,
    });
    Object.assign(batch.jobs.find((j) => j.id === young) ?? {}, { createdAt: minutes(30) });
    const lines: string[] = [];
    const result = await watchTraining({
      batch,
      metrics: (l) => lines.push(l),
      log,
      now,
      capacityWaitMinutes: 60,
    });
    assert.deepEqual(result.ended, [old]);
    assert.deepEqual(batch.terminated, [
      { id: old, reason: 'descent: no GPU capacity within 76 minutes (Batch: no reason given)' },
    ]);
    const gauges = JSON.parse(lines[0] ?? '{}');
    assert.equal(gauges.batchJobsWaitingNow, 2);
    assert.equal(gauges.batchJobsRunningNow, 0);
    assert.equal(gauges.oldestWaitSeconds, 76 * 60);
    const error = batchFailure(
      { jobId: old, jobName: 'x', status: 'FAILED', statusReason: batch.terminated[0]?.reason ?? '' },
      60,
    );
    assert.equal(error.code, 'NO_GPU_CAPACITY');
    assert.match(error.message, /no GPU instance could start while nothing else trained/);
  });

  it('leaves jobs that wait behind a training job alone, however long', async () => {
    const batch = new InMemoryBatch();
    const waiting = await batch.submit(run('01M8JH2TQYPMBNJ50HMGRP0003'));
    const training = await batch.submit(run('01M8JH2TQYPMBNJ50HMGRP0004'));
    Object.assign(batch.jobs.find((j) => j.id === waiting) ?? {}, { createdAt: minutes(600) });
    Object.assign(batch.jobs.find((j) => j.id === training) ?? {}, { status: 'RUNNING' });
    const result = await watchTraining({ batch, metrics: () => {}, log, now, capacityWaitMinutes: 60 });
    assert.deepEqual(result.ended, []);
    assert.equal(result.running, 1);
    assert.deepEqual(batch.terminated, []);
  });
});
