/**
 * A delete that lands while a job is finishing (after its terminal record is written, before its last
 * event is appended) leaves nothing behind: the late event writes nothing once the job is gone, and the
 * store keeps no empty folder of the job.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { JobRecord } from '../../core/jobs/job-record.ts';
import { JobLifecycle } from '../../core/jobs/lifecycle.ts';
import { jobKeys } from '../../core/platform/keys.ts';
import { type LocalPorts, localPorts, storeWith } from '../helpers/local-ports.ts';
import { specOf } from '../helpers/specs.ts';
import { quiet, TENANT } from '../helpers/trainer.ts';

describe('delete racing a finishing job', () => {
  let ports: LocalPorts;
  before(async () => {
    ports = await localPorts();
  });
  after(async () => {
    await ports?.cleanup();
  });

  it('leaves no object and no empty folder of the job', async () => {
    const now = () => new Date();
    // The trainer's lifecycle: its event writes wait, when asked, until the test lets them go.
    let hold: { reached: () => void; release: Promise<void> } | undefined;
    const trainerStore = storeWith(ports.store, {
      put: async (key, body, options) => {
        if (hold && key.endsWith('/events.json')) {
          const { reached, release } = hold;
          hold = undefined;
          reached();
          await release;
        }
        return ports.store.put(key, body, options);
      },
    });
    const trainer = new JobLifecycle({ store: trainerStore, queue: ports.queue, now, log: quiet });
    const api = new JobLifecycle({ store: ports.store, queue: ports.queue, now, log: quiet });
    const at = now().toISOString();
    const job: JobRecord = {
      id: '01M8JH2TQYPMBNJ50HMGRP9999',
      name: 'n',
      status: 'QUEUED',
      createdAt: at,
      updatedAt: at,
      attempt: 0,
      progress: { epoch: 0, epochs: 1 },
      spec: specOf(),
    };
    await api.submit(TENANT, job, { by: 'api', message: 'queued' });
    await ports.store.put(`${jobKeys(TENANT, job.id).checkpoints}latest.json`, '{}');
    const claim = await trainer.claim(TENANT, job.id, 'wasm');
    assert.equal(claim.kind, 'running');

    let reached = () => {};
    let release = () => {};
    const atEvent = new Promise<void>((resolve) => {
      reached = resolve;
    });
    hold = {
      reached,
      release: new Promise<void>((resolve) => {
        release = resolve;
      }),
    };
    const finishing = trainer.finish(
      TENANT,
      job.id,
      { attempt: 1 },
      { status: 'SUCCEEDED', message: () => 'done' },
    );
    await atEvent; // the record says SUCCEEDED; its event is on its way
    await api.delete(TENANT, job.id);
    release();
    await finishing;

    const left = await ports.store.list(jobKeys(TENANT, job.id).prefix);
    assert.deepEqual(
      left.objects.map((o) => o.key),
      [],
    );
    const jobsFolder = join(ports.dir, 'objects', 'objects', 'tenants', TENANT, 'jobs');
    const folders = await readdir(jobsFolder).catch(() => [] as string[]);
    assert.ok(!folders.includes(job.id), `the job's folder is left: ${folders}`);
  });
});
