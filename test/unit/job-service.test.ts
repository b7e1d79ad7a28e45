/**
 * The job service does not hide trouble: a record that cannot be read fails a listing instead of
 * vanishing from it, and a storage outage while checking a base model is not the caller's 400.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { listJobs, submitJob } from '../../core/jobs/job-service.ts';
import { CorruptDocumentError } from '../../core/platform/errors.ts';
import { jobKeys } from '../../core/platform/keys.ts';
import { createServices, type Services } from '../../core/services.ts';
import { type LocalPorts, localPorts, putDataset, storeWith } from '../helpers/local-ports.ts';
import { quiet, TENANT } from '../helpers/trainer.ts';

describe('job service', () => {
  let ports: LocalPorts;
  let services: Services;
  let datasetId: string;
  before(async () => {
    ports = await localPorts();
    services = createServices(ports.store, ports.queue, { log: quiet });
    datasetId = await putDataset(ports.store, TENANT, services.newId(), 'a,label\n1,x\n2,y\n3,x\n4,y\n');
  });
  after(async () => {
    await ports.cleanup();
  });

  it('a record that fails its schema fails the listing, naming it, instead of being left out', async () => {
    const { record } = await submitJob(services, TENANT, {
      task: 'classification',
      dataset: { id: datasetId, label: 'label' },
    });
    assert.equal((await listJobs(services, TENANT, {})).jobs.length >= 1, true);
    await ports.store.put(
      jobKeys(TENANT, record.id).record,
      JSON.stringify({ id: record.id, status: 'WHAT' }),
    );
    await assert.rejects(
      listJobs(services, TENANT, {}),
      (e: unknown) => e instanceof CorruptDocumentError && e.message.includes(record.id),
    );
  });

  it('a storage outage while checking a base model is not a 400 blaming the request', async () => {
    const down = storeWith(ports.store, {
      get: async (key, options) => {
        if (key.endsWith('/job.json')) throw new Error('S3 is unreachable');
        return ports.store.get(key, options);
      },
    });
    const s = createServices(down, ports.queue, { log: quiet });
    await assert.rejects(
      submitJob(s, TENANT, {
        task: 'classification',
        dataset: { id: datasetId, label: 'label' },
        model: { baseModel: { jobId: '01M8JH2TQYPMBNJ50HMGRP3N6M' } },
      }),
      (e: unknown) =>
        !(typeof (e as { status?: number }).status === 'number') && /unreachable/.test(String(e)),
    );
  });
});
