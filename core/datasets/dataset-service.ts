/**
 * Datasets: created with a presigned upload URL, checked cheaply at submit (uploaded, a table, within
 * the size limit, with the columns the spec names), and their rows counted for the epochs × rows quota.
 */
import { z } from 'zod';
import { createDatasetRequest, type DatasetFormat, featureName, type JobSpec } from '../jobs/job-spec.ts';
import { BadRequestError, PayloadTooLargeError, ValidationError } from '../platform/errors.ts';
import { datasetKeys, isValidId } from '../platform/keys.ts';
import type { ObjectStore } from '../platform/ports.ts';
import { parseOrThrow } from '../platform/validate.ts';
import { UNCHANGED, VersionedDocuments } from '../platform/versioned-document.ts';
import type { Services } from '../services.ts';
import { delimiterHint } from '../training/dataset-prep.ts';
import { checkStorageQuota, indexDataset } from './dataset-catalog.ts';
import { peekColumns } from './tabular.ts';

export const datasetMeta = z.object({
  id: z.string(),
  name: z.string(),
  format: z.enum(['csv', 'jsonl', 'tfjs-model']),
  createdAt: z.string(),
  /** Data rows, counted at the first submit that uses the dataset... */
  rows: z.int().optional(),
  /** ...of the data object with this ETag. */
  rowsEtag: z.string().optional(),
});
export type DatasetMeta = z.infer<typeof datasetMeta>;

/** `dataset.json` documents, validated on read. */
export const datasetMetas = (store: ObjectStore) =>
  new VersionedDocuments(store, datasetMeta, { what: 'dataset description' });

const CONTENT_TYPES: Record<Exclude<DatasetFormat, 'tfjs-model'>, string> = {
  csv: 'text/csv',
  jsonl: 'application/x-ndjson',
};

export async function createDataset(s: Services, tenant: string, body: unknown) {
  const request = parseOrThrow(createDatasetRequest, body, 'dataset request');
  await checkStorageQuota(s, tenant);
  const id = s.newId();
  const keys = datasetKeys(tenant, id);
  const meta: DatasetMeta = {
    id,
    name: request.name,
    format: request.format,
    createdAt: s.now().toISOString(),
  };
  await datasetMetas(s.store).create(keys.meta, meta);
  await indexDataset(s, tenant, id);
  const expiresInSeconds = s.limits.uploadUrlSeconds;
  const expiresAt = new Date(s.now().getTime() + expiresInSeconds * 1000).toISOString();
  const common = {
    datasetId: id,
    name: meta.name,
    format: meta.format,
    uploadMethod: 'PUT' as const,
    maxBytes: s.limits.maxDatasetBytes,
    expiresAt,
  };
  if (request.format === 'tfjs-model') {
    // A TensorFlow.js layers model for fine-tuning: two files, each with its own URL.
    const contentType = { 'model.json': 'application/json', 'weights.bin': 'application/octet-stream' };
    const [modelJson, weights] = await Promise.all([
      s.store.presignPut(keys.modelJson, { expiresInSeconds, contentType: contentType['model.json'] }),
      s.store.presignPut(keys.weights, { expiresInSeconds, contentType: contentType['weights.bin'] }),
    ]);
    return {
      ...common,
      uploadUrl: modelJson,
      uploadHeaders: { 'content-type': contentType['model.json'] },
      uploadUrls: { 'model.json': modelJson, 'weights.bin': weights },
      uploadHeadersByFile: {
        'model.json': { 'content-type': contentType['model.json'] },
        'weights.bin': { 'content-type': contentType['weights.bin'] },
      },
    };
  }
  const uploadUrl = await s.store.presignPut(keys.data, {
    expiresInSeconds,
    contentType: CONTENT_TYPES[request.format],
  });
  return { ...common, uploadUrl, uploadHeaders: { 'content-type': CONTENT_TYPES[request.format] } };
}

/** The dataset's description, or `undefined` when this tenant has no such dataset. */
export async function findDatasetMeta(
  s: Pick<Services, 'store'>,
  tenant: string,
  datasetId: string,
): Promise<DatasetMeta | undefined> {
  if (!isValidId(datasetId)) return undefined;
  return (await datasetMetas(s.store).read(datasetKeys(tenant, datasetId).meta))?.value;
}

/** The dataset's description, or a 400 naming `dataset.id` when there is none. */
export async function getDatasetMeta(s: Services, tenant: string, datasetId: string): Promise<DatasetMeta> {
  const meta = await findDatasetMeta(s, tenant, datasetId);
  if (!meta) {
    throw new BadRequestError(
      `dataset.id: no dataset ${datasetId} in this account; create one with POST /datasets.`,
      { path: 'dataset.id' },
      'UNKNOWN_DATASET',
    );
  }
  return meta;
}

/** What the checks at submit learned of a dataset: its size, and its columns when the format says. */
export interface DatasetShape {
  readonly bytes: number;
  /** CSV: the header's column names; JSON Lines: `undefined` (rows may add columns). */
  readonly columns?: string[];
}

/**
 * The header of a CSV dataset, read in growing ranges until its end of line: a 413 when it has more
 * columns than the limit or is longer than the longest line allowed.
 */
async function readHeader(
  s: Services,
  key: string,
  size: number,
  datasetId: string,
): Promise<string[] | undefined> {
  const { maxLineBytes, maxColumns } = s.limits;
  for (let length = 64 * 1024; ; length *= 4) {
    const end = Math.min(size, length, maxLineBytes + 1) - 1;
    const head = await s.store.get(key, { range: { start: 0, end } });
    if (!head) return undefined;
    const header = peekColumns(head.body, 'csv');
    const fields = header?.length ?? countFields(head.body);
    if (fields > maxColumns) {
      throw new PayloadTooLargeError(
        `Dataset ${datasetId} has ${header ? '' : 'at least '}${fields} columns; the most a dataset may have is ${maxColumns} (setting DESCENT_MAX_COLUMNS).`,
        'TOO_MANY_COLUMNS',
        { columns: fields, limit: maxColumns },
      );
    }
    if (header) return header;
    if (end + 1 >= size) return undefined; // one line without an end: the parser reads it
    if (end + 1 > maxLineBytes) {
      throw new PayloadTooLargeError(
        `Dataset ${datasetId}: its header line is longer than ${maxLineBytes} bytes, the longest line allowed (setting DESCENT_MAX_LINE_BYTES).`,
        'LINE_TOO_LONG',
        { limit: maxLineBytes },
      );
    }
  }
}

/** Fields of a CSV line read so far (commas outside quotes, plus one). */
function countFields(bytes: Uint8Array): number {
  let fields = 1;
  let quoted = false;
  for (const b of bytes) {
    if (b === 34) quoted = !quoted;
    else if (b === 44 && !quoted) fields++;
  }
  return fields;
}

/** The checks at submit that can be made cheaply: the data is uploaded, a table, within the limits, and has the columns. */
export async function checkDataset(
  s: Services,
  tenant: string,
  spec: { dataset: Pick<JobSpec['dataset'], 'id' | 'label' | 'features' | 'exclude'> },
  meta: DatasetMeta,
  options: { columns?: boolean } = {},
): Promise<DatasetShape> {
  const keys = datasetKeys(tenant, meta.id);
  if (meta.format === 'tfjs-model') {
    throw new BadRequestError(
      `dataset.id: dataset ${meta.id} is a TensorFlow.js model; use it as model.baseModel.datasetId, and give a CSV or JSON Lines dataset here.`,
      { path: 'dataset.id' },
      'WRONG_DATASET_FORMAT',
    );
  }
  const info = await s.store.head(keys.data);
  if (!info) {
    throw new BadRequestError(
      `dataset.id: dataset ${meta.id} has no data yet; PUT the file to its uploadUrl first.`,
      { path: 'dataset.id' },
      'DATASET_NOT_UPLOADED',
    );
  }
  if (info.size === 0)
    throw new BadRequestError(
      `dataset.id: dataset ${meta.id} is empty.`,
      { path: 'dataset.id' },
      'EMPTY_DATASET',
    );
  if (info.size > s.limits.maxDatasetBytes) {
    throw new PayloadTooLargeError(
      `Dataset ${meta.id} is ${info.size} bytes; the limit is ${s.limits.maxDatasetBytes}.`,
    );
  }
  if (spec.dataset.features?.map(featureName).includes(spec.dataset.label)) {
    throw new ValidationError(`dataset.features must not include the label "${spec.dataset.label}".`);
  }
  if (options.columns === false) return { bytes: info.size };
  const columns = meta.format === 'csv' ? await readHeader(s, keys.data, info.size, meta.id) : undefined;
  if (!columns) return { bytes: info.size };
  const wanted = [
    spec.dataset.label,
    ...(spec.dataset.features ?? []).map(featureName),
    ...(spec.dataset.exclude ?? []),
  ];
  const missing = wanted.filter((c) => !columns.includes(c));
  if (missing.length > 0) {
    throw new ValidationError(
      `The dataset has no column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')}; its columns are ${columns.map((c) => `"${c}"`).join(', ')}.${delimiterHint(columns)}`,
      { missing, columns },
    );
  }
  return { bytes: info.size, columns };
}

/**
 * Datasets up to this size are counted exactly at submit: one streamed read, well under a second even
 * on a small Lambda. Larger ones are estimated from a sample, so that a submit stays far inside API
 * Gateway's 30 seconds whatever the upload limit; the trainer enforces the quota on the exact count.
 */
export const EXACT_COUNT_BYTES = 16 * 1024 * 1024;
/** The head of a large dataset read to estimate its rows. */
export const SAMPLE_BYTES = 1024 * 1024;

/** A dataset's data rows for the epochs × rows quota: exact (and cached), or estimated from a sample. */
export interface RowCount {
  readonly rows: number;
  readonly estimated: boolean;
}

const newlines = (bytes: Uint8Array): number => {
  let n = 0;
  for (const byte of bytes) if (byte === 10) n++;
  return n;
};

/**
 * Data rows of a dataset (lines after a CSV's header): cached in its dataset.json once counted, counted
 * exactly up to `EXACT_COUNT_BYTES`, else estimated as its size over the mean line length of its
 * first `SAMPLE_BYTES` (not cached).
 */
export async function countRows(s: Services, tenant: string, meta: DatasetMeta): Promise<RowCount> {
  const keys = datasetKeys(tenant, meta.id);
  // The count holds for the bytes it was made on: an upload to the same URL later counts again.
  const info = await s.store.head(keys.data);
  if (!info) return { rows: 0, estimated: false };
  if (meta.rows !== undefined && meta.rowsEtag === info.etag) return { rows: meta.rows, estimated: false };
  const header = meta.format === 'csv' ? 1 : 0;
  if (info.size > EXACT_COUNT_BYTES) {
    const sample = await s.store.get(keys.data, { range: { start: 0, end: SAMPLE_BYTES - 1 } });
    const lines = sample ? newlines(sample.body) : 0;
    const rows = lines > 0 ? Math.round((info.size / SAMPLE_BYTES) * lines) - header : 0;
    return { rows: Math.max(0, rows), estimated: true };
  }
  const stream = await s.store.getStream(keys.data);
  if (!stream) return { rows: 0, estimated: false };
  let lines = 0;
  let last = 10;
  for await (const chunk of stream) {
    lines += newlines(chunk);
    if (chunk.length) last = chunk[chunk.length - 1] as number;
  }
  if (last !== 10) lines++;
  const rows = Math.max(0, lines - header);
  await datasetMetas(s.store).update(keys.meta, (current) =>
    current ? { ...current, rows, rowsEtag: info.etag } : UNCHANGED,
  );
  return { rows, estimated: false };
}
