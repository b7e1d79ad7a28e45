/**
 * What the sweep routes do, as plain functions over the injected ports (the handlers in `functions/`
 * only parse requests and map results): submit a sweep, list, read and cancel sweeps.
 */
import { z } from 'zod';
import {
  decodeCursor,
  type Earlier,
  encodeCursor,
  IdempotencyKeys,
  replayEarlier,
  requestHash,
} from '../api/idempotency.ts';
import { checkDataset, countRows, type DatasetShape, getDatasetMeta } from '../datasets/dataset-service.ts';
import { checkBaseModel, checkPrivacy, checkResources, checkSpecSize } from '../jobs/job-checks.ts';
import { type JobSpec, jobSpec } from '../jobs/job-spec.ts';
import { ConflictError, PayloadTooLargeError, ValidationError } from '../platform/errors.ts';
import { sweepKeys } from '../platform/keys.ts';
import { log } from '../platform/log.ts';
import { parseOrThrow } from '../platform/validate.ts';
import { UNCHANGED } from '../platform/versioned-document.ts';
import type { Services } from '../services.ts';
import { advanceSweep } from './sweep-controller.ts';
import { isSweepFinished, rankTrials, type SweepRecord, sweepStatus } from './sweep-record.ts';
import { resolveSweep, type SweepPlan, sweepRequest, trialSpec } from './sweep-spec.ts';
import { SweepStore } from './sweep-store.ts';

/**
 * The checks `POST /jobs` makes, for every trial (the same functions): its dataset, label and features
 * (uploaded, a table, within the limits, with the columns named), its fine-tuning base model, its
 * model's shapes and resource estimate, and the epochs × rows quota of the longest trial on each dataset.
 */
async function checkData(s: Services, tenant: string, plan: SweepPlan): Promise<void> {
  const specs = plan.assignments.map((a) => jobSpec.parse(trialSpec(plan.sweep, a)));
  for (const datasetId of new Set(specs.map((spec) => spec.dataset.id))) {
    const meta = await getDatasetMeta(s, tenant, datasetId);
    const mine = specs.filter((spec) => spec.dataset.id === datasetId);
    // One check per distinct label and feature list, and per distinct base model: trials usually share them.
    const shapes = new Map<string, DatasetShape>();
    for (const spec of mine) {
      const key = JSON.stringify(spec.dataset);
      if (!shapes.has(key)) shapes.set(key, await checkDataset(s, tenant, spec, meta));
    }
    const bases = new Map(mine.map((spec) => [JSON.stringify(spec.model.baseModel ?? null), spec]));
    for (const spec of bases.values()) await checkBaseModel(s, tenant, spec);
    for (const spec of mine) await checkPrivacy(s, tenant, spec as JobSpec);
    const { rows, estimated } = await countRows(s, tenant, meta);
    for (const spec of mine)
      checkResources(s, spec, shapes.get(JSON.stringify(spec.dataset)) as DatasetShape, rows);
    const epochs = Math.max(...mine.map((spec) => spec.training.epochs));
    if (rows * epochs > s.limits.maxEpochRows) {
      throw new PayloadTooLargeError(
        `The longest trial trains training.epochs × dataset rows = ${epochs} × ${estimated ? 'about ' : ''}${rows} = ${rows * epochs}, over the limit of ${s.limits.maxEpochRows}; train fewer epochs or on fewer rows.`,
      );
    }
  }
}

export interface SubmitSweepResult {
  record: SweepRecord;
  /** True when an `Idempotency-Key` replay returned the sweep created earlier. */
  replayed: boolean;
}

/**
 * `POST /sweeps`: validates the request and every trial's spec, stores the sweep with its trials
 * table, and queues the first `maxParallel` trials.
 */
export async function submitSweep(
  s: Services,
  tenant: string,
  body: unknown,
  idempotencyKey?: string,
): Promise<SubmitSweepResult> {
  const request = parseOrThrow(sweepRequest, body, 'sweep');
  checkSpecSize(request, 'sweep request');
  const sweeps = new SweepStore(s.store);
  const keys = new IdempotencyKeys(s.store, 'sweep');
  const bodyHash = requestHash(body);
  const keyObject = idempotencyKey === undefined ? undefined : keys.objectKey(tenant, idempotencyKey);
  if (keyObject) {
    const earlier = await keys.earlier(keyObject);
    if (earlier) return replay(sweeps, tenant, earlier, bodyHash);
  }

  const maxRuntimeSeconds = request.spec.resources.maxRuntimeSeconds ?? s.limits.defaultMaxRuntimeSeconds;
  if (maxRuntimeSeconds > s.limits.maxRuntimeSeconds) {
    throw new ValidationError(
      `spec.resources.maxRuntimeSeconds: ${maxRuntimeSeconds} is over this deployment's limit of ${s.limits.maxRuntimeSeconds} seconds.`,
      { path: 'spec.resources.maxRuntimeSeconds', limit: s.limits.maxRuntimeSeconds },
    );
  }
  request.spec.resources = { maxRuntimeSeconds };
  const plan = resolveSweep(request, s.limits);
  await checkData(s, tenant, plan);

  const id = s.newId();
  if (keyObject) {
    const earlier = await keys.reserve(keyObject, id, bodyHash);
    if (earlier) return replay(sweeps, tenant, earlier, bodyHash);
  }
  const now = s.now().toISOString();
  await sweeps.create(tenant, {
    id,
    name: plan.sweep.name,
    status: 'RUNNING',
    createdAt: now,
    updatedAt: now,
    request: plan.sweep,
    trials: plan.assignments.map((parameters, i) => ({ trial: i + 1, parameters, status: 'PENDING' })),
  });
  // The first trials now; if this fails, the sweep is stored and the next controller pass queues them.
  const record = await advanceSweep(s, tenant, id).catch(async (error: unknown) => {
    log.warn('queueing the first trials failed; the controller retries', {
      tenant,
      sweepId: id,
      error: String(error),
    });
    return (await sweeps.get(tenant, id)).record;
  });
  return { record, replayed: false };
}

async function replay(
  sweeps: SweepStore,
  tenant: string,
  earlier: Earlier,
  requestHash: string,
): Promise<SubmitSweepResult> {
  const record = await replayEarlier(
    earlier,
    requestHash,
    'sweep',
    async (id) => (await sweeps.get(tenant, id)).record,
  );
  return { record, replayed: true };
}

export const listSweepsQuery = z.strictObject({
  status: sweepStatus.optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(1024).optional(),
});

/** `GET /sweeps`: newest first, a page at a time; each sweep without its trials table (`trials` is the count). */
export async function listSweeps(s: Services, tenant: string, query: unknown) {
  const q = parseOrThrow(listSweepsQuery, query, 'query');
  const sweeps = new SweepStore(s.store);
  const found: SweepSummary[] = [];
  let cursor = q.cursor ? decodeCursor(q.cursor, 'GET /sweeps') : undefined;
  for (let scanned = 0; found.length < q.limit && scanned < 20; scanned++) {
    const page = await sweeps.listIds(tenant, {
      limit: q.limit - found.length,
      ...(cursor ? { cursor } : {}),
    });
    // A sweep deleted between the index and its record is passed over; other read errors fail the request.
    const records = (await Promise.all(page.ids.map((id) => sweeps.find(tenant, id)))).map((v) => v?.record);
    for (const record of records)
      if (record && (!q.status || record.status === q.status)) found.push(summary(record));
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  return { sweeps: found, nextCursor: cursor ? encodeCursor(cursor) : null };
}

/** A sweep in a list: its status, the trial counts by status and the best trial, not the whole table. */
function summary(record: SweepRecord) {
  const { trials, request, ...rest } = record;
  const counts: Record<string, number> = {};
  for (const trial of trials) counts[trial.status] = (counts[trial.status] ?? 0) + 1;
  return { ...rest, objective: request.objective, trials: trials.length, trialStatuses: counts };
}
export type SweepSummary = ReturnType<typeof summary>;

/**
 * `GET /sweeps/{id}`: the record (status, trials table, best trial), the trials ranked by the
 * objective, and presigned URLs of the report and its plots once written. Reading a sweep that is
 * not finished also advances it (the controller is idempotent), so a sweep never stalls for want of a
 * job's end.
 */
export async function getSweep(s: Services, tenant: string, sweepId: string) {
  const sweeps = new SweepStore(s.store);
  let record = (await sweeps.get(tenant, sweepId)).record;
  if (!isSweepFinished(record.status) || !record.reportUpdatedAt) {
    record = await advanceSweep(s, tenant, sweepId).catch((error: unknown) => {
      log.warn('advancing a sweep on read failed', { tenant, sweepId, error: String(error) });
      return record;
    });
  }
  return view(s, tenant, record);
}

async function view(s: Services, tenant: string, record: SweepRecord) {
  const ranking = rankTrials(record).map((t) => t.trial);
  if (!record.reportUpdatedAt) return { ...record, ranking, artifacts: {} };
  const keys = sweepKeys(tenant, record.id);
  const expiresInSeconds = s.limits.downloadUrlSeconds;
  const sign = (key: string) => s.store.presignGet(key, { expiresInSeconds });
  const paths = Object.keys(record.request.parameters);
  const urls = await Promise.all([sign(keys.report), ...paths.map((p) => sign(keys.plot(p)))]);
  const artifacts: Record<string, string> = { 'report.json': urls[0] as string };
  paths.forEach((p, i) => {
    artifacts[keys.plot(p).slice(keys.prefix.length + 'plots/'.length)] = urls[i + 1] as string;
  });
  return {
    ...record,
    ranking,
    artifacts,
    expiresAt: new Date(s.now().getTime() + expiresInSeconds * 1000).toISOString(),
  };
}
export type SweepView = Awaited<ReturnType<typeof view>>;

/**
 * `POST /sweeps/{id}/cancel`: no trial is queued any more; queued trials are cancelled at once and
 * running ones after their current epoch; the sweep is CANCELLED once they have all ended.
 */
export async function cancelSweep(s: Services, tenant: string, sweepId: string) {
  const sweeps = new SweepStore(s.store);
  const now = s.now().toISOString();
  await sweeps.update(tenant, sweepId, (current) => {
    if (current.status === 'RUNNING')
      return { ...current, status: 'CANCELLING', cancelRequestedAt: now, updatedAt: now };
    if (current.status === 'CANCELLING') return UNCHANGED;
    throw new ConflictError(
      `Sweep ${sweepId} is ${current.status}; only a RUNNING sweep can be cancelled.`,
      'INVALID_STATE',
      { status: current.status },
    );
  });
  return view(s, tenant, await advanceSweep(s, tenant, sweepId));
}
