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
  sha256,
} from '../api/idempotency.ts';
import { getDatasetMeta, type RowCount } from '../datasets/dataset-service.ts';
import {
  BadRequestError,
  ConflictError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  TooManyRequestsError,
  ValidationError,
} from '../platform/errors.ts';
import { reverseUlid, ULID_PATTERN } from '../platform/ids.ts';
import { jobIndexPrefix, jobKeys } from '../platform/keys.ts';
import { LIST_RESPONSE_BYTES } from '../platform/limits.ts';
import { jsonBytes, withinBytes } from '../platform/text.ts';
import { parseOrThrow } from '../platform/validate.ts';
import { predictionsResult } from '../predictions/batch-service.ts';
import type { Services } from '../services.ts';
import { checkBaseModel, checkJobSpec, checkSpecSize } from './job-checks.ts';
import { type JobRecord, jobStatus } from './job-record.ts';
import { type JobSpec, jobSpec } from './job-spec.ts';

/** The epochs × rows quota (413, naming the product and the limit); the active-jobs quota is the lifecycle's. */
function checkEpochRows(s: Services, spec: JobSpec, { rows, estimated }: RowCount): void {
  const work = rows * spec.training.epochs;
  if (work > s.limits.maxEpochRows) {
    const about = estimated ? 'about ' : '';
    throw new PayloadTooLargeError(
      `training.epochs × dataset rows is ${spec.training.epochs} × ${about}${rows} = ${about}${work}${estimated ? ' (rows estimated from the first MiB of the data)' : ''}, over the limit of ${s.limits.maxEpochRows}; train fewer epochs or on fewer rows.`,
    );
  }
}

/** A submit's 429 before anything is stored, when the account already holds its most active jobs. */
async function checkActiveRoom(s: Services, tenant: string): Promise<void> {
  const active = await s.lifecycle.activeJobs.count(tenant);
  if (active >= s.limits.maxActiveJobs)
    throw new TooManyRequestsError(
      `This account has ${active} queued or running jobs, the most it may have at once (${s.limits.maxActiveJobs}); wait for one to finish or cancel one.`,
    );
}

export interface SubmitResult {
  record: JobRecord;
  /** True when an `Idempotency-Key` replay returned the job created earlier. */
  replayed: boolean;
}

/** `POST /jobs`: validate, check the data, base model, resources and quotas, store and queue. */
export async function submitJob(
  s: Services,
  tenant: string,
  body: unknown,
  idempotencyKey?: string,
): Promise<SubmitResult> {
  const parsed = parseOrThrow(jobSpec, body, 'job spec');
  checkSpecSize(parsed, 'job spec');
  const keys = new IdempotencyKeys(s.store, 'job');
  const bodyHash = requestHash(body);
  const keyObject = idempotencyKey === undefined ? undefined : keys.objectKey(tenant, idempotencyKey);
  if (keyObject) {
    const earlier = await keys.earlier(keyObject);
    if (earlier) return replay(s, tenant, earlier, bodyHash);
  }

  const id = s.newId();
  const spec = resolveSpec(s, parsed, id);
  const meta = await getDatasetMeta(s, tenant, spec.dataset.id);
  checkEpochRows(s, spec, await checkJobSpec(s, tenant, spec, meta));

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
    ...(keyObject && idempotencyKey ? { idempotencyKeySha256: sha256(idempotencyKey) } : {}),
  };
  try {
    const stored = await s.lifecycle.submit(tenant, record, {
      by: 'api',
      message: 'Job submitted and queued.',
      quota: s.limits.maxActiveJobs,
    });
    return { record: stored, replayed: false };
  } catch (error) {
    // Taken back (not queued, or over the quota): a retry with the same Idempotency-Key starts over.
    if (keyObject && (error instanceof ServiceUnavailableError || error instanceof TooManyRequestsError))
      await keys.release(keyObject).catch(() => {});
    throw error;
  }
}

/** The spec with every default filled in: a name, a seed and the runtime limit. */
function resolveSpec(s: Services, parsed: z.output<typeof jobSpec>, id: string): JobSpec {
  const maxRuntimeSeconds = parsed.resources.maxRuntimeSeconds ?? s.limits.defaultMaxRuntimeSeconds;
  if (maxRuntimeSeconds > s.limits.maxRuntimeSeconds) {
    throw new ValidationError(
      `resources.maxRuntimeSeconds: ${maxRuntimeSeconds} is over this deployment's limit of ${s.limits.maxRuntimeSeconds} seconds.`,
      { path: 'resources.maxRuntimeSeconds', limit: s.limits.maxRuntimeSeconds },
    );
  }
  return {
    ...parsed,
    name: parsed.name ?? `${parsed.task}-${id.slice(-6).toLowerCase()}`,
    training: { ...parsed.training, seed: parsed.training.seed ?? Math.floor(Math.random() * 2 ** 31) },
    resources: { maxRuntimeSeconds },
  };
}

/** Stands in for a dataset id that a dry run is given before the upload (`"<datasetId>"` or none). */
const PLACEHOLDER_DATASET = '00000000000000000000000000';

/**
 * `POST /jobs?dryRun=true`: every check of a submit that can run without storing anything, so that
 * a client validates a spec before it uploads its data. Without a real `dataset.id` (absent, or a
 * placeholder like `"<datasetId>"`), the dataset checks are skipped and the answer says so.
 */
export async function validateJob(s: Services, tenant: string, body: unknown) {
  const dataset = (body as { dataset?: Record<string, unknown> } | null)?.dataset;
  const hasDataset = typeof dataset?.id === 'string' && ULID_PATTERN.test(dataset.id);
  const candidate =
    hasDataset || !dataset || typeof dataset !== 'object'
      ? body
      : { ...(body as object), dataset: { ...dataset, id: PLACEHOLDER_DATASET } };
  const parsed = parseOrThrow(jobSpec, candidate, 'job spec');
  const spec = resolveSpec(s, parsed, s.newId());
  checkSpecSize(parsed, 'job spec');
  const checked = ['spec', 'baseModel', 'activeJobs'];
  await checkActiveRoom(s, tenant);
  if (hasDataset) {
    const meta = await getDatasetMeta(s, tenant, spec.dataset.id);
    checkEpochRows(s, spec, await checkJobSpec(s, tenant, spec, meta));
    checked.push('dataset', 'resources', 'epochRows');
  } else {
    await checkBaseModel(s, tenant, spec);
  }
  const { dataset: resolvedDataset, ...rest } = spec;
  const { id: _placeholder, ...datasetWithoutId } = resolvedDataset;
  return {
    valid: true as const,
    checked,
    spec: hasDataset ? spec : { ...rest, dataset: datasetWithoutId },
  };
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
  /** Only training jobs, or only batches of predictions. */
  kind: z.enum(['training', 'predictions']).optional(),
  /** `false`: leave out sweeps' trials (they are listed with their sweep). */
  trials: z.enum(['true', 'false']).optional(),
  /** `true`: also count every matching job (`total`), up to 10,000. */
  count: z.enum(['true', 'false']).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(1024).optional(),
});

/** Where a listing goes on: the store's page it was in, and the index key it stopped after. */
interface ListPosition {
  /** The store's cursor of the page (absent: the first page). */
  readonly page?: string;
  /** Index keys up to this one, in that page, were seen already. */
  readonly after?: string;
}

const encodePosition = (page: string | undefined, after?: string): string =>
  encodeCursor(JSON.stringify({ ...(page ? { page } : {}), ...(after ? { after } : {}) }));

function decodePosition(cursor: string | undefined): ListPosition {
  if (!cursor) return {};
  const raw = decodeCursor(cursor, 'GET /jobs');
  // Cursors of earlier versions are the store's own cursor.
  if (!raw.startsWith('{')) return { page: raw };
  let p: unknown;
  try {
    p = JSON.parse(raw);
  } catch {
    p = undefined;
  }
  const { page, after } = (p ?? {}) as Record<string, unknown>;
  if (
    typeof p !== 'object' ||
    (page !== undefined && typeof page !== 'string') ||
    (after !== undefined && typeof after !== 'string')
  )
    throw new BadRequestError(
      'cursor: not a cursor returned by GET /jobs.',
      { path: 'cursor' },
      'INVALID_CURSOR',
    );
  return { ...(page ? { page } : {}), ...(after ? { after } : {}) };
}

/** Index keys a page of a listing may have to pass over before the ones not seen yet (at most a page's worth). */
const MAX_SEEN_IN_PAGE = 100;

/**
 * `GET /jobs`: newest first, a page at a time, within a byte budget (`LIST_RESPONSE_BYTES`: records
 * hold specs, so a page of them could be large; a page always has at least one). A job deleted
 * between the index and its record is passed over; any other read error fails the request rather
 * than hiding a job.
 */
export async function listJobs(s: Services, tenant: string, query: unknown) {
  const q = parseOrThrow(listJobsQuery, query, 'query');
  const jobs = s.lifecycle.jobs;
  const found: JobRecord[] = [];
  let bytes = 0;
  let position = decodePosition(q.cursor);
  const prefix = jobIndexPrefix(tenant);
  // Scan index pages until the page is full; with a filter a page may need several reads.
  for (let scanned = 0; scanned < 20; scanned++) {
    const page = await s.store.list(prefix, {
      limit: q.limit - found.length + (position.after ? MAX_SEEN_IN_PAGE : 0),
      ...(position.page ? { cursor: position.page } : {}),
    });
    const after = position.after;
    const keys = page.objects.map((o) => o.key).filter((k) => !after || k > after);
    const records = await Promise.all(
      keys.map((k) => jobs.find(tenant, reverseUlid(k.slice(prefix.length)))),
    );
    let last = after;
    for (const [i, key] of keys.entries()) {
      const record = records[i]?.record;
      const wanted = record !== undefined && matches(q, record);
      if (wanted) {
        const size = jsonBytes(record) + 1;
        if (found.length >= q.limit || (found.length > 0 && bytes + size > LIST_RESPONSE_BYTES))
          return {
            jobs: found,
            nextCursor: encodePosition(position.page, last),
            ...(await totalOf(s, tenant, q)),
          };
        found.push(record);
        bytes += size;
      }
      last = key;
    }
    if (!page.nextCursor) return { jobs: found, nextCursor: null, ...(await totalOf(s, tenant, q)) };
    position = { page: page.nextCursor };
    if (found.length >= q.limit) break;
  }
  return { jobs: found, nextCursor: encodePosition(position.page), ...(await totalOf(s, tenant, q)) };
}

type ListQuery = z.output<typeof listJobsQuery>;

const matches = (q: ListQuery, record: JobRecord): boolean =>
  (!q.status || record.status === q.status) &&
  (!q.sweepId || record.sweepId === q.sweepId) &&
  (!q.kind || (record.kind ?? 'training') === q.kind) &&
  (q.trials !== 'false' || record.sweepId === undefined);

/** Most jobs `count=true` counts; past it the total is a lower bound (`totalIsExact: false`). */
const MAX_COUNTED = 10_000;

/** With `count=true`, how many jobs match the filters (`total`, `totalIsExact`). */
const totalOf = async (
  s: Services,
  tenant: string,
  q: ListQuery,
): Promise<{ total?: number; totalIsExact?: boolean }> =>
  q.count === 'true' ? await countJobs(s, tenant, q) : {};

/** How many jobs match the filters: the index alone without one, else each record read. */
async function countJobs(s: Services, tenant: string, q: ListQuery) {
  const jobs = s.lifecycle.jobs;
  const filtered = q.status || q.sweepId || q.kind || q.trials === 'false';
  let total = 0;
  let seen = 0;
  let cursor: string | undefined;
  do {
    const page = await jobs.listIds(tenant, { limit: 1000, ...(cursor ? { cursor } : {}) });
    seen += page.ids.length;
    if (!filtered) total += page.ids.length;
    else {
      const records = await Promise.all(page.ids.map((id) => jobs.find(tenant, id)));
      total += records.filter((r) => r && matches(q, r.record)).length;
    }
    cursor = page.nextCursor;
  } while (cursor && seen < MAX_COUNTED);
  return { total, totalIsExact: !cursor };
}

export async function getJob(s: Services, tenant: string, jobId: string): Promise<JobRecord> {
  return (await s.lifecycle.jobs.get(tenant, jobId)).record;
}

/**
 * `GET /jobs/{id}/metrics`: the per-epoch history. A long run's history could be megabytes: past
 * `LIST_RESPONSE_BYTES` the answer keeps every k-th epoch and the last, and says so (`sampledEvery`,
 * `totalEpochs`); the whole history stays in the report's loss curve and `metrics.json`.
 */
export async function getMetrics(s: Services, tenant: string, jobId: string) {
  const jobs = s.lifecycle.jobs;
  await jobs.get(tenant, jobId);
  const epochs = await jobs.metrics(tenant, jobId);
  const bytes = jsonBytes(epochs);
  if (bytes <= LIST_RESPONSE_BYTES) return { epochs };
  const every = Math.ceil(bytes / LIST_RESPONSE_BYTES);
  const kept = epochs.filter((_, i) => i % every === every - 1 || i === epochs.length - 1);
  return { epochs: kept, sampledEvery: every, totalEpochs: epochs.length };
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
  if (record.kind === 'predictions') return predictionsResult(s, tenant, record);
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
  // A report too large for one answer (thousands of classes, a long history) leaves out its largest
  // parts, named in `reportOmitted`; `report.json` behind its URL has all of it.
  const shown = withinBytes(report as Record<string, unknown>, LIST_RESPONSE_BYTES);
  return {
    id: jobId,
    status: record.status,
    metrics,
    report: shown.value as typeof report,
    ...(shown.omitted.length ? { reportOmitted: shown.omitted } : {}),
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
