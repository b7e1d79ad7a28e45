/**
 * The data step of a job run: stream the dataset through the parser (the file is never held whole),
 * hash it for the lineage, prepare rows and splits, and enforce the quotas again on what was read
 * (the data may have been uploaded again after the job was submitted).
 */
import { createHash } from 'node:crypto';
import { datasetMetas } from '../core/datasets/dataset-service.ts';
import { parseTableStream } from '../core/datasets/tabular.ts';
import type { JobSpec } from '../core/jobs/job-spec.ts';
import { UnrecoverableError } from '../core/platform/errors.ts';
import { datasetKeys } from '../core/platform/keys.ts';
import { type Limits, MAX_CLASS_LABEL_CHARS } from '../core/platform/limits.ts';
import type { ObjectStore } from '../core/platform/ports.ts';
import { type PreparedData, prepareData } from '../core/training/dataset-prep.ts';

export interface JobData {
  data: PreparedData;
  sha256: string;
  bytes: number;
}

export interface DataLimits {
  /** Most rows a job may hold in memory (default: `quotas.maxRows`). */
  readonly maxRows?: number;
  readonly quotas?: Partial<Limits> & Pick<Limits, 'maxDatasetBytes' | 'maxEpochRows'>;
  /** The memory the parsed table may take (the job's memory budget). */
  readonly maxTableBytes?: number;
  /** Between chunks: a turn of the event loop, and a cancel, the maximum runtime or a shutdown applied. */
  readonly pace?: (phase: string) => Promise<void>;
}

export async function loadJobData(
  store: ObjectStore,
  tenant: string,
  spec: JobSpec,
  limits: DataLimits,
): Promise<JobData> {
  const keys = datasetKeys(tenant, spec.dataset.id);
  const meta = (await datasetMetas(store).read(keys.meta))?.value;
  const stream = meta ? await store.getStream(keys.data) : undefined;
  if (!meta || !stream)
    throw new UnrecoverableError(
      'DATASET_NOT_FOUND',
      `Dataset ${spec.dataset.id} no longer exists or has no data.`,
    );
  if (meta.format === 'tfjs-model')
    throw new UnrecoverableError('INVALID_SPEC', `Dataset ${meta.id} is a model, not a table.`);
  const hash = createHash('sha256');
  let bytes = 0;
  async function* hashed() {
    for await (const chunk of stream as AsyncIterable<Uint8Array>) {
      await limits.pace?.('loading the data');
      hash.update(chunk);
      bytes += chunk.byteLength;
      yield chunk;
    }
  }
  const quotas = limits.quotas;
  const maxRows = limits.maxRows ?? quotas?.maxRows;
  const table = await parseTableStream(hashed(), meta.format, {
    ...(maxRows !== undefined ? { maxRows } : {}),
    ...(quotas?.maxColumns !== undefined ? { maxColumns: quotas.maxColumns } : {}),
    ...(quotas?.maxLineBytes !== undefined ? { maxLineChars: quotas.maxLineBytes } : {}),
    ...(limits.maxTableBytes !== undefined ? { maxTableBytes: limits.maxTableBytes } : {}),
  });
  await limits.pace?.('preparing the data');
  const data: PreparedData = { ...prepareData(table, spec), source: meta.format };
  checkClassLabels(data, spec.dataset.label);
  if (quotas && bytes > quotas.maxDatasetBytes) {
    throw new UnrecoverableError(
      'QUOTA_EXCEEDED',
      `The dataset is ${bytes} bytes, over the limit of ${quotas.maxDatasetBytes} (was it uploaded again after the job was submitted?).`,
    );
  }
  const work = data.rows.length * spec.training.epochs;
  if (quotas && work > quotas.maxEpochRows) {
    throw new UnrecoverableError(
      'QUOTA_EXCEEDED',
      `training.epochs × dataset rows is ${spec.training.epochs} × ${data.rows.length} = ${work}, over the limit of ${quotas.maxEpochRows}.`,
    );
  }
  return { data, sha256: hash.digest('hex'), bytes };
}

/** Class labels are kept in the job record and the model's metadata: each is bounded. */
function checkClassLabels(data: PreparedData, label: string): void {
  const long = data.classes?.find((c) => String(c).length > MAX_CLASS_LABEL_CHARS);
  if (long === undefined) return;
  throw new UnrecoverableError(
    'INVALID_DATA',
    `Column "${label}" has a class of ${String(long).length} characters; class labels may have at most ${MAX_CLASS_LABEL_CHARS} (is "${label}" the right label column?).`,
  );
}
