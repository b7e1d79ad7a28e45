/**
 * One delivery of a predictions job (`kind: "predictions"`): read the dataset through the parser,
 * predict its rows a chunk at a time with the same service code as the predict route, and write them
 * with their predictions added as CSV or JSON Lines. Between chunks it records progress (which tells
 * it of a cancel); a bad row fails the job naming the row and column; anything else is retried.
 */
import { csvLine } from '../core/datasets/cells.ts';
import { datasetMetas } from '../core/datasets/dataset-service.ts';
import { cellAt, parseTableStream, type Table } from '../core/datasets/tabular.ts';
import type { JobRecord } from '../core/jobs/job-record.ts';
import { type Fence, FencedError } from '../core/jobs/lifecycle.ts';
import { ApiError, UnrecoverableError } from '../core/platform/errors.ts';
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
    const runner = runnerFor(deps);
    const label = model.job.spec.dataset.label;
    const lines: string[] = [];
    let header: string[] | undefined;
    for (let start = 0; start < table.rowCount; start += CHUNK_ROWS) {
      const end = Math.min(table.rowCount, start + CHUNK_ROWS);
      const records = recordsOf(table, start, end);
      const predictions = await predictRecords(runner, model, records, {
        explain: p.explain,
        firstRow: start + 1,
      });
      records.forEach((record, i) => {
        const row = { ...record, ...predictionFields(label, predictions[i] as never) };
        if (p.format === 'jsonl') lines.push(JSON.stringify(row));
        else {
          header ??= Object.keys(row);
          if (lines.length === 0) lines.push(csvLine(header));
          lines.push(csvLine(header.map((c) => row[c])));
        }
      });
      const now = await deps.lifecycle.record(tenant, job.id, fence, () => ({
        progress: { epoch: 0, epochs: 1, phase: `${end} of ${table.rowCount} rows` },
      }));
      if (now.status === 'CANCELLING') {
        await finish('CANCELLED', {}, `Cancelled after ${end} of ${table.rowCount} rows.`);
        return 'done';
      }
    }
    const body = `${lines.join('\n')}\n`;
    const name = `predictions.${p.format}`;
    await deps.store.put(jobKeys(tenant, job.id).predictions(p.format), body, {
      contentType: p.format === 'csv' ? 'text/csv' : 'application/x-ndjson',
    });
    const bytes = Buffer.byteLength(body);
    await finish(
      'SUCCEEDED',
      {
        progress: { epoch: 1, epochs: 1 },
        predictions: { ...p, rows: table.rowCount, output: { name, bytes } },
      },
      `Predicted ${table.rowCount} rows into ${name}.`,
    );
    log.info('predictions finished', { rows: table.rowCount, bytes });
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
