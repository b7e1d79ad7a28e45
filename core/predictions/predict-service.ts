/**
 * Predictions from a SUCCEEDED job's model: raw rows in (as in the training file), its fitted
 * preprocessing applied by the one shared transform (`training/transform.ts`), the model run through
 * the `ModelRunner` port, and the outputs decoded into labels with probabilities, or values;
 * optionally with integrated-gradients attributions per original column. Used by `POST
 * /jobs/{id}/predict` and by batch predictions on the workers.
 */
import { z } from 'zod';
import type { JobRecord } from '../jobs/job-record.ts';
import { BadRequestError, ConflictError } from '../platform/errors.ts';
import { jobKeys } from '../platform/keys.ts';
import type { ObjectStore } from '../platform/ports.ts';
import { parseOrThrow } from '../platform/validate.ts';
import { VersionedDocuments } from '../platform/versioned-document.ts';
import type { Services } from '../services.ts';
import {
  baselineRecord,
  columnSlices,
  decodeOutputs,
  encodeRecord,
  encodeRecords,
  type FittedPreprocessing,
  inputWidth,
  type Prediction,
  RowError,
  rowProbabilities,
} from '../training/transform.ts';
import type { ExplainTarget, ModelRunner } from './model-runner.ts';

/** Most rows of one `POST /jobs/{id}/predict` (its body is at most 1 MiB too). */
export const MAX_PREDICT_ROWS = 1000;
/** Trapezoid steps of integrated gradients: completeness holds to about 1% for the models here. */
export const EXPLAIN_STEPS = 64;

export const predictRequest = z.strictObject({
  /** Raw rows, column → value, as in the training file (extra columns and the label are ignored). */
  rows: z.array(z.unknown()).min(1).max(MAX_PREDICT_ROWS),
  /** Add integrated-gradients attributions per input column to every prediction. */
  explain: z.boolean().default(false),
});

/** `preprocessing.json`, read for its columns (the transform module knows the rest). */
const fittedSchema = z.looseObject({
  version: z.literal(1),
  columns: z.array(z.looseObject({ name: z.string(), kind: z.string() })).min(1),
  inputShape: z.array(z.int()),
});

/** What a prediction needs besides the model: the fitted transform, the task and the classes. */
export interface PredictionModel {
  readonly tenant: string;
  readonly job: JobRecord;
  readonly fitted: FittedPreprocessing;
}

/** A SUCCEEDED training job's record and fitted preprocessing; 404 / 409 otherwise. */
export async function predictionModel(
  s: Pick<Services, 'store' | 'lifecycle'>,
  tenant: string,
  jobId: string,
): Promise<PredictionModel> {
  const { record } = await s.lifecycle.jobs.get(tenant, jobId);
  if (record.kind === 'predictions')
    throw new BadRequestError(
      `Job ${jobId} is a batch of predictions, not a model; predict with the job that trained the model (${record.predictions?.modelJobId}).`,
      undefined,
      'NOT_A_MODEL',
    );
  if (record.status !== 'SUCCEEDED')
    throw new ConflictError(
      `Job ${jobId} is ${record.status}; predictions need a SUCCEEDED job's model.`,
      'NOT_READY',
      { status: record.status },
    );
  const fitted = await readFitted(s.store, tenant, jobId);
  return { tenant, job: record, fitted };
}

export async function readFitted(
  store: ObjectStore,
  tenant: string,
  jobId: string,
): Promise<FittedPreprocessing> {
  const found = await new VersionedDocuments(store, fittedSchema, { what: 'fitted preprocessing' }).read(
    jobKeys(tenant, jobId).preprocessing,
  );
  if (!found)
    throw new ConflictError(
      `Job ${jobId} has no preprocessing.json; it cannot be used for predictions.`,
      'NOT_READY',
    );
  return found.value as unknown as FittedPreprocessing;
}

/** One row's prediction, with its explanation when asked for. */
export type RowPrediction = Prediction & {
  attributions?: Record<string, number>;
  explanation?: { of: string; value: number; baseline: number };
};

/** Which output each row's explanation follows: the predicted class's probability, or the value. */
function targetsOf(model: PredictionModel, raw: Float32Array, n: number): ExplainTarget[] {
  const classes = model.job.classes;
  if (model.job.spec.task === 'regression' || !classes)
    return Array.from({ length: n }, () => ({ unit: 0, sign: 1 }));
  const units = raw.length / n;
  return Array.from({ length: n }, (_, i) => {
    const p = rowProbabilities(raw, i, units, classes.length);
    const best = p.indexOf(Math.max(...p));
    return units === 1 ? { unit: 0, sign: best === 1 ? 1 : -1 } : { unit: best, sign: 1 };
  });
}

/**
 * Predictions for raw records (already checked to be at most what the caller allows). A row that
 * cannot be used is a `RowError` naming its number (from `firstRow`) and column.
 */
export async function predictRecords(
  runner: ModelRunner,
  model: PredictionModel,
  records: readonly unknown[],
  options: { explain: boolean; firstRow?: number },
): Promise<RowPrediction[]> {
  const { fitted, job } = model;
  const n = records.length;
  const x = encodeRecords(fitted, records, options.firstRow ?? 1);
  const ref = { tenant: model.tenant, jobId: job.id };
  const raw = await runner.run(ref, x, n);
  const meta = { task: job.spec.task, ...(job.classes ? { classes: job.classes } : {}) };
  const predictions: RowPrediction[] = decodeOutputs(meta, raw, n);
  if (!options.explain) return predictions;

  const baseline = encodeRecord(fitted, baselineRecord(fitted));
  const targets = targetsOf(model, raw, n);
  const [attributions, baseRaw] = await Promise.all([
    runner.integratedGradients(ref, x, n, baseline, targets, EXPLAIN_STEPS),
    runner.run(ref, baseline, 1),
  ]);
  const units = raw.length / n;
  const width = inputWidth(fitted);
  const slices = columnSlices(fitted);
  predictions.forEach((prediction, i) => {
    const t = targets[i] as ExplainTarget;
    const perColumn: Record<string, number> = {};
    for (const { name, start, width: w } of slices) {
      let sum = 0;
      for (let j = start; j < start + w; j++) sum += attributions[i * width + j] as number;
      perColumn[name] = sum;
    }
    // The explained output: sign · output[unit], shown as a probability (1 − p for a sigmoid's first class).
    const shift = t.sign < 0 ? 1 : 0;
    const value = shift + t.sign * (raw[i * units + t.unit] as number);
    const base = shift + t.sign * (baseRaw[t.unit] as number);
    const of =
      'label' in prediction ? `probability of ${JSON.stringify(prediction.label)}` : 'predicted value';
    prediction.attributions = perColumn;
    prediction.explanation = { of, value, baseline: base };
  });
  return predictions;
}

/** `POST /jobs/{id}/predict`: up to 1,000 raw rows → one prediction per row, in order. */
export async function predictOnline(
  s: Pick<Services, 'store' | 'lifecycle'>,
  runner: ModelRunner,
  tenant: string,
  jobId: string,
  body: unknown,
) {
  const request = parseOrThrow(predictRequest, body, 'predict request');
  const model = await predictionModel(s, tenant, jobId);
  try {
    const predictions = await predictRecords(runner, model, request.rows, { explain: request.explain });
    return {
      jobId,
      task: model.job.spec.task,
      label: model.job.spec.dataset.label,
      predictions,
      ...(request.explain ? { explanation: explanationNote(model.fitted) } : {}),
    };
  } catch (error) {
    if (error instanceof RowError) {
      throw new BadRequestError(
        `rows[${error.row - 1}] (row ${error.row}), column "${error.column}": ${error.problem}`,
        { row: error.row, index: error.row - 1, column: error.column },
        'INVALID_ROW',
      );
    }
    throw error;
  }
}

/** How the attributions were computed, once per answer. */
export function explanationNote(fitted: FittedPreprocessing) {
  return {
    method: 'integratedGradients',
    steps: EXPLAIN_STEPS,
    baseline: baselineRecord(fitted),
    about:
      "Each attribution is the column's share of (output − output at the baseline); they add up to that difference. The baseline row holds each numeric column's training mean, each categorical column's most frequent category and the mean date.",
  };
}
