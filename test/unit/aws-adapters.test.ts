/**
 * The AWS adapters added for Batch, on the real SDK with its HTTP layer answered in process: what
 * SubmitJob, ListJobs, TerminateJob and PutEvents send; a presigned PUT URL without the SDK's
 * empty-body checksum; ports built only from the settings a function was given; and how a trainer
 * tells its instance type (and price) from `nvidia-smi` and its vCPUs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchClient } from '@aws-sdk/client-batch';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import { SdkBatchJobs } from '../../aws/batch-jobs.ts';
import { eventBridgeSink } from '../../aws/eventbridge-events.ts';
import { S3ObjectStore } from '../../aws/s3-object-store.ts';
import { awsPorts, newS3Client, type PortMakers } from '../../aws/services.ts';
import { ENV } from '../../core/platform/config.ts';
import { identifyInstance, maxvCpusFor } from '../../core/platform/gpu-instances.ts';
import { loadRuntimeConfig } from '../../core/platform/runtime-config.ts';
import { parseGpuSamples, probeGpus } from '../../trainer/gpu-probe.ts';
import { instanceOf } from '../../trainer/main.ts';
import { jsonResponse, recordedHttp } from '../helpers/recorded-http.ts';

const QUEUE = 'arn:aws:batch:eu-west-1:123456789012:job-queue/descent';
const DEFINITION = 'arn:aws:batch:eu-west-1:123456789012:job-definition/trainer:7';
const JOB_ID = '01M8JH2TQYPMBNJ50HMGRP3N6M';

describe('SdkBatchJobs', () => {
  it('submits the trainer for one job: its name, queue, definition, tenant and id, and attempt limit', async () => {
    const http = recordedHttp(() =>
      jsonResponse({ jobId: 'b-1', jobName: `descent-acme-${JOB_ID}`, jobArn: 'arn' }),
    );
    const batch = new SdkBatchJobs({
      client: new BatchClient(http.clientConfig),
      jobQueue: QUEUE,
      jobDefinition: DEFINITION,
    });
    assert.equal(await batch.submit({ tenant: 'acme', jobId: JOB_ID, attemptDurationSeconds: 4500 }), 'b-1');
    const [request] = http.requests;
    assert.equal(request?.path, '/v1/submitjob');
    assert.deepEqual(JSON.parse(request?.body ?? '{}'), {
      jobName: `descent-acme-${JOB_ID}`,
      jobQueue: QUEUE,
      jobDefinition: DEFINITION,
      containerOverrides: {
        environment: [
          { name: ENV.jobTenant, value: 'acme' },
          { name: ENV.jobId, value: JOB_ID },
        ],
      },
      timeout: { attemptDurationSeconds: 4500 },
    });
  });

  it('finds a job by name across pages, and terminates with a reason', async () => {
    let page = 0;
    const http = recordedHttp((request) => {
      if (request.path === '/v1/terminatejob') return jsonResponse({});
      page++;
      return page === 1
        ? jsonResponse({ jobSummaryList: [{ jobId: 'b-0', jobName: 'other' }], nextToken: 't' })
        : jsonResponse({ jobSummaryList: [{ jobId: 'b-2', jobName: `descent-acme-${JOB_ID}` }] });
    });
    const batch = new SdkBatchJobs({
      client: new BatchClient(http.clientConfig),
      jobQueue: QUEUE,
      jobDefinition: DEFINITION,
    });
    assert.equal(await batch.find(`descent-acme-${JOB_ID}`), 'b-2');
    const list = JSON.parse(http.requests[1]?.body ?? '{}');
    assert.deepEqual(list, {
      jobQueue: QUEUE,
      filters: [{ name: 'JOB_NAME', values: [`descent-acme-${JOB_ID}`] }],
      nextToken: 't',
    });
    await batch.terminate('b-2', 'descent: cancelled (CANCELLING)');
    assert.deepEqual(JSON.parse(http.requests.at(-1)?.body ?? '{}'), {
      jobId: 'b-2',
      reason: 'descent: cancelled (CANCELLING)',
    });
  });
});

describe('SdkBatchJobs.list', () => {
  it("lists the queue's jobs in a state across pages, with when they were submitted and why they wait", async () => {
    let page = 0;
    const http = recordedHttp(() => {
      page++;
      return page === 1
        ? jsonResponse({
            jobSummaryList: [
              {
                jobId: 'b-1',
                jobName: 'n1',
                createdAt: 1700000000000,
                statusReason: 'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY',
              },
            ],
            nextToken: 't',
          })
        : jsonResponse({ jobSummaryList: [{ jobId: 'b-2', jobName: 'n2', createdAt: 1700000001000 }] });
    });
    const batch = new SdkBatchJobs({
      client: new BatchClient(http.clientConfig),
      jobQueue: QUEUE,
      jobDefinition: DEFINITION,
    });
    assert.deepEqual(await batch.list('RUNNABLE'), [
      {
        id: 'b-1',
        name: 'n1',
        createdAt: 1700000000000,
        statusReason: 'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY',
      },
      { id: 'b-2', name: 'n2', createdAt: 1700000001000 },
    ]);
    assert.deepEqual(JSON.parse(http.requests[0]?.body ?? '{}'), { jobQueue: QUEUE, jobStatus: 'RUNNABLE' });
    assert.equal(http.requests[0]?.path, '/v1/listjobs');
  });
});

describe('eventBridgeSink', () => {
  const detail = {
    tenant: 'acme',
    jobId: JOB_ID,
    name: 'n',
    status: 'FAILED' as const,
    previousStatus: 'RUNNING' as const,
    errorCode: 'TIMEOUT',
    attempt: 2,
    time: '2026-05-01T10:00:00.000Z',
  };

  it('puts one descent event with the detail on the named bus', async () => {
    const http = recordedHttp(() => jsonResponse({ FailedEntryCount: 0, Entries: [{ EventId: 'e' }] }));
    await eventBridgeSink(new EventBridgeClient(http.clientConfig), 'default')(detail);
    const body = JSON.parse(http.requests[0]?.body ?? '{}') as { Entries: Record<string, unknown>[] };
    assert.equal(http.requests[0]?.headers['x-amz-target'], 'AWSEvents.PutEvents');
    assert.equal(body.Entries.length, 1);
    assert.equal(body.Entries[0]?.Source, 'descent');
    assert.equal(body.Entries[0]?.DetailType, 'Descent Job State Change');
    assert.equal(body.Entries[0]?.EventBusName, 'default');
    assert.deepEqual(JSON.parse(String(body.Entries[0]?.Detail)), detail);
  });

  it('throws when EventBridge refuses the entry (the lifecycle logs it and carries on)', async () => {
    const http = recordedHttp(() =>
      jsonResponse({
        FailedEntryCount: 1,
        Entries: [{ ErrorCode: 'AccessDeniedException', ErrorMessage: 'no' }],
      }),
    );
    const sink = eventBridgeSink(new EventBridgeClient(http.clientConfig), 'default');
    await assert.rejects(async () => sink(detail), /AccessDeniedException/);
  });
});

describe('presigned uploads', () => {
  const credentials = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' };
  const params = async (client: S3Client) =>
    new URL(
      await new S3ObjectStore({ client, bucket: 'b' }).presignPut('tenants/acme/datasets/x/data', {
        expiresInSeconds: 900,
        contentType: 'text/csv',
      }),
    ).searchParams;

  it("carry no checksum with the project's S3 client, which the SDK's default would sign in", async () => {
    const mine = [...(await params(newS3Client({ region: 'eu-west-1', credentials }))).keys()];
    assert.deepEqual(
      mine.filter((k) => /checksum/i.test(k)),
      [],
      mine.join(', '),
    );
    assert.ok(mine.includes('X-Amz-Signature'));
    // The SDK's default (WHEN_SUPPORTED) signs a CRC32 of the empty body into the URL: what this guards against.
    const defaults = [...(await params(new S3Client({ region: 'eu-west-1', credentials }))).keys()];
    assert.ok(
      defaults.some((k) => /^x-amz-(sdk-)?checksum/i.test(k)),
      defaults.join(', '),
    );
  });
});

describe('awsPorts', () => {
  const made: string[] = [];
  const record = <T>(what: string, port: T): T => {
    made.push(what);
    return port;
  };
  const makers: PortMakers = {
    store: (bucket) => record(`store ${bucket}`, {} as never),
    queue: (url) => record(`queue ${url}`, {} as never),
    batch: (queue, definition) => record(`batch ${queue} ${definition}`, {} as never),
    events: (bus) => record(`events ${bus}`, () => {}),
  };

  it('builds only the ports whose settings the function was given', () => {
    made.length = 0;
    assert.deepEqual(Object.keys(awsPorts({}, makers)), []);
    assert.deepEqual(Object.keys(awsPorts({ [ENV.bucket]: 'b' }, makers)), ['store']);
    const all = awsPorts(
      {
        [ENV.bucket]: 'b',
        [ENV.queueUrl]: 'q',
        [ENV.batchJobQueue]: QUEUE,
        [ENV.batchJobDefinition]: DEFINITION,
        [ENV.eventBus]: 'default',
      },
      makers,
    );
    assert.deepEqual(Object.keys(all).sort(), ['batch', 'events', 'queue', 'store']);
    assert.deepEqual(made, [
      'store b',
      'store b',
      'queue q',
      `batch ${QUEUE} ${DEFINITION}`,
      'events default',
    ]);
  });
});

describe('the trainer on a GPU instance', () => {
  const catalogue = [
    { type: 'g5.xlarge', vcpus: 4, gpu: 'A10G', hourlyPriceUsd: 1.006 },
    { type: 'g5.2xlarge', vcpus: 8, gpu: 'A10G', hourlyPriceUsd: 1.212 },
    { type: 'g4dn.xlarge', vcpus: 4, gpu: 'Tesla T4', hourlyPriceUsd: 0.526 },
  ];
  const config = loadRuntimeConfig({ [ENV.hourlyPriceUsd]: '0.1' });

  it("reads nvidia-smi's CSV (one line per GPU), and answers undefined without it", async () => {
    assert.deepEqual(parseGpuSamples('NVIDIA A10G, 87, 20314, 23028\nbad line\n'), [
      { name: 'NVIDIA A10G', utilizationPercent: 87, memoryUsedMiB: 20314, memoryTotalMiB: 23028 },
    ]);
    // Recorded from nvidia-smi on a real GPU host (an H200, 16 vCPUs): not a type descent deploys.
    const h200 = await probeGpus(async () => 'NVIDIA H200, 0, 0, 143771\n');
    assert.deepEqual(h200, [
      { name: 'NVIDIA H200', utilizationPercent: 0, memoryUsedMiB: 0, memoryTotalMiB: 143771 },
    ]);
    assert.equal(identifyInstance(catalogue, { gpuName: h200?.[0]?.name, vcpus: 16 }), undefined);
    assert.equal(await probeGpus(async () => undefined), undefined);
    assert.equal((await probeGpus(async () => 'Tesla T4, 3, 1, 15360\n'))?.[0]?.name, 'Tesla T4');
  });

  it('tells its instance type by GPU model and vCPUs, and prices an unknown host at the dearest type', () => {
    assert.equal(identifyInstance(catalogue, { gpuName: 'NVIDIA A10G', vcpus: 8 })?.type, 'g5.2xlarge');
    assert.equal(identifyInstance(catalogue, { gpuName: 'Tesla T4', vcpus: 4 })?.type, 'g4dn.xlarge');
    assert.equal(identifyInstance(catalogue, { gpuName: undefined, vcpus: 4 }), undefined);
    const gpu = (name: string) => [{ name, utilizationPercent: 0, memoryUsedMiB: 0, memoryTotalMiB: 1 }];
    assert.deepEqual(instanceOf({ catalogue, config }, gpu('NVIDIA A10G'), 4), {
      type: 'g5.xlarge',
      hourlyPriceUsd: 1.006,
    });
    assert.deepEqual(instanceOf({ catalogue, config }, gpu('NVIDIA H100'), 4), { hourlyPriceUsd: 1.212 });
    assert.deepEqual(instanceOf({ catalogue: [], config }, undefined, 2), { hourlyPriceUsd: 0.1 });
  });

  it('sizes the compute environment in vCPUs of the largest type', () => {
    assert.equal(maxvCpusFor(['g5.xlarge', 'g4dn.xlarge'], 4), 16);
    assert.equal(maxvCpusFor(['g6.xlarge', 'g5.2xlarge'], 4), 32);
  });
});
