/**
 * What a FAILED AWS Batch job tells its job record, on the shapes Batch's job-state events have (the
 * JobDetail of DescribeJobs): never started for want of capacity, image not pulled, out of memory,
 * no GPU, hosts lost on every attempt, the trainer's temporary errors, a timeout, a crash.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BatchJobDetail, batchFailure } from '../../aws/batch-events.ts';

const job = (detail: Partial<BatchJobDetail>): BatchJobDetail => ({
  jobId: '4c7599ae-0a82-49aa-ba5a-4727fcce14a8',
  jobName: 'descent-acme-01M8JH2TQYPMBNJ50HMGRP3N6M',
  status: 'FAILED',
  ...detail,
});
const attempt = (exitCode: number | undefined, reason?: string, statusReason?: string) => ({
  container: { ...(exitCode === undefined ? {} : { exitCode }), ...(reason ? { reason } : {}) },
  ...(statusReason ? { statusReason } : {}),
});

describe('batchFailure', () => {
  it('explains a job cancelled by the capacity-wait limit, with the reason Batch gave', () => {
    const capacity = batchFailure(
      job({
        statusReason:
          'Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY',
      }),
      60,
    );
    assert.equal(capacity.code, 'NO_GPU_CAPACITY');
    assert.match(
      capacity.message,
      /within 60 minutes: EC2 had no capacity for any of the GPU instance types \(CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY\)/,
    );
    const misfit = batchFailure(
      job({
        statusReason:
          'Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT',
      }),
    );
    assert.equal(misfit.code, 'NO_GPU_CAPACITY');
    assert.match(misfit.message, /cannot fit the job/);
    const role = batchFailure(
      job({
        statusReason:
          'Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS',
      }),
    );
    assert.match(role.message, /service role lacks a permission/);
  });

  it('tells an out-of-memory kill, an image that could not be pulled and a trainer without a GPU apart', () => {
    const oom = batchFailure(
      job({
        statusReason: 'Essential container in task exited',
        attempts: [attempt(137, 'OutOfMemoryError: Container killed due to memory usage')],
      }),
    );
    assert.equal(oom.code, 'OUT_OF_MEMORY');
    assert.match(oom.message, /smaller batches/);
    const pull = batchFailure(
      job({
        statusReason: 'Task failed to start',
        attempts: [
          attempt(undefined, 'CannotPullContainerError: pull image manifest has been retried 5 time(s)'),
        ],
      }),
    );
    assert.equal(pull.code, 'IMAGE_PULL_FAILED');
    assert.match(pull.message, /never started/);
    const noGpu = batchFailure(
      job({ statusReason: 'Essential container in task exited', attempts: [attempt(78)] }),
    );
    assert.equal(noGpu.code, 'TRAINER_UNAVAILABLE');
    assert.match(noGpu.message, /TrainerWithoutGpu/);
  });

  it('says the host was lost when every attempt lost it, and that temporary errors used up the attempts', () => {
    const host = batchFailure(
      job({
        statusReason: 'Host EC2 (instance i-0123456789abcdef0) terminated.',
        attempts: [
          attempt(undefined, undefined, 'Host EC2 (instance i-1) terminated.'),
          attempt(undefined, undefined, 'Host EC2 (instance i-2) terminated.'),
        ],
      }),
    );
    assert.equal(host.code, 'MAX_ATTEMPTS');
    assert.match(host.message, /Spot reclaim or a host failure.*the last of 2 attempts/);
    const temporary = batchFailure(
      job({
        statusReason: 'Essential container in task exited',
        attempts: [attempt(75), attempt(75), attempt(75)],
      }),
    );
    assert.equal(temporary.code, 'MAX_ATTEMPTS');
    assert.match(temporary.message, /temporary error on each of 3 attempts/);
  });

  it("reports Batch's timeout and an unexplained crash with the exit code", () => {
    const timeout = batchFailure(
      job({ statusReason: 'Job attempt duration exceeded timeout', attempts: [attempt(143)] }),
    );
    assert.equal(timeout.code, 'TIMEOUT');
    const crash = batchFailure(
      job({ statusReason: 'Essential container in task exited', attempts: [attempt(1)] }),
    );
    assert.equal(crash.code, 'TRAINER_FAILED');
    assert.match(crash.message, /exit code 1 .*Essential container in task exited/);
  });
});
