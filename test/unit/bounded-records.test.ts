/**
 * Records and lists stay small whatever a job does: info and warning events stop at `MAX_EVENTS`
 * (state changes are always kept, nothing is removed, so a follower by position misses none), and a
 * long per-epoch history is answered within the list budget, its last epoch included, and so is the
 * report of a job with thousands of classes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getMetrics, getResult, submitJob } from '../../core/jobs/job-service.ts';
import { jobKeys } from '../../core/platform/keys.ts';
import { LIST_RESPONSE_BYTES, MAX_EVENTS } from '../../core/platform/limits.ts';
import { withinBytes } from '../../core/platform/text.ts';
import { createServices, type Services } from '../../core/services.ts';
import { type LocalPorts, localPorts, putDataset } from '../helpers/local-ports.ts';
import { quiet, TENANT } from '../helpers/trainer.ts';

describe('bounded records', () => {
  let ports: LocalPorts;
  let services: Services;
  let jobId: string;
  before(async () => {
    ports = await localPorts();
    services = createServices(ports.store, ports.queue, { log: quiet });
    const dataset = await putDataset(ports.store, TENANT, services.newId(), 'x,label\n1,a\n2,b\n');
    const { record } = await submitJob(services, TENANT, {
      task: 'classification',
      dataset: { id: dataset, label: 'label' },
    });
    jobId = record.id;
  });
  after(async () => {
    await ports?.cleanup();
  });

  it('keeps at most MAX_EVENTS info and warning events, every state change, and bounds each message', async () => {
    const jobs = services.lifecycle.jobs;
    const at = new Date().toISOString();
    for (let i = 0; i < MAX_EVENTS + 20; i++)
      await jobs.appendEvent(TENANT, jobId, { at, type: 'info', message: `${i}: ${'m'.repeat(5000)}` });
    await services.lifecycle.cancel(TENANT, jobId, 'api');
    const events = await jobs.events(TENANT, jobId);
    const others = events.filter((e) => e.type !== 'state');
    assert.equal(others.length, MAX_EVENTS);
    assert.match(others.at(-1)?.message ?? '', /Later info and warning events are not kept/);
    assert.deepEqual(
      events.filter((e) => e.type === 'state').map((e) => e.status),
      ['QUEUED', 'CANCELLED'],
    );
    assert.ok(events.every((e) => e.message.length < 2100));
    assert.ok(JSON.stringify(events).length < 1024 * 1024);
  });

  it('answers a long per-epoch history within the list budget, with its last epoch', async () => {
    const history = Array.from({ length: 30_000 }, (_, i) => ({
      epoch: i + 1,
      loss: 1 / (i + 1),
      valLoss: 2 / (i + 1),
      accuracy: 0.5,
      learningRate: 0.001,
    }));
    await ports.store.put(jobKeys(TENANT, jobId).metrics, JSON.stringify(history));
    const answer = await getMetrics(services, TENANT, jobId);
    assert.ok(Buffer.byteLength(JSON.stringify(answer)) <= LIST_RESPONSE_BYTES + 1024);
    assert.equal(answer.totalEpochs, 30_000);
    assert.ok((answer.sampledEvery ?? 0) > 1);
    assert.equal(answer.epochs.at(-1)?.epoch, 30_000);
  });

  it('answers the result of a job with a huge report within the budget, naming what it left out', async () => {
    const dataset = await putDataset(ports.store, TENANT, services.newId(), 'x,label\n1,a\n2,b\n');
    const { record } = await submitJob(services, TENANT, {
      task: 'classification',
      dataset: { id: dataset, label: 'label' },
    });
    const claim = await services.lifecycle.claim(TENANT, record.id, 'cpu');
    assert.equal(claim.kind, 'running');
    await services.lifecycle.finish(
      TENANT,
      record.id,
      { attempt: 1 },
      {
        status: 'SUCCEEDED',
        message: () => 'done',
      },
    );
    const classes = Array.from({ length: 800 }, (_, i) => `class-${i}`);
    const report = {
      task: 'classification',
      classes,
      validation: {
        accuracy: 0.5,
        loss: 1.2,
        confusionMatrix: classes.map(() => classes.map(() => 3)),
      },
    };
    await ports.store.put(jobKeys(TENANT, record.id).report, JSON.stringify(report));
    const answer = await getResult(services, TENANT, record.id);
    assert.ok(Buffer.byteLength(JSON.stringify(answer)) <= LIST_RESPONSE_BYTES + 4096);
    assert.deepEqual((answer as { reportOmitted?: string[] }).reportOmitted, ['validation.confusionMatrix']);
    assert.deepEqual(answer.metrics, { accuracy: 0.5, loss: 1.2 });
    assert.equal(
      (answer.report as { classes: string[] }).classes.length,
      800,
      'the rest of the report is kept',
    );
    assert.ok(answer.artifacts['report.json'], 'the whole report stays behind its URL');
  });

  it('cuts a JSON object by its largest parts, a field or the part that makes up most of one', () => {
    const value = {
      a: 'x'.repeat(100),
      b: { big: 'y'.repeat(1000), small: 1 },
      c: { p: 'z'.repeat(300), q: 'z'.repeat(300) },
    };
    assert.deepEqual(withinBytes(value, 5000), { value, omitted: [] });
    const cut = withinBytes(value, 500);
    assert.deepEqual(cut.omitted, ['b.big', 'c']);
    assert.deepEqual(cut.value, { a: 'x'.repeat(100), b: { small: 1 } });
    assert.ok(value.b.big, 'the input is not changed');
  });
});
