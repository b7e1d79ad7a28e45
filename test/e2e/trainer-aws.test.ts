/**
 * The AWS Batch entry (`trainer/main.ts`) as Batch runs it: a child process started for one job (its
 * tenant and id in the environment), on S3 through the AWS SDK against the in-process fauxqs emulator,
 * with job state-change events put on a stand-in EventBridge endpoint (a loopback server that records
 * the SDK's PutEvents requests). It trains the job and exits 0; it exits 78 (and prints the
 * `gpuUnavailable` metric) when it must have a GPU and has none; 75 on SIGTERM, for Batch to retry;
 * 2 on a bad setting; and 0 at once when another Batch job runs the job. (The GPU image itself is
 * not built here: no Docker engine, no GPU.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { type FauxqsServer, startFauxqs } from 'fauxqs';
import { S3ObjectStore } from '../../aws/s3-object-store.ts';
import { SqsJobQueue } from '../../aws/sqs-job-queue.ts';
import { submitJob } from '../../core/jobs/job-service.ts';
import { ENV } from '../../core/platform/config.ts';
import { datasetKeys } from '../../core/platform/keys.ts';
import { createServices, type Services } from '../../core/services.ts';

const TENANT = 'acme';
const BUCKET = 'descent-e2e';
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
const ROOT = new URL('../../', import.meta.url).pathname;

interface Run {
  readonly code: number | null;
  readonly output: string;
}

describe('trainer/main.ts on AWS Batch (one job per container)', () => {
  let emulator: FauxqsServer;
  let events: Server;
  const putEvents: { Source: string; DetailType: string; Detail: string }[] = [];
  let s3: S3Client;
  let sqs: SQSClient;
  let services: Services;
  let datasetId: string;

  /** Runs the trainer for `jobId` with `env` over a Batch-like environment; `onOutput` watches it run. */
  const runTrainer = (
    jobId: string | undefined,
    env: Record<string, string> = {},
    onOutput?: (output: string, kill: (signal: NodeJS.Signals) => void) => void,
  ): Promise<Run> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, ['trainer/main.ts'], {
        cwd: ROOT,
        env: {
          ...process.env,
          [ENV.bucket]: BUCKET,
          [ENV.eventBus]: 'default',
          [ENV.backend]: 'cpu',
          [ENV.jobTenant]: TENANT,
          ...(jobId ? { [ENV.jobId]: jobId } : {}),
          [ENV.instanceTypes]: JSON.stringify([
            { type: 'g5.xlarge', vcpus: 4, gpu: 'A10G', hourlyPriceUsd: 1.006 },
          ]),
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: credentials.accessKeyId,
          AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
          AWS_ENDPOINT_URL_S3: emulator.address,
          AWS_ENDPOINT_URL_EVENTBRIDGE: `http://127.0.0.1:${(events.address() as AddressInfo).port}`,
          AWS_BATCH_JOB_ID: 'batch-job-1',
          ...env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      const collect = (chunk: Buffer) => {
        output += chunk;
        onOutput?.(output, (signal) => child.kill(signal));
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      child.once('exit', (code) => resolve({ code, output }));
    });

  const newJob = async (epochs: number) =>
    (
      await submitJob(services, TENANT, {
        task: 'classification',
        dataset: { id: datasetId, label: 'label' },
        training: { epochs, seed: 1 },
      })
    ).record.id;
  const statusOf = async (jobId: string) => (await services.lifecycle.jobs.get(TENANT, jobId)).record;

  before(async () => {
    emulator = await startFauxqs({ port: 0, logger: false });
    emulator.createBucket(BUCKET);
    const queueUrl = emulator.createQueue('jobs').queueUrl.replace(/^http:\/\/[^/]+/, emulator.address);
    // EventBridge's JSON protocol: POST / with X-Amz-Target AWSEvents.PutEvents.
    events = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => {
        body += chunk;
      });
      request.on('end', () => {
        if (String(request.headers['x-amz-target']).endsWith('PutEvents')) {
          putEvents.push(...(JSON.parse(body) as { Entries: (typeof putEvents)[number][] }).Entries);
        }
        response.setHeader('content-type', 'application/x-amz-json-1.1');
        response.end(JSON.stringify({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] }));
      });
    });
    await new Promise<void>((resolve) => events.listen(0, '127.0.0.1', resolve));
    s3 = new S3Client({ endpoint: emulator.address, forcePathStyle: true, region: 'us-east-1', credentials });
    sqs = new SQSClient({ endpoint: emulator.address, region: 'us-east-1', credentials });
    services = createServices(
      new S3ObjectStore({ client: s3, bucket: BUCKET }),
      new SqsJobQueue({ client: sqs, queueUrl }),
    );
    datasetId = services.newId();
    const keys = datasetKeys(TENANT, datasetId);
    await services.store.put(
      keys.meta,
      JSON.stringify({ id: datasetId, name: 'd', format: 'csv', createdAt: new Date().toISOString() }),
    );
    const rows = Array.from({ length: 40 }, (_, i) => `${i % 2},${(i * 7) % 5},${i % 2 ? 'odd' : 'even'}`);
    await services.store.put(keys.data, `a,b,label\n${rows.join('\n')}\n`);
  });

  after(async () => {
    events?.close();
    s3?.destroy();
    sqs?.destroy();
    await emulator?.stop();
  });

  it('trains the job it was started for, prints its metrics, puts its state changes on EventBridge and exits 0', async () => {
    const jobId = await newJob(3);
    const run = await runTrainer(jobId);
    assert.equal(run.code, 0, run.output);
    const record = await statusOf(jobId);
    assert.equal(record.status, 'SUCCEEDED', run.output);
    assert.equal(record.attempt, 1);
    const line = run.output.split('\n').find((l) => l.includes('"jobsSucceeded"'));
    assert.ok(line, run.output);
    const emf = JSON.parse(line) as Record<string, unknown> & {
      _aws: { CloudWatchMetrics: { Namespace: string }[] };
    };
    assert.equal(emf._aws.CloudWatchMetrics[0]?.Namespace, 'descent');
    assert.equal(typeof emf.trainingSeconds, 'number');
    assert.match(run.output, /"trainerStarted":1/);
    const mine = putEvents.filter((e) => JSON.parse(e.Detail).jobId === jobId);
    assert.deepEqual(
      mine.map((e) => [e.Source, e.DetailType, JSON.parse(e.Detail).status]),
      [
        ['descent', 'Descent Job State Change', 'RUNNING'],
        ['descent', 'Descent Job State Change', 'SUCCEEDED'],
      ],
    );
  });

  it('exits 78 with the gpuUnavailable metric, before claiming the job, when it must have a GPU and has none', async () => {
    const jobId = await newJob(3);
    const run = await runTrainer(jobId, { [ENV.requireGpu]: 'true' });
    assert.equal(run.code, 78, run.output);
    assert.match(run.output, /"gpuUnavailable":1/);
    assert.match(run.output, /no GPU: refusing to train on the CPU/);
    assert.equal((await statusOf(jobId)).status, 'QUEUED');
  });

  it('stops at the end of an epoch on SIGTERM and exits 75, for AWS Batch to retry from the checkpoint', async () => {
    const jobId = await newJob(100_000);
    let sent = false;
    const run = await runTrainer(jobId, {}, (output, kill) => {
      if (!sent && output.includes('"job started"')) {
        sent = true;
        kill('SIGTERM');
      }
    });
    assert.equal(run.code, 75, run.output);
    const record = await statusOf(jobId);
    assert.equal(record.status, 'RUNNING');
    const events = await services.lifecycle.jobs.events(TENANT, jobId);
    assert.ok(
      events.some((e) => /interrupted/.test(e.message)),
      JSON.stringify(events),
    );
    await services.lifecycle.cancel(TENANT, jobId, 'api');
  });

  it('exits 0 at once, touching nothing, when another Batch job runs its job (a duplicate submit)', async () => {
    const jobId = await newJob(3);
    assert.equal(await services.lifecycle.dispatched(TENANT, jobId, 'batch-job-other'), 'recorded');
    const run = await runTrainer(jobId, { AWS_BATCH_JOB_ID: 'batch-job-duplicate' });
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /another Batch job runs this job/);
    assert.equal((await statusOf(jobId)).status, 'QUEUED');
  });

  it('exits 2 naming the setting when its job is not given', async () => {
    const run = await runTrainer(undefined);
    assert.equal(run.code, 2, run.output);
    assert.match(run.output, /DESCENT_JOB_ID is required/);
  });
});
