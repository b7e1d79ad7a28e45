import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JOB_STATUSES, type JobRecord } from '../../core/jobs/job-record.ts';
import { canTransition, transition } from '../../core/jobs/lifecycle.ts';
import { ConflictError } from '../../core/platform/errors.ts';
import { reverseUlid, ulid, ulidTime } from '../../core/platform/ids.ts';
import { jobKeys } from '../../core/platform/keys.ts';
import { specOf } from '../helpers/specs.ts';

const record = (status: JobRecord['status']): JobRecord => ({
  id: ulid(),
  name: 'n',
  status,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  attempt: 0,
  progress: { epoch: 0, epochs: 5 },
  spec: specOf(),
});

describe('job state machine', () => {
  it('allows exactly the documented transitions', () => {
    const allowed = JOB_STATUSES.flatMap((from) =>
      JOB_STATUSES.filter((to) => canTransition(from, to)).map((to) => `${from}→${to}`),
    );
    assert.deepEqual(allowed.sort(), [
      'CANCELLING→CANCELLED',
      'CANCELLING→FAILED',
      'QUEUED→CANCELLED',
      'QUEUED→FAILED',
      'QUEUED→RUNNING',
      'RUNNING→CANCELLING',
      'RUNNING→FAILED',
      'RUNNING→RUNNING',
      'RUNNING→STOPPED_EARLY',
      'RUNNING→SUCCEEDED',
    ]);
  });
  it('stamps startedAt once and finishedAt on terminal states', () => {
    const t1 = new Date('2026-01-02T00:00:00Z');
    const running = transition(record('QUEUED'), 'RUNNING', t1);
    assert.equal(running.startedAt, t1.toISOString());
    const again = transition(running, 'RUNNING', new Date('2026-01-03T00:00:00Z'));
    assert.equal(again.startedAt, t1.toISOString());
    const done = transition(again, 'SUCCEEDED', new Date('2026-01-04T00:00:00Z'));
    assert.equal(done.finishedAt, '2026-01-04T00:00:00.000Z');
  });
  it('refuses a transition out of a terminal state with a 409', () => {
    assert.throws(
      () => transition(record('SUCCEEDED'), 'RUNNING', new Date()),
      (e: unknown) => e instanceof ConflictError && e.status === 409,
    );
  });
});

describe('ids and keys', () => {
  it('makes ULIDs that sort by time and whose reverse sorts the other way', () => {
    const a = ulid(1_000_000);
    const b = ulid(2_000_000);
    assert.ok(a < b);
    assert.ok(reverseUlid(a) > reverseUlid(b));
    assert.equal(reverseUlid(reverseUlid(a)), a);
    assert.equal(ulidTime(b), 2_000_000);
  });
  it('refuses to build a key from a tenant or id that could escape its prefix', () => {
    assert.throws(() => jobKeys('../other', ulid()));
    assert.throws(() => jobKeys('Tenant', ulid()));
    assert.throws(() => jobKeys('t', '../../x'));
    assert.match(
      jobKeys('t', '01M8JH2TQYPMBNJ50HMGRP3N6M').record,
      /^tenants\/t\/jobs\/01M8JH2TQYPMBNJ50HMGRP3N6M\/job\.json$/,
    );
  });
});
