/**
 * What the API does, as plain functions over injected ports: the handlers in `functions/` only
 * parse requests and map results. No AWS or TensorFlow.js here.
 */
import { z } from 'zod';
import { decodeCursor, encodeCursor, replayEarlier, requestHash, sha256 } from '../api/idempotency.ts';
import { checkDataset, countRows, type DatasetMeta, getDatasetMeta } from '../datasets/dataset-service.ts';
import {
  BadRequestError,
  ConflictError,
  PayloadTooLargeError,
  PreconditionFailedError,
  ServiceUnavailableError,
  TooManyRequestsError,
  ValidationError,
} from '../platform/errors.ts';
import { datasetKeys, jobKeys, tenantPrefix } from '../platform/keys.ts';
import { log } from '../platform/log.ts';
import type { ObjectStore } from '../platform/ports.ts';
import { parseOrThrow } from '../platform/validate.ts';
import type { Services } from '../services.ts';
import { advanceSweep } from '../sweeps/sweep-controller.ts';
import {
  isTerminal,
  type JobEvent,
  type JobRecord,
  type JobStatus,
  jobStatus,
  transition,
} from './job-record.ts';
import { type JobSpec, jobSpec } from './job-spec.ts';
import { fromJson, JobStore, toJson } from './job-store.ts';

/** Per-tenant quotas: active jobs (429) and epochs × rows (413), each message naming the limit. */
async function checkQuotas(s: Services, tenant: string, spec: JobSpec, meta: DatasetMeta): Promise<void> {
  const active = await new JobStore(s.store).countActive(tenant, s.limits.maxActiveJobs);
  if (active >= s.limits.maxActiveJobs) {
    throw new TooManyRequestsError(
      `This account has ${active} queued or running jobs, the most it may have at once (${s.limits.maxActiveJobs}); wait for one to finish or cancel one.`,
    );
  }
  const rows = await countRows(s, tenant, meta);
  const work = rows * spec.training.epochs;
  if (work > s.limits.maxEpochRows) {
    throw new PayloadTooLargeError(
      `training.epochs × dataset rows is ${spec.training.epochs} × ${rows} = ${work}, over the limit of ${s.limits.maxEpochRows}; train fewer epochs or on fewer rows.`,
    );
  }
}

/** A fine-tuning base must be this tenant's SUCCEEDED job or uploaded model, and stand alone. */
async function checkBaseModel(s: Services, tenant: string, spec: JobSpec): Promise<void> {
  const base = spec.model.baseModel;
  if (!base) {
    if (spec.model.freeze !== undefined || spec.model.replaceHead !== undefined) {
      throw new ValidationError(
        'model.freeze and model.replaceHead apply to fine-tuning: give model.baseModel too.',
      );
    }
    return;
  }
  if (spec.model.layers.length > 0) {
    throw new ValidationError(
      'model.layers cannot be combined with model.baseModel: the base model brings its layers (use replaceHead for a new output layer).',
    );
  }
  if ('jobId' in base) {
    const found = await new JobStore(s.store).get(tenant, base.jobId).catch(() => undefined);
    if (found?.record.status !== 'SUCCEEDED') {
      throw new BadRequestError(
        `model.baseModel.jobId: no SUCCEEDED job ${base.jobId} in this account${found ? ` (it is ${found.record.status})` : ''}.`,
        { path: 'model.baseModel.jobId' },
        'UNKNOWN_BASE_MODEL',
      );
    }
    return;
  }
  const meta = await getDatasetMeta(s, tenant, base.datasetId).catch(() => undefined);
  const keys = datasetKeys(tenant, base.datasetId);
  const uploaded =
    meta?.format === 'tfjs-model' &&
    (await s.store.head(keys.modelJson)) &&
    (await s.store.head(keys.weights));
  if (!uploaded) {
    throw new BadRequestError(
      `model.baseModel.datasetId: no uploaded tfjs-model dataset ${base.datasetId} in this account (create one with format "tfjs-model" and PUT model.json and weights.bin).`,
      { path: 'model.baseModel.datasetId' },
      'UNKNOWN_BASE_MODEL',
    );
  }
}

export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

export interface SubmitResult {
  record: JobRecord;
  /** True when an `Idempotency-Key` replay returned the job created earlier. */
  replayed: boolean;
}

export async function submitJob(
  s: Services,
  tenant: string,
  body: unknown,
  idempotencyKey?: string,
): Promise<SubmitResult> {
  const parsed = parseOrThrow(jobSpec, body, 'job spec');
  const jobs = new JobStore(s.store);

  let idempotencyObject: string | undefined;
  const bodyHash = requestHash(body);
  if (idempotencyKey !== undefined) {
    if (!IDEMPOTENCY_KEY_PATTERN.test(idempotencyKey)) {
      throw new BadRequestError('Idempotency-Key must be 1–128 characters of letters, digits, _ . : -');
    }
    idempotencyObject = `${tenantPrefix(tenant)}idempotency/${sha256(idempotencyKey)}.json`;
    const earlier = await replayIfUsed(jobs, s.store, tenant, idempotencyObject, bodyHash);
    if (earlier) return earlier;
  }

  const id = s.newId();
  const maxRuntimeSeconds = parsed.resources.maxRuntimeSeconds ?? s.limits.defaultMaxRuntimeSeconds;
  if (maxRuntimeSeconds > s.limits.maxRuntimeSeconds) {
    throw new ValidationError(
      `resources.maxRuntimeSeconds: ${maxRuntimeSeconds} is over this deployment's limit of ${s.limits.maxRuntimeSeconds} seconds.`,
      { path: 'resources.maxRuntimeSeconds', limit: s.limits.maxRuntimeSeconds },
    );
  }
  const spec: JobSpec = {
    ...parsed,
    name: parsed.name ?? `${parsed.task}-${id.slice(-6).toLowerCase()}`,
    training: { ...parsed.training, seed: parsed.training.seed ?? Math.floor(Math.random() * 2 ** 31) },
    resources: { maxRuntimeSeconds },
  };
  const meta = await getDatasetMeta(s, tenant, spec.dataset.id);
  await checkDataset(s, tenant, spec, meta);
  await checkBaseModel(s, tenant, spec);
  await checkQuotas(s, tenant, spec, meta);

  if (idempotencyObject) {
    try {
      await s.store.put(idempotencyObject, toJson({ jobId: id, requestHash: bodyHash }), {
        ifNoneMatch: '*',
      });
    } catch (error) {
      if (!(error instanceof PreconditionFailedError)) throw error;
      const earlier = await replayIfUsed(jobs, s.store, tenant, idempotencyObject, bodyHash);
      if (earlier) return earlier;
      throw error;
    }
  }

  const now = s.now().toISOString();
  const record: JobRecord = {
    id,
    name: spec.name,
    status: 'QUEUED',
    createdAt: now,
    updatedAt: now,
    attempt: 0,
    progress: { epoch: 0, epochs: spec.training.epochs },
    spec,
  };
  await jobs.create(tenant, record);
  await jobs.appendEvent(tenant, id, {
    at: now,
    type: 'state',
    status: 'QUEUED',
    message: 'Job submitted and queued.',
  });
  try {
    await s.queue.send(JSON.stringify({ tenant, jobId: id }));
  } catch (error) {
    // A job that is stored but not queued would never run: take it back, so that the caller's
    // error is the truth ("nothing was accepted") and a retry with the same Idempotency-Key starts over.
    log.error('queueing a submitted job failed; removing it', { tenant, jobId: id, error: String(error) });
    await jobs
      .purge(tenant, id)
      .catch((e: unknown) => log.error('could not remove the unqueued job', { jobId: id, error: String(e) }));
    if (idempotencyObject) await s.store.delete(idempotencyObject).catch(() => {});
    throw new ServiceUnavailableError(
      'The job could not be queued, and nothing was stored; retry the request.',
    );
  }
  return { record, replayed: false };
}

/** The earlier job of an Idempotency-Key, when the key was used before. */
async function replayIfUsed(
  jobs: JobStore,
  store: ObjectStore,
  tenant: string,
  key: string,
  requestHash: string,
): Promise<SubmitResult | undefined> {
  const earlier = await store.get(key);
  return earlier
    ? replay(jobs, tenant, fromJson(earlier.body) as { jobId: string; requestHash: string }, requestHash)
    : undefined;
}

async function replay(
  jobs: JobStore,
  tenant: string,
  earlier: { jobId: string; requestHash: string },
  requestHash: string,
): Promise<SubmitResult> {
  const record = await replayEarlier(
    { id: earlier.jobId, requestHash: earlier.requestHash },
    requestHash,
    'job',
    async (id) => (await jobs.get(tenant, id)).record,
  );
  return { record, replayed: true };
}

export const listJobsQuery = z.strictObject({
  status: jobStatus.optional(),
  /** Only the trials of this sweep. */
  sweepId: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(1024).optional(),
});

export async function listJobs(s: Services, tenant: string, query: unknown) {
  const q = parseOrThrow(listJobsQuery, query, 'query');
  const jobs = new JobStore(s.store);
  const found: JobRecord[] = [];
  let cursor = q.cursor ? decodeCursor(q.cursor, 'GET /jobs') : undefined;
  // Scan index pages until the page is full; with a status filter a page may need several reads.
  for (let scanned = 0; found.length < q.limit && scanned < 20; scanned++) {
    const page = await jobs.listIds(tenant, { limit: q.limit - found.length, ...(cursor ? { cursor } : {}) });
    const records = await Promise.all(
      page.ids.map((id) =>
        jobs.get(tenant, id).then(
          (v) => v.record,
          () => undefined,
        ),
      ),
    );
    for (const record of records)
      if (record && (!q.status || record.status === q.status) && (!q.sweepId || record.sweepId === q.sweepId))
        found.push(record);
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  return { jobs: found, nextCursor: cursor ? encodeCursor(cursor) : null };
}

export async function getJob(s: Services, tenant: string, jobId: string): Promise<JobRecord> {
  return (await new JobStore(s.store).get(tenant, jobId)).record;
}

export async function getMetrics(s: Services, tenant: string, jobId: string) {
  const jobs = new JobStore(s.store);
  await jobs.get(tenant, jobId);
  return { epochs: await jobs.metrics(tenant, jobId) };
}

export async function getEvents(s: Services, tenant: string, jobId: string) {
  const jobs = new JobStore(s.store);
  await jobs.get(tenant, jobId);
  return { events: await jobs.events(tenant, jobId) };
}

export async function cancelJob(s: Services, tenant: string, jobId: string): Promise<JobRecord> {
  const jobs = new JobStore(s.store);
  const now = s.now();
  let from: JobStatus | undefined;
  const { record } = await jobs.update(tenant, jobId, (current) => {
    from = current.status;
    if (current.status === 'QUEUED')
      return transition(current, 'CANCELLED', now, { cancelRequestedAt: now.toISOString() });
    if (current.status === 'RUNNING')
      return transition(current, 'CANCELLING', now, { cancelRequestedAt: now.toISOString() });
    if (current.status === 'CANCELLING') return current;
    throw new ConflictError(
      `Job ${jobId} is ${current.status}; only QUEUED or RUNNING jobs can be cancelled.`,
      'INVALID_STATE',
      {
        status: current.status,
      },
    );
  });
  if (from !== 'CANCELLING') {
    const event: JobEvent = {
      at: now.toISOString(),
      type: 'state',
      status: record.status,
      message:
        record.status === 'CANCELLED'
          ? 'Cancelled before it started.'
          : 'Cancel requested; stopping after the current epoch.',
    };
    await jobs.appendEvent(tenant, jobId, event);
  }
  // A sweep's trial: let the sweep record it (and queue its next trial once this one has ended).
  if (record.sweepId) {
    await advanceSweep(s, tenant, record.sweepId).catch((error: unknown) =>
      log.warn('advancing the sweep after a cancel failed; the controller retries', {
        tenant,
        sweepId: record.sweepId,
        error: String(error),
      }),
    );
  }
  return record;
}

export async function deleteJob(s: Services, tenant: string, jobId: string) {
  const jobs = new JobStore(s.store);
  const { record } = await jobs.get(tenant, jobId);
  if (!isTerminal(record.status)) {
    throw new ConflictError(
      `Job ${jobId} is ${record.status}; cancel it and wait until it has ended before deleting it.`,
      'INVALID_STATE',
      {
        status: record.status,
      },
    );
  }
  const deletedObjects = await jobs.purge(tenant, jobId);
  return { id: jobId, deleted: true, deletedObjects };
}

export async function getResult(s: Services, tenant: string, jobId: string) {
  const jobs = new JobStore(s.store);
  const { record } = await jobs.get(tenant, jobId);
  if (record.status !== 'SUCCEEDED') {
    throw new ConflictError(
      `Job ${jobId} is ${record.status}; a result exists once it has SUCCEEDED.`,
      'NOT_READY',
      {
        status: record.status,
      },
    );
  }
  const keys = jobKeys(tenant, jobId);
  const report = await jobs.readJson<Record<string, unknown>>(keys.report, {});
  const expiresInSeconds = s.limits.downloadUrlSeconds;
  const sign = (key: string) => s.store.presignGet(key, { expiresInSeconds });
  const [modelJson, weights, reportUrl, lossCurve, preprocessing] = await Promise.all([
    sign(keys.modelJson),
    sign(keys.weights),
    sign(keys.report),
    sign(keys.lossCurve),
    sign(keys.preprocessing),
  ]);
  // The headline figures: the validation set's scalar metrics (the training set's without one).
  const evaluated = (report.validation ?? report.training ?? {}) as Record<string, unknown>;
  const metrics = Object.fromEntries(Object.entries(evaluated).filter(([, v]) => typeof v === 'number'));
  return {
    id: jobId,
    status: record.status,
    metrics,
    report,
    artifacts: {
      'model.json': modelJson,
      'weights.bin': weights,
      'report.json': reportUrl,
      'loss-curve.svg': lossCurve,
      'preprocessing.json': preprocessing,
    },
    expiresAt: new Date(s.now().getTime() + expiresInSeconds * 1000).toISOString(),
  };
}
