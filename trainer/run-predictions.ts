/**
 * One delivery of a predictions job (`kind: "predictions"`): read the dataset through the parser,
 * predict its rows a chunk at a time with the same service code as the predict route, and write them
 * with their predictions added as CSV or JSON Lines, streamed into the store as they are made (the
 * output is never held whole). Between chunks it records progress (which tells it of a cancel); a
 * bad row fails the job naming the row and column; anything else is retried.
 */
import { csvLine } from '../core/datasets/cells.ts';
import { datasetMetas } from '../core/datasets/dataset-service.ts';
import { cellAt, parseTableStream, type Table } from '../core/datasets/tabular.ts';
import type { JobRecord } from '../core/jobs/job-record.ts';
import { type Fence, FencedError } from '../core/jobs/lifecycle.ts';
import { ApiError, PayloadTooLargeError, UnrecoverableError } from '../core/platform/errors.ts';
import { datasetKeys, jobKeys } from '../core/platform/keys.ts';
import type { ModelRunner } from '../core/predictions/model-runner.ts';
import {
  type PredictionModel,
  predictionModel,
  predictRecords,
} from '../core/predictions/predict-service.ts';
import { predictionFields, RowError } from '../core/training/transform.ts';
import { TfjsModelRunner } from '../inference/runner.ts';
import type { JobOutcome, TrainerDeps } from './run-job.ts';

/** Rows predicted per chunk (progress is recorded, and a cancel noticed, between chunks). */
const CHUNK_ROWS = 1000;

const runners = new WeakMap<object, ModelRunner>();

/** One runner (and model cache) per worker's TensorFlow.js. */
function runnerFor(deps: TrainerDeps): ModelRunner {
  let runner = runners.get(deps.tf);
  if (!runner) {
    runner = new TfjsModelRunner(deps.tf, deps.store);
    runners.set(deps.tf, runner);
  }
  return runner;
}

/**
 * Past this many bytes of output a predictions job fails as RESOURCE_LIMIT, and the store keeps
 * nothing (the output is streamed, so this bounds storage, not the worker's memory).
 */
export const MAX_PREDICTIONS_OUTPUT_BYTES = 8 * 1024 ** 3;

/** A cancel noticed between chunks, after `rows` rows. */
class Cancelled extends Error {
  readonly rows: number;
  constructor(rows: number) {
    super(`cancelled after ${rows} rows`);
    this.rows = rows;
  }
}

interface PredictionRun {
  deps: TrainerDeps;
  tenant: string;
  job: JobRecord;
  fence: Fence;
  model: PredictionModel;
  table: Table;
  request: NonNullable<JobRecord['predictions']>;
}

export async function runPredictions(deps: TrainerDeps, tenant: string, job: JobRecord): Promise<JobOutcome> {
  const fence: Fence = { attempt: job.attempt };
  const log = deps.log.child({ tenant, jobId: job.id });
  const finish = (status: 'SUCCEEDED' | 'FAILED' | 'CANCELLED', patch: Partial<JobRecord>, message: string) =>
    deps.lifecycle.finish(tenant, job.id, fence, { status, patch, message: () => message });
  try {
    const p = job.predictions;
    if (!p) throw new UnrecoverableError('INVALID_SPEC', 'The predictions job names no model or dataset.');
    const model = await loadModel(deps, tenant, p.modelJobId);
    const table = await loadTable(deps, tenant, p.datasetId);
    const run: PredictionRun = { deps, tenant, job, fence, model, table, request: p };
    let written: { size: number };
    try {
      written = await deps.store.putStream(jobKeys(tenant, job.id).predictions(p.format), outputChunks(run), {
        contentType: p.format === 'csv' ? 'text/csv' : 'application/x-ndjson',
        maxBytes: MAX_PREDICTIONS_OUTPUT_BYTES,
      });
    } catch (error) {
      if (error instanceof Cancelled) {
        await finish('CANCELLED', {}, `Cancelled after ${error.rows} of ${table.rowCount} rows.`);
        return 'done';
      }
      if (error instanceof PayloadTooLargeError)
        throw new UnrecoverableError(
          'RESOURCE_LIMIT',
          `The predictions would be over ${MAX_PREDICTIONS_OUTPUT_BYTES} bytes: split the dataset and predict each part${p.explain ? ', or leave out explain' : ''}.`,
        );
      throw error;
    }
    const name = `predictions.${p.format}`;
    await finish(
      'SUCCEEDED',
      {
        progress: { epoch: 1, epochs: 1 },
        predictions: { ...p, rows: table.rowCount, output: { name, bytes: written.size } },
      },
      `Predicted ${table.rowCount} rows into ${name}.`,
    );
    log.info('predictions finished', { rows: table.rowCount, bytes: written.size });
    return 'done';
  } catch (error) {
    if (error instanceof FencedError) return 'fenced';
    const failure =
      error instanceof RowError
        ? new UnrecoverableError('INVALID_DATA', error.message)
        : error instanceof UnrecoverableError
          ? error
          : undefined;
    if (!failure) throw error; // temporary: the worker retries after a backoff
    log.warn('predictions failed', { code: failure.code, reason: failure.message });
    try {
      await finish(
        'FAILED',
        { error: { code: failure.code, message: failure.message } },
        `Failed: ${failure.message}`,
      );
    } catch (fenceError) {
      if (fenceError instanceof FencedError) return 'fenced';
      throw fenceError;
    }
    return 'done';
  }
}

/**
 * The output, a chunk of rows at a time (what the store writes as it arrives): each chunk's rows with
 * their predictions, then the progress recorded, which tells of a cancel (thrown as `Cancelled`).
 */
async function* outputChunks(run: PredictionRun): AsyncGenerator<Uint8Array> {
  const { deps, tenant, job, fence, model, table, request: p } = run;
  const runner = runnerFor(deps);
  const label = model.job.spec.dataset.label;
  let header: string[] | undefined;
  for (let start = 0; start < table.rowCount; start += CHUNK_ROWS) {
    const end = Math.min(table.rowCount, start + CHUNK_ROWS);
    const records = recordsOf(table, start, end);
    const predictions = await predictRecords(runner, model, records, {
      explain: p.explain,
      firstRow: start + 1,
    });
    const lines: string[] = [];
    records.forEach((record, i) => {
      const row = { ...record, ...predictionFields(label, predictions[i] as never) };
      if (p.format === 'jsonl') lines.push(JSON.stringify(row));
      else {
        if (!header) {
          header = Object.keys(row);
          lines.push(csvLine(header));
        }
        lines.push(csvLine(header.map((c) => row[c])));
      }
    });
    yield Buffer.from(`${lines.join('\n')}\n`);
    const now = await deps.lifecycle.record(tenant, job.id, fence, () => ({
      progress: { epoch: 0, epochs: 1, phase: `${end} of ${table.rowCount} rows` },
    }));
    if (now.status === 'CANCELLING') throw new Cancelled(end);
  }
}

async function loadModel(deps: TrainerDeps, tenant: string, modelJobId: string): Promise<PredictionModel> {
  try {
    return await predictionModel(deps, tenant, modelJobId);
  } catch (error) {
    // The model's job was deleted (404) or is not usable: retrying cannot help.
    if (error instanceof ApiError) throw new UnrecoverableError('MODEL_NOT_AVAILABLE', error.message);
    throw error;
  }
}

async function loadTable(deps: TrainerDeps, tenant: string, datasetId: string): Promise<Table> {
  const keys = datasetKeys(tenant, datasetId);
  const meta = (await datasetMetas(deps.store).read(keys.meta))?.value;
  const stream = meta ? await deps.store.getStream(keys.data) : undefined;
  if (!meta || !stream || meta.format === 'tfjs-model')
    throw new UnrecoverableError(
      'DATASET_NOT_FOUND',
      `Dataset ${datasetId} no longer exists or has no table.`,
    );
  return parseTableStream(stream, meta.format, deps.maxRows === undefined ? {} : { maxRows: deps.maxRows });
}

/** Rows `[start, end)` of a table as records (cells as the parser read them). */
function recordsOf(table: Table, start: number, end: number): Record<string, unknown>[] {
  const records: Record<string, unknown>[] = [];
  for (let r = start; r < end; r++) {
    const record: Record<string, unknown> = {};
    table.columns.forEach((name, c) => {
      record[name] = cellAt(table, c, r);
    });
    records.push(record);
  }
  return records;
}
