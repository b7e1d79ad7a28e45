/**
 * Datasets as a resource: listed newest first, read, deleted (refused while a queued or running job,
 * or an unfinished sweep, uses one), and counted against the tenant's storage quota.
 */
import { z } from 'zod';
import { decodeCursor, encodeCursor } from '../api/idempotency.ts';
import { isTerminal } from '../jobs/job-record.ts';
import { ApiError, ConflictError, NotFoundError } from '../platform/errors.ts';
import { reverseUlid } from '../platform/ids.ts';
import {
  datasetIndexPrefix,
  datasetKeys,
  datasetsPrefix,
  isValidId,
  tenantPrefix,
} from '../platform/keys.ts';
import { parseOrThrow } from '../platform/validate.ts';
import type { Services } from '../services.ts';
import { SweepStore } from '../sweeps/sweep-store.ts';
import { type DatasetMeta, findDatasetMeta } from './dataset-service.ts';

const notFound = (id: string) => new NotFoundError(`No dataset ${id} in this account.`, 'DATASET_NOT_FOUND');

/**
 * A tenant's storage: the bytes of every dataset object (data, uploaded models, descriptions), and
 * the bytes reserved by datasets created but not uploaded yet whose upload URLs are still valid (each
 * may still receive the largest upload), so that creating many datasets before uploading any cannot
 * get around the quota.
 */
export async function storageUsed(
  s: Pick<Services, 'store' | 'limits' | 'now'>,
  tenant: string,
): Promise<{ bytes: number; reservedBytes: number }> {
  let bytes = 0;
  const folders = new Map<string, { created?: Date; uploaded: boolean }>();
  const prefix = datasetsPrefix(tenant);
  let cursor: string | undefined;
  do {
    const page = await s.store.list(prefix, cursor ? { cursor } : {});
    for (const o of page.objects) {
      bytes += o.size;
      const [folder = '', file = ''] = o.key.slice(prefix.length).split('/');
      const entry = folders.get(folder) ?? { uploaded: false };
      if (file === 'dataset.json') entry.created = o.lastModified;
      else entry.uploaded = true;
      folders.set(folder, entry);
    }
    cursor = page.nextCursor;
  } while (cursor);
  const validSince = s.now().getTime() - s.limits.uploadUrlSeconds * 1000;
  let pending = 0;
  for (const f of folders.values())
    if (!f.uploaded && f.created && f.created.getTime() > validSince) pending++;
  return { bytes, reservedBytes: pending * s.limits.maxDatasetBytes };
}

/** Refuses a new dataset once the tenant's datasets, uploaded or still to come, fill its storage quota. */
export async function checkStorageQuota(s: Services, tenant: string): Promise<void> {
  const { bytes, reservedBytes } = await storageUsed(s, tenant);
  const quota = s.limits.maxStorageBytes;
  if (bytes + reservedBytes >= quota) {
    const pending = reservedBytes
      ? ` (${bytes} uploaded, and ${reservedBytes} held for datasets created in the last ${s.limits.uploadUrlSeconds} s whose data has not arrived: each may still receive ${s.limits.maxDatasetBytes})`
      : '';
    throw new ApiError(
      413,
      'STORAGE_QUOTA_EXCEEDED',
      `This account's datasets take ${bytes + reservedBytes} bytes${pending}, its storage quota is ${quota}; delete datasets it no longer needs (DELETE /datasets/{id}, or descent datasets delete ID)${reservedBytes ? ', or upload the data of those created' : ''}.`,
      { usedBytes: bytes, reservedBytes, quotaBytes: quota },
    );
  }
}

/** The newest-first marker of a new dataset. */
export const indexDataset = (s: Pick<Services, 'store'>, tenant: string, id: string) =>
  s.store.put(`${datasetIndexPrefix(tenant)}${reverseUlid(id)}`, id);

/** A dataset as the API shows it: its description, its size and whether its data is there. */
async function viewOf(s: Pick<Services, 'store'>, tenant: string, meta: DatasetMeta) {
  const keys = datasetKeys(tenant, meta.id);
  const files = meta.format === 'tfjs-model' ? [keys.modelJson, keys.weights] : [keys.data];
  const heads = await Promise.all(files.map((k) => s.store.head(k)));
  return {
    id: meta.id,
    name: meta.name,
    format: meta.format,
    createdAt: meta.createdAt,
    uploaded: heads.every((h) => h !== undefined),
    bytes: heads.reduce((sum, h) => sum + (h?.size ?? 0), 0),
    ...(meta.rows !== undefined ? { rows: meta.rows } : {}),
  };
}
export type DatasetView = Awaited<ReturnType<typeof viewOf>>;

export const listDatasetsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(1024).optional(),
});

/**
 * Datasets created before the listing markers existed get theirs, once per tenant (a data migration,
 * recorded under `migrations/`): listing them reads no dataset twice and skips none.
 */
async function indexEarlierDatasets(s: Pick<Services, 'store'>, tenant: string): Promise<void> {
  const done = `${tenantPrefix(tenant)}migrations/dataset-index`;
  if (await s.store.head(done)) return;
  const prefix = datasetsPrefix(tenant);
  let cursor: string | undefined;
  do {
    const page = await s.store.list(prefix, cursor ? { cursor } : {});
    for (const o of page.objects) {
      const [id, file] = o.key.slice(prefix.length).split('/');
      if (file === 'dataset.json' && id && isValidId(id)) await indexDataset(s, tenant, id);
    }
    cursor = page.nextCursor;
  } while (cursor);
  await s.store.put(done, new Date().toISOString());
}

/** `GET /datasets`: newest first, a page at a time. */
export async function listDatasets(s: Services, tenant: string, query: unknown) {
  const q = parseOrThrow(listDatasetsQuery, query, 'query');
  if (!q.cursor) await indexEarlierDatasets(s, tenant);
  const prefix = datasetIndexPrefix(tenant);
  const cursor = q.cursor ? decodeCursor(q.cursor, 'GET /datasets') : undefined;
  const page = await s.store.list(prefix, { limit: q.limit, ...(cursor ? { cursor } : {}) });
  const ids = page.objects.map((o) => reverseUlid(o.key.slice(prefix.length)));
  const metas = await Promise.all(ids.map((id) => findDatasetMeta(s, tenant, id)));
  const datasets = await Promise.all(
    metas.filter((m): m is DatasetMeta => m !== undefined).map((m) => viewOf(s, tenant, m)),
  );
  return { datasets, nextCursor: page.nextCursor ? encodeCursor(page.nextCursor) : null };
}

/** `GET /datasets/{id}`. */
export async function getDataset(s: Services, tenant: string, id: string): Promise<DatasetView> {
  const meta = await findDatasetMeta(s, tenant, id);
  if (!meta) throw notFound(id);
  return viewOf(s, tenant, meta);
}

/** Which active job or unfinished sweep uses a dataset (for training, fine-tuning or predictions). */
async function usersOf(s: Services, tenant: string, id: string): Promise<string[]> {
  const users: string[] = [];
  for (const jobId of await s.lifecycle.activeJobs.jobIds(tenant)) {
    const found = await s.lifecycle.jobs.find(tenant, jobId);
    if (!found || isTerminal(found.record.status)) continue;
    const { spec, predictions, status } = found.record;
    const base = spec.model.baseModel;
    if (
      spec.dataset.id === id ||
      (base && 'datasetId' in base && base.datasetId === id) ||
      predictions?.datasetId === id
    )
      users.push(`job ${jobId} (${status})`);
  }
  const sweeps = new SweepStore(s.store);
  for (const sweepId of await sweeps.activeIds(tenant)) {
    const found = await sweeps.find(tenant, sweepId);
    const dataset = (found?.record.request.spec as { dataset?: { id?: string } } | undefined)?.dataset;
    if (dataset?.id === id) users.push(`sweep ${sweepId} (${found?.record.status})`);
  }
  return users;
}

/** `DELETE /datasets/{id}`: its objects and marker; a 409 while an active job or sweep uses it. */
export async function deleteDataset(s: Services, tenant: string, id: string) {
  if (!isValidId(id) || !(await findDatasetMeta(s, tenant, id))) throw notFound(id);
  const users = await usersOf(s, tenant, id);
  if (users.length > 0) {
    throw new ConflictError(
      `Dataset ${id} is used by ${users.join(', ')}; cancel or wait for ${users.length > 1 ? 'them' : 'it'} first.`,
      'DATASET_IN_USE',
      { usedBy: users },
    );
  }
  const keys = datasetKeys(tenant, id);
  let deletedObjects = 0;
  let cursor: string | undefined;
  do {
    const page = await s.store.list(keys.prefix, cursor ? { cursor } : {});
    const rest = page.objects.filter((o) => o.key !== keys.meta);
    await Promise.all(rest.map((o) => s.store.delete(o.key)));
    deletedObjects += rest.length;
    cursor = page.nextCursor;
  } while (cursor);
  await s.store.delete(keys.meta);
  await s.store.delete(`${datasetIndexPrefix(tenant)}${reverseUlid(id)}`);
  return { id, deleted: true, deletedObjects: deletedObjects + 1 };
}
