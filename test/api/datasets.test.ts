import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deleteDataset, getDataset, listDatasets } from '../../core/datasets/dataset-catalog.ts';
import { createDataset } from '../../core/datasets/dataset-service.ts';
import { submitJob, validateJob } from '../../core/jobs/job-service.ts';
import { datasetKeys } from '../../core/platform/keys.ts';
import { DEFAULT_LIMITS } from '../../core/platform/limits.ts';
import { submitPredictions } from '../../core/predictions/batch-service.ts';
import type { ModelRunner } from '../../core/predictions/model-runner.ts';
import { predictOnline } from '../../core/predictions/predict-service.ts';
import { createServices, type Services } from '../../core/services.ts';
import { type LocalPorts, localPorts } from '../helpers/local-ports.ts';
import { quiet } from '../helpers/trainer.ts';

const T = 'acme';
const CSV = 'a,b,label\n1,2,x\n3,4,y\n5,6,x\n';
/** A runner that must not be reached: these requests are refused before any model runs. */
const unreachable: ModelRunner = {
  run: () => Promise.reject(new Error('the model ran')),
  integratedGradients: () => Promise.reject(new Error('the model ran')),
};

describe('datasets as a resource, dry runs, and refusals of the prediction routes', () => {
  let ports: LocalPorts;
  let s: Services;

  /** A dataset created as `POST /datasets` does, with `text` uploaded. */
  const upload = async (text = CSV) => {
    const created = await createDataset(s, T, { name: 'd.csv', format: 'csv' });
    await ports.store.put(datasetKeys(T, created.datasetId).data, text);
    return created.datasetId;
  };

  before(async () => {
    ports = await localPorts();
    s = createServices(ports.store, ports.queue, { log: quiet });
  });
  after(() => ports?.cleanup());

  it('lists datasets newest first a page at a time, with their size, and reads one', async () => {
    const first = await upload();
    const second = await upload('a,label\n1,x\n');
    const page = await listDatasets(s, T, { limit: '1' });
    assert.equal(page.datasets[0]?.id, second);
    assert.ok(page.nextCursor);
    const rest = await listDatasets(s, T, { limit: '100', cursor: page.nextCursor });
    assert.ok(rest.datasets.some((d) => d.id === first));
    const one = await getDataset(s, T, first);
    assert.deepEqual([one.format, one.uploaded, one.bytes], ['csv', true, CSV.length]);
    await assert.rejects(getDataset(s, T, '01M8JH2TQYPMBNJ50HMGRP3N6M'), { status: 404 });
    await assert.rejects(getDataset(s, 'other', first), { status: 404 });
  });

  it('refuses to delete a dataset a queued job uses, then deletes it once the job has ended', async () => {
    const id = await upload();
    const job = (await submitJob(s, T, { task: 'classification', dataset: { id, label: 'label' } })).record;
    await assert.rejects(
      deleteDataset(s, T, id),
      (e: any) => e.status === 409 && e.code === 'DATASET_IN_USE' && e.message.includes(job.id),
    );
    await s.lifecycle.cancel(T, job.id, 'api');
    const deleted = await deleteDataset(s, T, id);
    assert.equal(deleted.deleted, true);
    assert.equal(await ports.store.head(datasetKeys(T, id).data), undefined);
    assert.ok(!(await listDatasets(s, T, { limit: '100' })).datasets.some((d) => d.id === id));
    await assert.rejects(deleteDataset(s, T, id), { status: 404 });
  });

  it("refuses a new dataset once the tenant's datasets fill its storage quota", async () => {
    const small = createServices(ports.store, ports.queue, {
      log: quiet,
      limits: { ...DEFAULT_LIMITS, maxStorageBytes: 1 },
    });
    // A tenant of its own: the other cases' datasets do not count against it.
    const first = await createDataset(small, 'quota', { name: 'd.csv', format: 'csv' });
    await ports.store.put(datasetKeys('quota', first.datasetId).data, CSV);
    await assert.rejects(createDataset(small, 'quota', { name: 'more.csv', format: 'csv' }), (e: any) => {
      assert.equal(e.status, 413);
      assert.equal(e.code, 'STORAGE_QUOTA_EXCEEDED');
      assert.match(e.message, /delete datasets/);
      return true;
    });
  });

  it('holds the largest upload for each dataset created but not uploaded, until its URL expires', async () => {
    const limits = { ...DEFAULT_LIMITS, maxStorageBytes: 25_000, maxDatasetBytes: 10_000 };
    const small = createServices(ports.store, ports.queue, { log: quiet, limits });
    const create = (services: Services) => createDataset(services, 'held', { name: 'd.csv', format: 'csv' });
    const a = await create(small);
    const b = await create(small);
    await create(small);
    // Three datasets still to upload hold 30,000 bytes: a fourth is refused before any byte arrives.
    await assert.rejects(create(small), (e: any) => {
      assert.equal(e.code, 'STORAGE_QUOTA_EXCEEDED');
      assert.equal(e.details.reservedBytes, 30_000);
      assert.match(e.message, /held for datasets created .* whose data has not arrived/);
      return true;
    });
    // Their data arrives (small): only the third still holds its share.
    await ports.store.put(datasetKeys('held', a.datasetId).data, CSV);
    await ports.store.put(datasetKeys('held', b.datasetId).data, CSV);
    await create(small);
    // Once the upload URLs have expired, nothing is held any more.
    const later = createServices(ports.store, ports.queue, {
      log: quiet,
      limits,
      now: () => new Date(Date.now() + (limits.uploadUrlSeconds + 60) * 1000),
    });
    await create(later);
    await create(later);
  });

  it('validates a spec in a dry run before its data exists, storing nothing', async () => {
    const before = (await s.lifecycle.jobs.listIds(T, { limit: 100 })).ids.length;
    const ok = await validateJob(s, T, { task: 'regression', dataset: { id: '<datasetId>', label: 'y' } });
    assert.deepEqual(ok.checked, ['spec', 'baseModel', 'activeJobs']);
    assert.equal((ok.spec.dataset as { id?: string }).id, undefined);
    await assert.rejects(validateJob(s, T, { task: 'clustering', dataset: { label: 'y' } }), (e: any) => {
      assert.equal(e.status, 400);
      assert.ok(e.details.problems.some((p: { path: string }) => p.path === 'task'));
      return true;
    });
    const id = await upload();
    await assert.rejects(
      validateJob(s, T, { task: 'classification', dataset: { id, label: 'nope' } }),
      /no column "nope"/,
    );
    const full = await validateJob(s, T, { task: 'classification', dataset: { id, label: 'label' } });
    assert.ok(full.checked.includes('dataset'));
    assert.equal((await s.lifecycle.jobs.listIds(T, { limit: 100 })).ids.length, before);
  });

  it('refuses predictions from a job that has no model yet, or none at all, before running anything', async () => {
    const id = await upload();
    const job = (await submitJob(s, T, { task: 'classification', dataset: { id, label: 'label' } })).record;
    await assert.rejects(predictOnline(s, unreachable, T, job.id, { rows: [{ a: 1, b: 2 }] }), {
      status: 409,
      code: 'NOT_READY',
    });
    await assert.rejects(predictOnline(s, unreachable, T, '01M8JH2TQYPMBNJ50HMGRP3N6M', { rows: [{}] }), {
      status: 404,
    });
    await assert.rejects(
      predictOnline(s, unreachable, T, job.id, { rows: Array.from({ length: 1001 }, () => ({})) }),
      { status: 400 },
    );
    await assert.rejects(submitPredictions(s, T, job.id, { datasetId: id }), { status: 409 });
    await s.lifecycle.cancel(T, job.id, 'api');
  });
});
