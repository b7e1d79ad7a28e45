/**
 * The active-jobs quota is atomic: concurrent submits of one tenant never hold more slots than the
 * quota, the 429 states the true count, a job's end frees its slot, and a slot left by a crash is
 * swept once its grace period has passed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SLOT_GRACE_MS } from '../../core/jobs/active-jobs.ts';
import { submitJob } from '../../core/jobs/job-service.ts';
import { TooManyRequestsError } from '../../core/platform/errors.ts';
import { activeSlotKey } from '../../core/platform/keys.ts';
import { createServices, type Services } from '../../core/services.ts';
import { type LocalPorts, localPorts, putDataset } from '../helpers/local-ports.ts';
import { quiet } from '../helpers/trainer.ts';

const CSV = 'x1,label\n1,a\n2,b\n3,a\n4,b\n';

describe('active-jobs quota', () => {
  let ports: LocalPorts;
  let services: Services;
  let clock = Date.parse('2026-05-01T10:00:00Z');
  const limit = 20;
  before(async () => {
    ports = await localPorts();
    services = createServices(ports.store, ports.queue, {
      log: quiet,
      now: () => new Date(clock),
      limits: { ...createServices(ports.store, ports.queue).limits, maxActiveJobs: limit },
    });
  });
  after(async () => {
    await ports?.cleanup();
  });

  const spec = (datasetId: string) => ({
    task: 'classification',
    dataset: { id: datasetId, label: 'label' },
    training: { epochs: 1 },
  });

  it(`40 concurrent submits with a quota of ${limit}: exactly ${limit} are accepted, the rest get a 429 with the true count`, async () => {
    const tenant = 'racers';
    const dataset = await putDataset(ports.store, tenant, services.newId(), CSV);
    await submitJob(services, tenant, spec(dataset)); // counts the rows once, so the race is on the quota
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, () => submitJob(services, tenant, spec(dataset))),
    );
    const accepted = results.filter((r) => r.status === 'fulfilled');
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    assert.equal(accepted.length, limit - 1);
    assert.equal(refused.length, 40 - (limit - 1));
    for (const error of refused) {
      assert.ok(error instanceof TooManyRequestsError, String(error));
      assert.match(error.message, new RegExp(`has ${limit} queued or running jobs.*\\(${limit}\\)`));
    }
    assert.equal(await services.lifecycle.activeJobs.count(tenant), limit);
    const queued = (await services.lifecycle.jobs.listIds(tenant, { limit: 100 })).ids.length;
    assert.equal(queued, limit, 'no refused submit left a job behind');
    assert.equal((await ports.queue.depth()).visible, limit);
  });

  it('a job that ends frees its slot: the next submit is accepted', async () => {
    const tenant = 'one-slot';
    const small = createServices(ports.store, ports.queue, {
      log: quiet,
      now: () => new Date(clock),
      limits: { ...services.limits, maxActiveJobs: 1 },
    });
    const dataset = await putDataset(ports.store, tenant, small.newId(), CSV);
    const first = await submitJob(small, tenant, spec(dataset));
    await assert.rejects(submitJob(small, tenant, spec(dataset)), /has 1 queued or running jobs/);
    await small.lifecycle.cancel(tenant, first.record.id, 'api');
    assert.equal(await small.lifecycle.activeJobs.count(tenant), 0);
    await submitJob(small, tenant, spec(dataset));
  });

  it('a slot whose job was never stored (a crash) is swept once its grace period has passed', async () => {
    const tenant = 'crashed';
    const small = createServices(ports.store, ports.queue, {
      log: quiet,
      now: () => new Date(clock),
      limits: { ...services.limits, maxActiveJobs: 1 },
    });
    const dataset = await putDataset(ports.store, tenant, small.newId(), CSV);
    // What a submit that crashed between its reservation and its record leaves.
    await ports.store.put(
      activeSlotKey(tenant, 0),
      JSON.stringify({ jobId: small.newId(), at: new Date(clock).toISOString() }),
    );
    await assert.rejects(submitJob(small, tenant, spec(dataset)), /has 1 queued or running jobs/);
    clock += SLOT_GRACE_MS;
    const accepted = await submitJob(small, tenant, spec(dataset));
    assert.equal(accepted.record.activeSlot, 0);
  });
});
