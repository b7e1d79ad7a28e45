/** Datasets made before the listing markers existed are listed too (a once-per-tenant migration). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { listDatasets } from '../../core/datasets/dataset-catalog.ts';
import { createServices, type Services } from '../../core/services.ts';
import { type LocalPorts, localPorts, putDataset } from '../helpers/local-ports.ts';
import { quiet, TENANT } from '../helpers/trainer.ts';

describe('dataset catalog', () => {
  let ports: LocalPorts;
  let services: Services;
  before(async () => {
    ports = await localPorts();
    services = createServices(ports.store, ports.queue, { log: quiet });
  });
  after(async () => {
    await ports.cleanup();
  });

  it('lists datasets stored before their listing markers existed, newest first, once indexed', async () => {
    // As an earlier version stored them: a description and data, no marker.
    const older = await putDataset(ports.store, TENANT, services.newId(), 'a,label\n1,x\n');
    const newer = await putDataset(ports.store, TENANT, services.newId(), 'a,label\n2,y\n');
    const listed = await listDatasets(services, TENANT, {});
    assert.deepEqual(
      listed.datasets.map((d) => d.id),
      [newer, older],
    );
    assert.ok(await ports.store.head(`tenants/${TENANT}/migrations/dataset-index`));
    assert.equal((await listDatasets(services, TENANT, {})).datasets.length, 2, 'indexed once, listed again');
  });
});
