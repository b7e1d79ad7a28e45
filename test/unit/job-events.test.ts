/**
 * Job state-change events: one per change of status, from the lifecycle's subscriber, with what a
 * client team acts on (tenant, job, status, error code); locally the same events are log lines.
 */
import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import {
  JOB_EVENT_DETAIL_TYPE,
  JOB_EVENT_SOURCE,
  type JobStateDetail,
  jobStateEvents,
  logJobEvents,
} from '../../core/jobs/job-events.ts';
import { JobLifecycle } from '../../core/jobs/lifecycle.ts';
import { createLogger } from '../../core/platform/log.ts';
import { type LocalPorts, localPorts } from '../helpers/local-ports.ts';
import { specOf } from '../helpers/specs.ts';
import { TENANT } from '../helpers/trainer.ts';

describe('job state-change events', () => {
  let ports: LocalPorts;
  let lifecycle: JobLifecycle;
  let events: JobStateDetail[];
  let lines: string[];
  const now = () => new Date('2026-05-01T10:00:00Z');

  beforeEach(async () => {
    await ports?.cleanup();
    ports = await localPorts();
    lifecycle = new JobLifecycle({ store: ports.store, queue: ports.queue, now });
    events = [];
    lines = [];
    lifecycle.subscribe(jobStateEvents((detail) => void events.push(detail)));
    lifecycle.subscribe(jobStateEvents(logJobEvents(createLogger({}, (line) => lines.push(line)))));
  });
  after(async () => {
    await ports?.cleanup();
  });

  const submit = async (id: string) => {
    const at = now().toISOString();
    await lifecycle.submit(
      TENANT,
      {
        id,
        name: 'n',
        status: 'QUEUED',
        createdAt: at,
        updatedAt: at,
        attempt: 0,
        progress: { epoch: 0, epochs: 3 },
        spec: specOf(),
      },
      { by: 'api', message: 'queued' },
    );
  };

  it('emits one event per change of status, none for progress, with the error code of a failure', async () => {
    const id = '01M8JH2TQYPMBNJ50HMGRP0001';
    await submit(id);
    await lifecycle.claim(TENANT, id, 'wasm');
    await lifecycle.record(TENANT, id, { attempt: 1 }, () => ({ progress: { epoch: 1, epochs: 3 } }));
    await lifecycle.finish(
      TENANT,
      id,
      { attempt: 1 },
      {
        status: 'FAILED',
        patch: { error: { code: 'INVALID_DATA', message: 'bad cell' } },
        message: () => 'failed',
      },
    );
    assert.deepEqual(
      events.map((e) => [e.previousStatus, e.status, e.errorCode, e.attempt]),
      [
        [undefined, 'QUEUED', undefined, 0],
        ['QUEUED', 'RUNNING', undefined, 1],
        ['RUNNING', 'FAILED', 'INVALID_DATA', 1],
      ],
    );
    assert.deepEqual(Object.keys(events[2] ?? {}).sort(), [
      'attempt',
      'errorCode',
      'jobId',
      'name',
      'previousStatus',
      'status',
      'tenant',
      'time',
    ]);
  });

  it('writes the same events to the log locally, with the source and detail-type of EventBridge', async () => {
    const id = '01M8JH2TQYPMBNJ50HMGRP0002';
    await submit(id);
    await lifecycle.cancel(TENANT, id, 'api');
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      logged.map((l) => [l.message, l.source, l.status, l.jobId]),
      [
        [JOB_EVENT_DETAIL_TYPE, JOB_EVENT_SOURCE, 'QUEUED', id],
        [JOB_EVENT_DETAIL_TYPE, JOB_EVENT_SOURCE, 'CANCELLED', id],
      ],
    );
  });

  it('never fails a change when the sink throws (the lifecycle logs it)', async () => {
    lifecycle.subscribe(
      jobStateEvents(() => {
        throw new Error('EventBridge unavailable');
      }),
    );
    const id = '01M8JH2TQYPMBNJ50HMGRP0003';
    await submit(id);
    assert.equal((await lifecycle.jobs.get(TENANT, id)).record.status, 'QUEUED');
  });
});
