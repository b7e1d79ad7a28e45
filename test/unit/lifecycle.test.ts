/**
 * The job lifecycle, the one owner of a job's status: every transition with its event, markers and
 * notice, fencing of the owning attempt, compensation of a submit that cannot be queued, and a proof
 * that no other module writes `job.json` or calls `transition`.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { JobRecord } from '../../core/jobs/job-record.ts';
import { FencedError, type JobChange, JobLifecycle } from '../../core/jobs/lifecycle.ts';
import { ConflictError, NotFoundError } from '../../core/platform/errors.ts';
import { activeSlotKey, jobIndexPrefix } from '../../core/platform/keys.ts';
import type { JobQueue } from '../../core/platform/ports.ts';
import { type LocalPorts, localPorts } from '../helpers/local-ports.ts';
import { specOf } from '../helpers/specs.ts';
import { quiet, TENANT } from '../helpers/trainer.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('job lifecycle', () => {
  let ports: LocalPorts;
  let lifecycle: JobLifecycle;
  let changes: JobChange[];
  let clock: number;
  let ids = 0;

  const newJob = (): JobRecord => {
    const id = `01M8JH2TQYPMBNJ50HMGRP${String(1000 + ids++).padStart(4, '0')}`;
    const at = new Date(clock).toISOString();
    return {
      id,
      name: 'n',
      status: 'QUEUED',
      createdAt: at,
      updatedAt: at,
      attempt: 0,
      progress: { epoch: 0, epochs: 3 },
      spec: specOf(),
    };
  };
  const submitted = async () =>
    (await lifecycle.submit(TENANT, newJob(), { by: 'api', message: 'Job submitted and queued.' })).id;
  const events = async (id: string) => (await lifecycle.jobs.events(TENANT, id)).map((e) => e.status);
  /** Whether the job holds an active-jobs slot. */
  const marker = async (id: string) => {
    const slot = (await lifecycle.jobs.get(TENANT, id)).record.activeSlot;
    return (
      slot !== undefined &&
      (await lifecycle.activeJobs.count(TENANT)) > 0 &&
      (await ports.store.head(activeSlotKey(TENANT, slot))) !== undefined
    );
  };

  beforeEach(async () => {
    await ports?.cleanup();
    ports = await localPorts();
    clock = Date.parse('2026-05-01T10:00:00Z');
    lifecycle = new JobLifecycle({
      store: ports.store,
      queue: ports.queue,
      now: () => new Date(clock),
      log: quiet,
    });
    changes = [];
    lifecycle.subscribe((change) => {
      changes.push(change);
    });
  });
  after(async () => {
    await ports?.cleanup();
  });

  it('submit stores the job, its markers and event, queues one message, then tells subscribers', async () => {
    const id = await submitted();
    assert.equal((await lifecycle.jobs.get(TENANT, id)).record.status, 'QUEUED');
    assert.ok(await marker(id));
    assert.equal((await lifecycle.jobs.listIds(TENANT, { limit: 10 })).ids[0], id);
    assert.deepEqual(await events(id), ['QUEUED']);
    assert.deepEqual(await ports.queue.depth(), { visible: 1, inFlight: 0 });
    assert.deepEqual(
      changes.map((c) => [c.from, c.record.status, c.by]),
      [[undefined, 'QUEUED', 'api']],
    );
  });

  it('a submit whose message cannot be sent is taken back: a 503, nothing stored, nobody told', async () => {
    const down: JobQueue = {
      send: async () => {
        throw new Error('SQS is down');
      },
      receive: async () => [],
      extendVisibility: async () => {},
      release: async () => {},
      delete: async () => {},
      depth: async () => ({ visible: 0, inFlight: 0 }),
    };
    const failing = new JobLifecycle({
      store: ports.store,
      queue: down,
      now: () => new Date(clock),
      log: quiet,
    });
    await assert.rejects(
      failing.submit(TENANT, newJob(), { by: 'api', message: 'queued' }),
      (e: { status?: number }) => e.status === 503,
    );
    assert.equal((await ports.store.list(`tenants/${TENANT}/`)).objects.length, 0);
    assert.equal(changes.length, 0);
  });

  it('claim: a new attempt, a cancelled job ends, an ended one is left, a missing one is gone', async () => {
    const id = await submitted();
    const first = await lifecycle.claim(TENANT, id, 'wasm');
    assert.equal(first.kind, 'running');
    assert.equal(first.kind === 'running' && first.record.attempt, 1);
    clock += 1000;
    const second = await lifecycle.claim(TENANT, id, 'wasm');
    assert.equal(second.kind === 'running' && second.record.attempt, 2, 'a redelivery is a new attempt');
    assert.equal(second.kind === 'running' && second.record.startedAt, '2026-05-01T10:00:00.000Z');
    await lifecycle.cancel(TENANT, id, 'api');
    const cancelled = await lifecycle.claim(TENANT, id, 'wasm');
    assert.equal(cancelled.kind, 'cancelled');
    assert.equal((await lifecycle.claim(TENANT, id, 'wasm')).kind, 'ended');
    assert.equal((await lifecycle.claim(TENANT, '01M8JH2TQYPMBNJ50HMGRP3N6M', 'wasm')).kind, 'gone');
    assert.equal((await lifecycle.claim(TENANT, 'not-an-id', 'wasm')).kind, 'gone');
    assert.deepEqual(await events(id), ['QUEUED', 'RUNNING', 'RUNNING', 'CANCELLING', 'CANCELLED']);
    assert.equal(await marker(id), false, 'the active-jobs slot is freed when the job ends');
  });

  it('cancel from the API: QUEUED ends at once, RUNNING asks the trainer, an ended job is a 409', async () => {
    const queued = await submitted();
    const result = await lifecycle.cancel(TENANT, queued, 'api');
    assert.equal(result?.record.status, 'CANCELLED');
    assert.equal(changes.at(-1)?.record.status, 'CANCELLED');
    await assert.rejects(lifecycle.cancel(TENANT, queued, 'api'), (e: unknown) => e instanceof ConflictError);
    const running = await submitted();
    await lifecycle.claim(TENANT, running, 'wasm');
    assert.equal((await lifecycle.cancel(TENANT, running, 'api'))?.record.status, 'CANCELLING');
    assert.equal(
      (await lifecycle.cancel(TENANT, running, 'api'))?.changed,
      false,
      'a second cancel changes nothing',
    );
    await assert.rejects(lifecycle.cancel(TENANT, '01M8JH2TQYPMBNJ50HMGRP3N6M', 'api'), NotFoundError);
  });

  it('cancel from a sweep passes over ended and missing jobs instead of failing', async () => {
    const id = await submitted();
    await lifecycle.cancel(TENANT, id, 'sweep');
    const again = await lifecycle.cancel(TENANT, id, 'sweep');
    assert.equal(again?.changed, false);
    assert.equal(await lifecycle.cancel(TENANT, '01M8JH2TQYPMBNJ50HMGRP3N6M', 'sweep'), undefined);
    const messages = (await lifecycle.jobs.events(TENANT, id)).map((e) => e.message);
    assert.match(messages.at(-1) ?? '', /its sweep was cancelled/);
  });

  it('only the owning attempt may record progress or finish; a cancel turns a success into CANCELLED', async () => {
    const id = await submitted();
    await lifecycle.claim(TENANT, id, 'wasm');
    const progressed = await lifecycle.record(TENANT, id, { attempt: 1 }, () => ({
      progress: { epoch: 1, epochs: 3, loss: 0.5 },
    }));
    assert.equal(progressed.progress.epoch, 1);
    assert.equal(progressed.status, 'RUNNING');
    await assert.rejects(
      lifecycle.record(TENANT, id, { attempt: 2 }, () => ({})),
      (e: unknown) => e instanceof FencedError,
    );
    await lifecycle.cancel(TENANT, id, 'api');
    const done = await lifecycle.finish(
      TENANT,
      id,
      { attempt: 1 },
      {
        status: 'SUCCEEDED',
        message: (r) => (r.status === 'SUCCEEDED' ? 'Succeeded.' : 'Cancelled after the last epoch.'),
      },
    );
    assert.equal(done.status, 'CANCELLED');
    assert.ok(done.finishedAt);
    await assert.rejects(
      lifecycle.finish(TENANT, id, { attempt: 1 }, { status: 'FAILED', message: () => 'x' }),
      FencedError,
      'an ended job fences every attempt',
    );
    const ended = changes.filter((c) => c.record.id === id && c.record.status === 'CANCELLED');
    assert.equal(ended.length, 1, 'subscribers hear of the end once');
  });

  it('a dead-lettered job is FAILED with MAX_ATTEMPTS, a cancelling one CANCELLED, an ended one left', async () => {
    const id = await submitted();
    await lifecycle.claim(TENANT, id, 'wasm');
    assert.equal(await lifecycle.deadLettered(TENANT, id, 3), 'failed');
    const record = (await lifecycle.jobs.get(TENANT, id)).record;
    assert.equal(record.error?.code, 'MAX_ATTEMPTS');
    assert.equal(changes.at(-1)?.by, 'dead-letter');
    assert.equal(await lifecycle.deadLettered(TENANT, id, 3), 'already-finished');
    const cancelling = await submitted();
    await lifecycle.claim(TENANT, cancelling, 'wasm');
    await lifecycle.cancel(TENANT, cancelling, 'api');
    assert.equal(await lifecycle.deadLettered(TENANT, cancelling, 3), 'cancelled');
    assert.equal(await lifecycle.deadLettered(TENANT, '01M8JH2TQYPMBNJ50HMGRP3N6M', 3), 'unknown-job');
  });

  it('delete purges a job that has ended and refuses one that is active', async () => {
    const id = await submitted();
    await assert.rejects(lifecycle.delete(TENANT, id), ConflictError);
    await lifecycle.cancel(TENANT, id, 'api');
    assert.ok((await lifecycle.delete(TENANT, id)) >= 2);
    assert.equal(await lifecycle.jobs.find(TENANT, id), undefined);
    assert.equal((await ports.store.list(jobIndexPrefix(TENANT))).objects.length, 0);
  });

  it('a subscriber that fails never fails the change', async () => {
    lifecycle.subscribe(() => {
      throw new Error('listener down');
    });
    const id = await submitted();
    assert.equal((await lifecycle.cancel(TENANT, id, 'api'))?.record.status, 'CANCELLED');
  });
});

describe('one owner of job status', () => {
  /** Every TypeScript source file outside tests, with its text. */
  async function sources(): Promise<{ path: string; text: string }[]> {
    const out: { path: string; text: string }[] = [];
    for (const top of ['core', 'functions', 'trainer', 'inference', 'aws', 'local', 'client', 'infra']) {
      const entries = await readdir(join(ROOT, top), { recursive: true });
      for (const entry of entries) {
        if (!entry.endsWith('.ts')) continue;
        const path = join(ROOT, top, entry);
        out.push({ path: relative(ROOT, path), text: await readFile(path, 'utf8') });
      }
    }
    return out;
  }

  it('no module but core/jobs/lifecycle.ts calls transition or writes job.json', async () => {
    const offenders: string[] = [];
    for (const { path, text } of await sources()) {
      if (path === 'core/jobs/lifecycle.ts') continue;
      if (/\btransition\(/.test(text)) offenders.push(`${path}: calls transition()`);
      // job.json's key is built by jobKeys(...).record; only the store reads it.
      if (/jobKeys\([^)]*\)\.record|keys\.record\b/.test(text) && path !== 'core/jobs/job-store.ts')
        offenders.push(`${path}: names job.json`);
      if (/new VersionedDocuments\([^)]*jobRecord/.test(text) && path !== 'core/jobs/job-store.ts')
        offenders.push(`${path}: opens job records for writing`);
    }
    assert.deepEqual(offenders, []);
  });

  it('the job store offers no write of a record', async () => {
    const text = await readFile(join(ROOT, 'core/jobs/job-store.ts'), 'utf8');
    assert.doesNotMatch(text, /#records\.(update|create|overwrite)\(/);
  });
});
