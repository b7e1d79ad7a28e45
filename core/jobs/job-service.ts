/**
 * What the job routes do, as plain functions over injected ports: the handlers in `functions/` only
 * parse requests and map results. Every change of a job goes through the job lifecycle
 * (`s.lifecycle`); this module checks requests and reads. No AWS or TensorFlow.js here.
 */
import { z } from 'zod';
import {
  decodeCursor,
  encodeCursor,
  IdempotencyKeys,
  replayEarlier,
  requestHash,
} from '../api/idempotency.ts';
import {
  checkDataset,
  countRows,
  type DatasetMeta,
  findDatasetMeta,
  getDatasetMeta,
} from '../datasets/dataset-service.ts';
import {
  BadRequestError,
  ConflictError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  TooManyRequestsError,
  ValidationError,
} from '../platform/errors.ts';
import { datasetKeys, jobKeys } from '../platform/keys.ts';
import { parseOrThrow } from '../platform/validate.ts';
import type { Services } from '../services.ts';
import { privacyProblems } from '../training/privacy.ts';
import { type JobRecord, jobStatus } from './job-record.ts';
import { type JobSpec, jobSpec } from './job-spec.ts';

/** Per-tenant quotas: active jobs (429) and epochs × rows (413), each message naming the limit. */
async function checkQuotas(s: Services, tenant: string, spec: JobSpec, meta: DatasetMeta): Promise<void> {
  const active = await s.lifecycle.jobs.countActive(tenant, s.limits.maxActiveJobs);
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
    const found = await s.lifecycle.jobs.find(tenant, base.jobId);
    if (found?.record.status !== 'SUCCEEDED') {
      throw new BadRequestError(
        `model.baseModel.jobId: no SUCCEEDED job ${base.jobId} in this account${found ? ` (it is ${found.record.status})` : ''}.`,
        { path: 'model.baseModel.jobId' },
        'UNKNOWN_BASE_MODEL',
      );
    }
    return;
  }
  const meta = await findDatasetMeta(s, tenant, base.datasetId);
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

/**
 * Private training refuses what would break its guarantee: a layer that couples the rows of a batch
 * (batch normalization), in the spec or in the base job's model, and a second gradient clipping.
 */
async function checkPrivacy(s: Services, tenant: string, spec: JobSpec): Promise<void> {
  if (!spec.training.privacy) return;
  const problems = privacyProblems(spec);
  const base = spec.model.baseModel;
  if (base && 'jobId' in base) {
    const found = await s.lifecycle.jobs.find(tenant, base.jobId);
    const coupled = found?.record.spec.model.layers.findIndex((l) => l.type === 'batchNormalization') ?? -1;
    if (coupled >= 0)
      problems.push({
        path: 'model.baseModel.jobId',
        message: `the base model has a batchNormalization layer (its model.layers[${coupled}]), which cannot be trained with training.privacy: it normalises each row with statistics of the whole batch, so one row's gradient depends on the other rows.`,
      });
  }
  const first = problems[0];
  if (first)
    throw new ValidationError(
      `Invalid job spec: ${first.path}: ${first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : ''}`,
      { problems },
    );
}

export interface SubmitResult {
  record: JobRecord;
  /** True when an `Idempotency-Key` replay returned the job created earlier. */
  replayed: boolean;
}

/** `POST /jobs`: validate, check the data, base model and quotas, store and queue. */
export async function submitJob(
  s: Services,
  tenant: string,
  body: unknown,
  idempotencyKey?: string,
): Promise<SubmitResult> {
  const parsed = parseOrThrow(jobSpec, body, 'job spec');
  const keys = new IdempotencyKeys(s.store, 'job');
  const bodyHash = requestHash(body);
  const keyObject = idempotencyKey === undefined ? undefined : keys.objectKey(tenant, idempotencyKey);
  if (keyObject) {
    const earlier = await keys.earlier(keyObject);
    if (earlier) return replay(s, tenant, earlier, bodyHash);
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
  await checkPrivacy(s, tenant, spec);
  await checkQuotas(s, tenant, spec, meta);

  if (keyObject) {
    const earlier = await keys.reserve(keyObject, id, bodyHash);
    if (earlier) return replay(s, tenant, earlier, bodyHash);
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
  try {
    await s.lifecycle.submit(tenant, record, { by: 'api', message: 'Job submitted and queued.' });
  } catch (error) {
    // Taken back: a retry with the same Idempotency-Key starts over.
    if (keyObject && error instanceof ServiceUnavailableError) await keys.release(keyObject).catch(() => {});
    throw error;
  }
  return { record, replayed: false };
}

async function replay(
  s: Services,
  tenant: string,
  earlier: { id: string; requestHash: string },
  requestHash: string,
): Promise<SubmitResult> {
  const record = await replayEarlier(
    earlier,
    requestHash,
    'job',
    async (id) => (await s.lifecycle.jobs.get(tenant, id)).record,
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

/**
 * `GET /jobs`: newest first, a page at a time. A job deleted between the index and its record is
 * passed over; any other read error fails the request rather than hiding a job.
 */
export async function listJobs(s: Services, tenant: string, query: unknown) {
  const q = parseOrThrow(listJobsQuery, query, 'query');
  const jobs = s.lifecycle.jobs;
  const found: JobRecord[] = [];
  let cursor = q.cursor ? decodeCursor(q.cursor, 'GET /jobs') : undefined;
  // Scan index pages until the page is full; with a filter a page may need several reads.
  for (let scanned = 0; found.length < q.limit && scanned < 20; scanned++) {
    const page = await jobs.listIds(tenant, { limit: q.limit - found.length, ...(cursor ? { cursor } : {}) });
    const versions = await Promise.all(page.ids.map((id) => jobs.find(tenant, id)));
    for (const record of versions.map((v) => v?.record)) {
      if (record && (!q.status || record.status === q.status) && (!q.sweepId || record.sweepId === q.sweepId))
        found.push(record);
    }
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  return { jobs: found, nextCursor: cursor ? encodeCursor(cursor) : null };
}

export async function getJob(s: Services, tenant: string, jobId: string): Promise<JobRecord> {
  return (await s.lifecycle.jobs.get(tenant, jobId)).record;
}

export async function getMetrics(s: Services, tenant: string, jobId: string) {
  const jobs = s.lifecycle.jobs;
  await jobs.get(tenant, jobId);
  return { epochs: await jobs.metrics(tenant, jobId) };
}

export async function getEvents(s: Services, tenant: string, jobId: string) {
  const jobs = s.lifecycle.jobs;
  await jobs.get(tenant, jobId);
  return { events: await jobs.events(tenant, jobId) };
}

/** `POST /jobs/{id}/cancel`. */
export async function cancelJob(s: Services, tenant: string, jobId: string): Promise<JobRecord> {
  const cancelled = await s.lifecycle.cancel(tenant, jobId, 'api');
  return (cancelled as { record: JobRecord }).record;
}

/** `DELETE /jobs/{id}`: purges a job that has ended. */
export async function deleteJob(s: Services, tenant: string, jobId: string) {
  const deletedObjects = await s.lifecycle.delete(tenant, jobId);
  return { id: jobId, deleted: true, deletedObjects };
}

export async function getResult(s: Services, tenant: string, jobId: string) {
  const jobs = s.lifecycle.jobs;
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
  const report = (await jobs.report(tenant, jobId)) ?? {};
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
