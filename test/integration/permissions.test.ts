/**
 * Least privilege, proven against the synthesized stack: every Lambda handler and the trainer run
 * their real code (the API's handlers, the dispatcher, Batch's event handler, the dead-letter and
 * sweep functions, a real training run on wasm) on ports that enforce the IAM statements synthesized
 * for their own role, built from their own synthesized environment (`test/helpers/enforced-ports.ts`).
 * One story drives them all (datasets, jobs, a cancel, sweeps, Batch events). Then, per function:
 * nothing was refused (a grant too small fails), and every granted (action, resource) pair was used
 * by its story, but for the few rare paths listed below with why (a grant too large fails).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { SQSEvent } from 'aws-lambda';
import { type AwsContext, awsPorts, composeAws } from '../../aws/services.ts';
import { NO_GRANTS } from '../../core/api/grants.ts';
import { routes } from '../../core/api/routes.ts';
import type { JobStateDetail } from '../../core/jobs/job-events.ts';
import { JobLifecycle } from '../../core/jobs/lifecycle.ts';
import { ENV } from '../../core/platform/config.ts';
import { datasetKeys } from '../../core/platform/keys.ts';
import type { JobQueue } from '../../core/platform/ports.ts';
import { loadRuntimeConfig } from '../../core/platform/runtime-config.ts';
import { SweepStore } from '../../core/sweeps/sweep-store.ts';
import type { ApiEvent, ApiHandler } from '../../functions/http.ts';
import { prepareTrainer } from '../../trainer/startup.ts';
import { InMemoryBatch } from '../helpers/batch.ts';
import { type Backing, enforcedMakers, type StackResources } from '../helpers/enforced-ports.ts';
import { RolePolicy, resolve } from '../helpers/iam-policy.ts';
import { localPorts } from '../helpers/local-ports.ts';
import { quiet, TENANT } from '../helpers/trainer.ts';
import { synthesize } from '../infra/synth.ts';

/** The functions that make passes of the sweep controller (which may queue a trial). */
const SWEEP_PASSES = [
  'cancel-job',
  'submit-sweep',
  'get-sweep',
  'dead-letter',
  'batch-events',
  'advance-sweeps',
];

/**
 * Granted pairs a function's story may leave unused: rare paths of code it shares with another
 * function whose story does exercise them (checked below), each with why the grant is still needed.
 */
const RARE_PATHS: { pairs: string[]; functions: string[]; why: string }[] = [
  {
    pairs: ['s3:DeleteObject tenants/*/jobs/*', 's3:DeleteObject tenants/*/job-index/*'],
    functions: SWEEP_PASSES,
    why: 'a trial that a pass submits is taken back when its message cannot be sent (lifecycle.submit, as submit-job does)',
  },
  {
    pairs: ['s3:DeleteObject tenants/*/active-sweeps/*'],
    functions: ['cancel-job', 'submit-sweep', 'get-sweep', 'dead-letter', 'batch-events'],
    why: 'a pass that finishes its sweep removes its active marker (as the trainer and cancel-sweep do)',
  },
  {
    pairs: ['s3:DeleteObject tenants/*/active-slots/*'],
    functions: ['submit-sweep', 'get-sweep'],
    why: 'a submit that finds the quota full sweeps the slot of a job that ended without freeing it (as submit-job may), and a pass cancels the queued trials of a cancelling sweep',
  },
  {
    pairs: ['s3:GetObject tenants/*/active-slots/*'],
    functions: ['submit-sweep', 'get-sweep'],
    why: "a pass that cancels a cancelling sweep's queued trials frees their active-jobs slots, reading each first (as cancel-sweep does)",
  },
  {
    pairs: ['s3:DeleteObject tenants/*/active-slots/*'],
    functions: ['delete-job'],
    why: 'a job that ended without freeing its slot (a crash between its end and the release) frees it when deleted (as the end of a job does)',
  },
  {
    pairs: ['s3:DeleteObject tenants/*/idempotency/*'],
    functions: ['submit-sweep'],
    why: 'an Idempotency-Key is released when its request is taken back (as submit-job does)',
  },
  {
    pairs: ['batch:TerminateJob job/*'],
    functions: ['get-sweep'],
    why: "reading a cancelling sweep advances it, which cancels its queued trials' Batch jobs (as cancel-sweep does)",
  },
];

/**
 * What CDK's SQS event source grants the function's role for Lambda's poller beyond what the poller
 * uses (AWS documents ReceiveMessage, DeleteMessage and GetQueueAttributes): kept as CDK makes it.
 */
const EVENT_SOURCE_EXTRAS = ['sqs:ChangeMessageVisibility', 'sqs:GetQueueUrl'];

const { stack, resources, logicalId } = synthesize();
/** A job or sweep id that no one has. */
const UNKNOWN = '01M8JH2TQYPMBNJ50HMGRP3N6M';

/** The resources' resolved names, as the functions' environments give them. */
const stackResources: StackResources = {
  bucket: {
    name: resolve({ Ref: logicalId(stack.artifacts.bucket) }),
    arn: resolve({ 'Fn::GetAtt': [logicalId(stack.artifacts.bucket), 'Arn'] }),
    keyArn: resolve({ 'Fn::GetAtt': [logicalId(stack.artifacts.encryptionKey as never), 'Arn'] }),
  },
  queue: {
    url: resolve({ Ref: logicalId(stack.jobQueue.queue) }),
    arn: resolve({ 'Fn::GetAtt': [logicalId(stack.jobQueue.queue), 'Arn'] }),
    keyArn: resolve({ 'Fn::GetAtt': [logicalId(stack.jobQueue.encryptionKey as never), 'Arn'] }),
  },
  batch: {
    jobQueueArn: resolve({ 'Fn::GetAtt': [logicalId(stack.training.jobQueue), 'JobQueueArn'] }),
    jobDefinitionArn: resolve({ Ref: logicalId(stack.training.jobDefinition) }),
  },
};

/** A (action, resource) pair in words: the bucket's ARN, the queue, the key and Batch's job ARNs shortened. */
const short = (pair: string) =>
  pair
    .replace(`${stackResources.bucket.arn}/`, '')
    .replace(stackResources.queue.keyArn, 'jobs-key')
    .replace(stackResources.queue.arn, 'jobs')
    .replace(/arn:aws:batch:[^ ]*:job\//, 'job/');

/** The jobs queue with a switch that makes the next send fail, as SQS does when throttled or down. */
class SwitchableQueue implements JobQueue {
  failNextSend = false;
  private readonly inner: JobQueue;
  constructor(inner: JobQueue) {
    this.inner = inner;
  }
  async send(body: string, options?: { delaySeconds?: number }) {
    if (this.failNextSend) {
      this.failNextSend = false;
      throw new Error('SQS unavailable');
    }
    return this.inner.send(body, options);
  }
  receive = (...args: Parameters<JobQueue['receive']>) => this.inner.receive(...args);
  extendVisibility = (...args: Parameters<JobQueue['extendVisibility']>) =>
    this.inner.extendVisibility(...args);
  release = (...args: Parameters<JobQueue['release']>) => this.inner.release(...args);
  delete = (...args: Parameters<JobQueue['delete']>) => this.inner.delete(...args);
  depth = () => this.inner.depth();
}

interface Subject {
  readonly policy: RolePolicy;
  readonly env: Record<string, string>;
  readonly context: AwsContext | undefined;
}

describe('least privilege, enforced on the real code', () => {
  const subjects = new Map<string, Subject>();
  let backing: Backing;
  let queue: SwitchableQueue;
  let admin: AwsContext;
  let deadLetters: JobQueue;

  /** The function (or `trainer`) with its role's statements and its synthesized environment. */
  const subject = (name: string, overrides: Record<string, string> = {}): Subject => {
    const known = subjects.get(name);
    if (known) return known;
    const fn = stack.functions.find((f) => f.handlerFile === name);
    const roleId = logicalId(name === 'trainer' ? stack.training.jobRole : (fn?.functionRole as never));
    const properties = (id: string) => {
      const found = resources[id];
      assert.ok(found, id);
      return found.Properties;
    };
    const raw: Record<string, unknown> =
      name === 'trainer'
        ? Object.fromEntries(
            (
              properties(logicalId(stack.training.jobDefinition)).ContainerProperties as {
                Environment: { Name: string; Value: unknown }[];
              }
            ).Environment.map((e) => [e.Name, e.Value]),
          )
        : ((
            properties(logicalId(fn as never)).Environment as
              | { Variables?: Record<string, unknown> }
              | undefined
          )?.Variables ?? {});
    const env = { ...Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, resolve(v)])), ...overrides };
    const policy = new RolePolicy(resources, roleId);
    const ports = awsPorts(env, enforcedMakers(policy, stackResources, backing));
    const context = ports.store
      ? composeAws(ports, { config: loadRuntimeConfig(env), metrics: () => {}, log: quiet })
      : undefined;
    const created = { policy, env, context };
    subjects.set(name, created);
    return created;
  };

  /** Calls a route's handler as API Gateway would, for the tenant. */
  const call = async (
    handler: string,
    request: {
      body?: unknown;
      params?: Record<string, string>;
      headers?: Record<string, string>;
      query?: Record<string, string>;
    } = {},
  ) => {
    const route = routes.find((r) => r.handler === handler);
    assert.ok(route, handler);
    const { context } = subject(handler);
    const module = (await import(`../../functions/${handler}.ts`)) as { create: (s: unknown) => ApiHandler };
    const event = {
      routeKey: `${route.method} ${route.path}`,
      rawPath: route.path,
      headers: { 'content-type': 'application/json', ...request.headers },
      ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
      ...(request.params ? { pathParameters: request.params } : {}),
      ...(request.query ? { queryStringParameters: request.query } : {}),
      requestContext: { requestId: 'r', authorizer: { jwt: { claims: { client_id: TENANT } } } },
    } as unknown as ApiEvent;
    const result = await module.create(context?.services)(event);
    return { status: result.statusCode, body: JSON.parse(String(result.body)) };
  };

  /** The messages waiting in `from`, as an SQS event source delivers them (then deleted, as Lambda does). */
  const sqsEvent = async (from: JobQueue, receiveCount: number, to?: string): Promise<SQSEvent> => {
    const messages = await from.receive({ waitSeconds: 0, maxMessages: 10 });
    if (to) {
      // Lambda's poller receives and deletes the messages with the function's role, and decrypts them.
      const { policy } = subject(to);
      const source = from === deadLetters ? stack.jobQueue.deadLetterQueue : stack.jobQueue.queue;
      const arn = resolve({ 'Fn::GetAtt': [logicalId(source), 'Arn'] });
      for (const action of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'])
        policy.check(action, arn);
      if (messages.length > 0) policy.check('kms:Decrypt', stackResources.queue.keyArn);
    }
    for (const m of messages) await from.delete(m.receiptHandle);
    return {
      Records: messages.map((m) => ({
        messageId: m.messageId,
        body: m.body,
        attributes: { ApproximateReceiveCount: String(receiveCount) },
      })),
    } as unknown as SQSEvent;
  };
  const dispatch = async (receiveCount = 1) => {
    const { create } = await import('../../functions/dispatch-jobs.ts');
    return create(subject('dispatch-jobs').context as AwsContext)(
      await sqsEvent(queue, receiveCount, 'dispatch-jobs'),
    );
  };
  const batchEvent = async (jobId: string, status: string, statusReason?: string) => {
    const record = await admin.services.lifecycle.jobs.get(TENANT, jobId);
    const { create } = await import('../../functions/batch-events.ts');
    const batchJobId = record.record.batchJob?.id ?? 'none';
    return create(
      subject('batch-events').context as AwsContext,
      () => {},
      subject('batch-events').env,
    )({
      'detail-type': 'Batch Job State Change',
      detail: {
        jobId: batchJobId,
        jobName: `descent-${TENANT}-${jobId}`,
        status,
        ...(statusReason ? { statusReason } : {}),
      },
    } as never);
  };
  const train = async (jobId: string) => {
    const trainer = subject('trainer', { [ENV.backend]: 'wasm' });
    const ports = awsPorts(trainer.env, enforcedMakers(trainer.policy, stackResources, backing));
    const prepared = await prepareTrainer({
      config: loadRuntimeConfig(trainer.env),
      store: ports.store as NonNullable<typeof ports.store>,
      ...(ports.events ? { events: ports.events } : {}),
      log: quiet,
      metrics: () => {},
    });
    return prepared.run({ tenant: TENANT, jobId }, new AbortController().signal);
  };
  const status = async (jobId: string) =>
    (await admin.services.lifecycle.jobs.get(TENANT, jobId)).record.status;
  const trialJob = async (sweepId: string, trial: number) =>
    (await new SweepStore(backing.store).get(TENANT, sweepId)).record.trials.find((t) => t.trial === trial)
      ?.jobId as string;

  before(async () => {
    const ports = await localPorts();
    queue = new SwitchableQueue(ports.queue);
    deadLetters = ports.deadLetters;
    const events: JobStateDetail[] = [];
    backing = { store: ports.store, queue, batch: new InMemoryBatch(), events };
    // What other processes do meanwhile (a concurrent cancel, a crashed step): unenforced, unattributed.
    admin = composeAws(
      { store: ports.store, queue, batch: backing.batch },
      { config: loadRuntimeConfig({}), metrics: () => {}, log: quiet },
    );

    // Datasets: created with a presigned upload URL, then uploaded through it (by the client).
    const dataset = await call('create-dataset', { body: { name: 'toy', format: 'csv' } });
    assert.equal(dataset.status, 201, JSON.stringify(dataset.body));
    const rows = Array.from({ length: 40 }, (_, i) => `${i % 5},${(i * 3) % 7},${i % 2 ? 'odd' : 'even'}`);
    await backing.store.put(
      datasetKeys(TENANT, dataset.body.datasetId).data,
      `a,b,label\n${rows.join('\n')}\n`,
    );
    const spec = {
      task: 'classification',
      dataset: { id: dataset.body.datasetId, label: 'label' },
      training: { epochs: 3, seed: 1, checkpoint: { everyEpochs: 1 } },
    };

    // A job, its Idempotency-Key replayed; one whose message cannot be sent is taken back.
    const job = await call('submit-job', { body: spec, headers: { 'idempotency-key': 'k1' } });
    assert.equal(job.status, 201, JSON.stringify(job.body));
    assert.equal(
      (await call('submit-job', { body: spec, headers: { 'idempotency-key': 'k1' } })).status,
      200,
    );
    queue.failNextSend = true;
    assert.equal(
      (await call('submit-job', { body: spec, headers: { 'idempotency-key': 'k2' } })).status,
      503,
    );
    const jobId = job.body.id as string;

    // Dispatched to Batch (a redelivery: it looks for an earlier Batch job first), trained, read.
    assert.deepEqual(await dispatch(2), { batchItemFailures: [] });
    assert.equal(await train(jobId), 'done');
    assert.equal(await status(jobId), 'SUCCEEDED');
    assert.equal(await batchEvent(jobId, 'SUCCEEDED').then((r) => r.outcome), 'already-finished');
    for (const handler of ['get-job', 'get-job-metrics', 'get-job-events', 'get-job-result']) {
      assert.equal((await call(handler, { params: { id: jobId } })).status, 200, handler);
      // Another tenant's job, or none: a 404 (S3 says 404 only to a role that may list the bucket).
      assert.equal((await call(handler, { params: { id: UNKNOWN } })).status, 404, handler);
    }
    assert.equal((await call('list-jobs')).status, 200);

    // Datasets as a resource, and predictions with the trained model: online, and a batch the trainer runs.
    assert.equal((await call('list-datasets')).status, 200);
    assert.equal((await call('get-dataset', { params: { id: dataset.body.datasetId } })).status, 200);
    assert.equal((await call('get-dataset', { params: { id: UNKNOWN } })).status, 404);
    const predicted = await call('predict-job', {
      params: { id: jobId },
      body: { rows: [{ a: 1, b: 2 }], explain: true },
    });
    assert.equal(predicted.status, 200, JSON.stringify(predicted.body));
    assert.equal(
      (await call('predict-job', { params: { id: UNKNOWN }, body: { rows: [{ a: 1 }] } })).status,
      404,
    );
    queue.failNextSend = true;
    const notQueued = await call('submit-predictions', {
      params: { id: jobId },
      body: { datasetId: dataset.body.datasetId },
    });
    assert.equal(notQueued.status, 503, 'a batch that cannot be queued is taken back');
    const batch = await call('submit-predictions', {
      params: { id: jobId },
      body: { datasetId: dataset.body.datasetId },
    });
    assert.equal(batch.status, 201, JSON.stringify(batch.body));
    await dispatch();
    assert.equal(await train(batch.body.id), 'done');
    assert.equal(await status(batch.body.id), 'SUCCEEDED');

    // A job cancelled while its Batch job is being submitted: the dispatcher terminates that Batch job.
    const racing = await call('submit-job', { body: spec });
    backing.batch.onSubmit = async (run) => {
      if (run.jobId === racing.body.id) await admin.services.lifecycle.cancel(TENANT, run.jobId, 'api');
    };
    await dispatch();
    backing.batch.onSubmit = undefined;
    assert.equal(await status(racing.body.id), 'CANCELLED');
    // Deleted, then its message delivered again: the dispatcher finds no job and drops the message.
    assert.equal((await call('delete-job', { params: { id: racing.body.id } })).status, 200);
    await queue.send(JSON.stringify({ tenant: TENANT, jobId: racing.body.id }));
    assert.deepEqual(await dispatch(2), { batchItemFailures: [] });

    // A sweep run by the trainer (on a dataset of its own): its trials end, a read queues the next one.
    const sweepData = await call('create-dataset', { body: { name: 'sweep', format: 'csv' } });
    await backing.store.put(
      datasetKeys(TENANT, sweepData.body.datasetId).data,
      `a,b,label\n${rows.join('\n')}\n`,
    );
    const sweepBody = {
      spec: {
        ...spec,
        dataset: { id: sweepData.body.datasetId, label: 'label' },
        training: { epochs: 2, seed: 1 },
      },
      parameters: { 'training.optimizer.learningRate': { type: 'choice', values: [0.01, 0.1] } },
      objective: { metric: 'loss', goal: 'minimize' },
      maxParallel: 1,
    };
    const sweep = await call('submit-sweep', { body: sweepBody, headers: { 'idempotency-key': 's1' } });
    assert.equal(sweep.status, 201, JSON.stringify(sweep.body));
    await dispatch();
    assert.equal(await train(await trialJob(sweep.body.id, 1)), 'done');
    assert.equal((await call('get-sweep', { params: { id: sweep.body.id } })).status, 200);
    await dispatch();
    assert.equal(await train(await trialJob(sweep.body.id, 2)), 'done');
    assert.equal((await call('get-sweep', { params: { id: sweep.body.id } })).body.status, 'SUCCEEDED');
    assert.equal((await call('list-sweeps')).status, 200);

    // A sweep whose trials end otherwise: no GPU capacity (Batch's event), dead-lettered, cancelled.
    const second = await call('submit-sweep', {
      body: {
        ...sweepBody,
        parameters: {
          'training.optimizer.learningRate': { type: 'choice', values: [0.01, 0.02, 0.03, 0.04] },
        },
      },
    });
    await dispatch();
    // A dataset in use by an unfinished sweep and its queued trial is not deleted; a spare one is.
    assert.equal((await call('delete-dataset', { params: { id: sweepData.body.datasetId } })).status, 409);
    const spare = await call('create-dataset', { body: { name: 'spare', format: 'csv' } });
    assert.equal((await call('delete-dataset', { params: { id: spare.body.datasetId } })).status, 200);
    const capacity =
      'Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY';
    assert.equal((await batchEvent(await trialJob(second.body.id, 1), 'FAILED', capacity)).outcome, 'failed');
    // Trial 2's message reached the dead-letter queue before it was dispatched.
    const { create: deadLetter } = await import('../../functions/dead-letter.ts');
    await deadLetters.send(JSON.stringify({ tenant: TENANT, jobId: await trialJob(second.body.id, 2) }));
    await sqsEvent(queue, 1);
    assert.deepEqual(
      await deadLetter(subject('dead-letter').context as AwsContext)(
        await sqsEvent(deadLetters, 1, 'dead-letter'),
      ),
      {
        batchItemFailures: [],
      },
    );
    await dispatch();
    assert.equal(
      (await call('cancel-job', { params: { id: await trialJob(second.body.id, 3) } })).status,
      200,
    );
    await dispatch();
    assert.equal((await call('cancel-sweep', { params: { id: second.body.id } })).body.status, 'CANCELLED');
    assert.equal((await call('cancel-sweep', { params: { id: UNKNOWN } })).status, 404);

    // The scheduled pass: a trial ended while its event was lost, and later its sweep being cancelled.
    const third = await call('submit-sweep', { body: sweepBody });
    await dispatch();
    const first = await trialJob(third.body.id, 1);
    // Ended by a process whose sweep pass then crashed (a bare lifecycle, no sweep subscriber).
    await new JobLifecycle({ store: backing.store, now: () => new Date() }).executionEnded(TENANT, first, {
      batchJobId: (await admin.services.lifecycle.jobs.get(TENANT, first)).record.batchJob?.id ?? '',
      error: { code: 'TRAINER_FAILED', message: 'x' },
    });
    const { create: advance } = await import('../../functions/advance-sweeps.ts');
    const sweeps = subject('advance-sweeps', { [ENV.tenants]: TENANT });
    assert.ok((await advance(sweeps.context as AwsContext)()).advanced >= 1);
    await dispatch();
    await new SweepStore(backing.store).update(TENANT, third.body.id, (s) => ({
      ...s,
      status: 'CANCELLING',
    }));
    await advance(sweeps.context as AwsContext)();
    assert.equal((await new SweepStore(backing.store).get(TENANT, third.body.id)).record.status, 'CANCELLED');

    // The capacity watch: a job waiting for longer than the capacity wait while nothing trains is ended.
    const stuck = await call('submit-job', { body: spec });
    await dispatch();
    const waiting = backing.batch.jobs.find((j) => j.run.jobId === stuck.body.id);
    assert.ok(waiting);
    waiting.createdAt -= 3 * 3_600_000;
    const watcher = subject('watch-training');
    const { create: watch } = await import('../../functions/watch-training.ts');
    const watchPorts = awsPorts(watcher.env, enforcedMakers(watcher.policy, stackResources, backing));
    assert.deepEqual((await watch(watchPorts.batch, () => {}, watcher.env)()).ended, [waiting.id]);
    assert.equal((await batchEvent(stuck.body.id, 'FAILED', waiting.reason)).outcome, 'failed');
    assert.equal(
      (await admin.services.lifecycle.jobs.get(TENANT, stuck.body.id)).record.error?.code,
      'NO_GPU_CAPACITY',
    );

    // The first job's data is purged; the public document needs nothing.
    assert.equal((await call('delete-job', { params: { id: jobId } })).status, 200);
    assert.equal((await call('get-openapi')).status, 200);
    assert.ok(events.length > 0);
  });

  const names = [...new Set([...stack.functions.map((f) => f.handlerFile), 'trainer'])];

  for (const name of names) {
    it(`${name}: is refused nothing, and uses every grant but the rare paths`, () => {
      const subjectOf = subjects.get(name);
      assert.ok(subjectOf, `${name} did not run in the story`);
      assert.deepEqual(subjectOf.policy.denied.map(short), [], `${name} was refused`);
      const unused = subjectOf.policy
        .granted()
        .filter((pair) => !subjectOf.policy.used.has(pair))
        .map(short)
        .filter((pair) => !EVENT_SOURCE_EXTRAS.includes(pair.split(' ')[0] as string))
        .filter(
          (pair) => !RARE_PATHS.some((rare) => rare.functions.includes(name) && rare.pairs.includes(pair)),
        );
      assert.deepEqual(unused, [], `${name} has grants its story never used`);
    });
  }

  it('exercises every rare path in some story', () => {
    const used = new Set([...subjects.values()].flatMap((s) => [...s.policy.used].map(short)));
    for (const rare of RARE_PATHS)
      for (const pair of rare.pairs) assert.ok(used.has(pair), `${pair} (${rare.why}) is used nowhere`);
  });

  it('gives the public OpenAPI function nothing, and every route a deliberate grant', () => {
    const openapi = subjects.get('get-openapi');
    assert.ok(openapi);
    assert.deepEqual(openapi.policy.granted(), []);
    assert.equal(openapi.context, undefined, 'no AWS port at all');
    for (const route of routes) {
      assert.ok(route.grants, `${route.method} ${route.path} has no grants`);
      if (!route.scope) assert.equal(route.grants, NO_GRANTS, `${route.path} is public: it gets nothing`);
      else assert.notEqual(route.grants, NO_GRANTS, `${route.method} ${route.path}`);
    }
  });
});
