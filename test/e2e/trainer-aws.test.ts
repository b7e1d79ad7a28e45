/**
 * The AWS trainer entry (`trainer/main.ts`) as ECS runs it, as a child process: S3 and SQS through the
 * AWS SDK against the in-process fauxqs emulator, a stand-in ECS agent for task scale-in protection.
 * It trains a queued job, protects its task while it trains, prints the job's metrics, and exits 0 on
 * SIGTERM. (The GPU image itself is not built here: no Docker engine.)
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { type FauxqsServer, startFauxqs } from 'fauxqs';
import { S3ObjectStore } from '../../aws/s3-object-store.ts';
import { SqsJobQueue } from '../../aws/sqs-job-queue.ts';
import { submitJob } from '../../core/jobs/job-service.ts';
import { JobStore } from '../../core/jobs/job-store.ts';
import { ENV } from '../../core/platform/config.ts';
import { datasetKeys } from '../../core/platform/keys.ts';
import { createServices } from '../../core/services.ts';
import { eventually } from '../helpers/eventually.ts';

const TENANT = 'acme';
const BUCKET = 'descent-e2e';
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };

/** Resolves when `predicate` holds; rejects after `ms`. */
const waitFor = (predicate: () => boolean | Promise<boolean>, ms: number, what: string) =>
  eventually(predicate, (ok) => ok, { timeoutMs: ms, intervalMs: 25, what });

describe('trainer/main.ts on the AWS adapters', () => {
  let emulator: FauxqsServer;
  let agent: Server;
  const protections: { ProtectionEnabled: boolean; ExpiresInMinutes?: number }[] = [];
  let trainer: ChildProcess;
  let output = '';
  let s3: S3Client;
  let sqs: SQSClient;

  before(async () => {
    emulator = await startFauxqs({ port: 0, logger: false });
    emulator.createBucket(BUCKET);
    // Queue URLs name a host that does not resolve here; the emulator answers on its own address.
    const queueUrl = emulator.createQueue('jobs').queueUrl.replace(/^http:\/\/[^/]+/, emulator.address);
    agent = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => {
        body += chunk;
      });
      request.on('end', () => {
        protections.push(JSON.parse(body));
        response.end(
          JSON.stringify({ protection: { ProtectionEnabled: JSON.parse(body).ProtectionEnabled } }),
        );
      });
    });
    await new Promise<void>((resolve) => agent.listen(0, '127.0.0.1', resolve));

    s3 = new S3Client({ endpoint: emulator.address, forcePathStyle: true, region: 'us-east-1', credentials });
    sqs = new SQSClient({ endpoint: emulator.address, region: 'us-east-1', credentials });
    const services = createServices(
      new S3ObjectStore({ client: s3, bucket: BUCKET }),
      new SqsJobQueue({ client: sqs, queueUrl }),
    );
    const datasetId = services.newId();
    const keys = datasetKeys(TENANT, datasetId);
    await services.store.put(
      keys.meta,
      JSON.stringify({ id: datasetId, name: 'd', format: 'csv', createdAt: new Date().toISOString() }),
    );
    const rows = Array.from({ length: 40 }, (_, i) => `${i % 2},${(i * 7) % 5},${i % 2 ? 'odd' : 'even'}`);
    await services.store.put(keys.data, `a,b,label\n${rows.join('\n')}\n`);

    trainer = spawn(process.execPath, ['trainer/main.ts'], {
      cwd: new URL('../../', import.meta.url).pathname,
      env: {
        ...process.env,
        [ENV.bucket]: BUCKET,
        [ENV.queueUrl]: queueUrl,
        [ENV.backend]: 'cpu',
        [ENV.taskProtectionMinutes]: '30',
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        AWS_ENDPOINT_URL_S3: emulator.address,
        AWS_ENDPOINT_URL_SQS: emulator.address,
        ECS_AGENT_URI: `http://127.0.0.1:${(agent.address() as AddressInfo).port}/api/task-1`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trainer.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    trainer.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    await waitFor(() => output.includes('"trainer ready"'), 20_000, 'the trainer to start');

    const { record } = await submitJob(services, TENANT, {
      task: 'classification',
      dataset: { id: datasetId, label: 'label' },
      training: { epochs: 3, seed: 1 },
    });
    const jobs = new JobStore(services.store);
    await waitFor(
      async () => ['SUCCEEDED', 'FAILED'].includes((await jobs.get(TENANT, record.id)).record.status),
      30_000,
      'the job to finish',
    );
    assert.equal((await jobs.get(TENANT, record.id)).record.status, 'SUCCEEDED', output);
  });

  after(async () => {
    if (trainer && trainer.exitCode === null) trainer.kill('SIGKILL');
    agent?.close();
    s3?.destroy();
    sqs?.destroy();
    await emulator?.stop();
  });

  it('protects its task while the job trains, and drops the protection after', async () => {
    await waitFor(() => protections.length >= 2, 5000, 'the protection to be dropped');
    assert.deepEqual(protections.slice(0, 2), [
      { ProtectionEnabled: true, ExpiresInMinutes: 30 },
      { ProtectionEnabled: false },
    ]);
  });

  it('prints the finished job as embedded-format metrics on stdout', async () => {
    // Printed by the job lifecycle's subscriber just after the record says SUCCEEDED.
    await waitFor(() => output.includes('"jobsSucceeded"'), 5000, 'the job-end metric');
    const line = output.split('\n').find((l) => l.includes('"jobsSucceeded"'));
    assert.ok(line, output);
    const emf = JSON.parse(line) as Record<string, unknown> & {
      _aws: { CloudWatchMetrics: { Namespace: string }[] };
    };
    assert.equal(emf._aws.CloudWatchMetrics[0]?.Namespace, 'descent');
    assert.equal(emf.jobsSucceeded, 1);
    assert.equal(typeof emf.trainingSeconds, 'number');
    assert.equal(emf.tenant, TENANT);
  });

  it('stops on SIGTERM and exits 0', async () => {
    const exited = new Promise<number | null>((resolve) => trainer.once('exit', (code) => resolve(code)));
    trainer.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(output, /"message":"stopping".*"signal":"SIGTERM"/);
  });
});
