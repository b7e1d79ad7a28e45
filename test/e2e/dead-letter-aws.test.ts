/**
 * The dead-letter Lambda handler as Lambda runs it (`handler`, AWS adapters from the environment), on
 * the in-process fauxqs emulator: it marks a dead-lettered job FAILED and prints `jobsDeadLettered`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { type FauxqsServer, startFauxqs } from 'fauxqs';
import { S3ObjectStore } from '../../aws/s3-object-store.ts';
import { SqsJobQueue } from '../../aws/sqs-job-queue.ts';
import { submitJob } from '../../core/jobs/job-service.ts';
import { ENV } from '../../core/platform/config.ts';
import { datasetKeys } from '../../core/platform/keys.ts';
import { createServices, type Services } from '../../core/services.ts';

const TENANT = 'acme';
const BUCKET = 'descent-dead-letters';
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };

describe('functions/dead-letter.ts on the AWS adapters', () => {
  let emulator: FauxqsServer;
  let s3: S3Client;
  let sqs: SQSClient;
  let services: Services;
  const saved = { ...process.env };

  before(async () => {
    emulator = await startFauxqs({ port: 0, logger: false });
    emulator.createBucket(BUCKET);
    const queueUrl = emulator.createQueue('jobs').queueUrl.replace(/^http:\/\/[^/]+/, emulator.address);
    // What the JobQueue construct sets on the function, plus the emulator's endpoints.
    Object.assign(process.env, {
      [ENV.bucket]: BUCKET,
      [ENV.queueUrl]: queueUrl,
      [ENV.maxAttempts]: '3',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_ENDPOINT_URL_S3: emulator.address,
      AWS_ENDPOINT_URL_SQS: emulator.address,
    });
    s3 = new S3Client({ endpoint: emulator.address, forcePathStyle: true, region: 'us-east-1', credentials });
    sqs = new SQSClient({ endpoint: emulator.address, region: 'us-east-1', credentials });
    services = createServices(
      new S3ObjectStore({ client: s3, bucket: BUCKET }),
      new SqsJobQueue({ client: sqs, queueUrl }),
    );
  });
  after(async () => {
    process.env = saved;
    s3?.destroy();
    sqs?.destroy();
    await emulator?.stop();
  });

  it('marks the job FAILED (MAX_ATTEMPTS) and prints one jobsDeadLettered line for the batch', async () => {
    const datasetId = services.newId();
    const keys = datasetKeys(TENANT, datasetId);
    await services.store.put(
      keys.meta,
      JSON.stringify({ id: datasetId, name: 'd', format: 'csv', createdAt: new Date().toISOString() }),
    );
    await services.store.put(keys.data, 'a,label\n1,x\n2,y\n3,x\n4,y\n');
    const { record } = await submitJob(services, TENANT, {
      task: 'classification',
      dataset: { id: datasetId, label: 'label' },
    });
    const jobs = services.lifecycle.jobs;
    // Three deliveries, each claimed by a worker that then died.
    for (let i = 0; i < 3; i++) await services.lifecycle.claim(TENANT, record.id, 'wasm');

    const { handler } = await import('../../functions/dead-letter.ts');
    const event = {
      Records: [
        { messageId: 'm1', body: JSON.stringify({ tenant: TENANT, jobId: record.id }) },
        { messageId: 'm2', body: 'not a job message' },
      ],
    } as unknown as SQSEvent;

    // Tee stdout (the test runner reads it too) to catch the metric line.
    const printed: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      printed.push(String(chunk));
      return write(chunk, ...rest);
    }) as typeof process.stdout.write;
    let response: Awaited<ReturnType<typeof handler>>;
    try {
      response = await handler(event);
    } finally {
      process.stdout.write = write;
    }

    assert.deepEqual(response.batchItemFailures, []);
    const failed = (await jobs.get(TENANT, record.id)).record;
    assert.equal(failed.status, 'FAILED');
    assert.equal(failed.error?.code, 'MAX_ATTEMPTS');
    const metrics = printed.filter((line) => line.includes('"_aws"'));
    assert.equal(metrics.length, 1, printed.join(''));
    const emf = JSON.parse(metrics[0] as string) as Record<string, unknown> & {
      _aws: { CloudWatchMetrics: { Namespace: string; Metrics: { Name: string }[] }[] };
    };
    assert.equal(emf.jobsDeadLettered, 1);
    assert.deepEqual(emf._aws.CloudWatchMetrics[0]?.Metrics, [{ Name: 'jobsDeadLettered', Unit: 'Count' }]);
  });
});
