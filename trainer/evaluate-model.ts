/**
 * The evaluate step of a job run: the delivered model scored on its training, validation and test
 * rows, a k-fold fold scored on its held-out rows, and permutation importance on held-out rows.
 */
import type { EpochMetrics } from '../core/jobs/job-record.ts';
import type { JobSpec } from '../core/jobs/job-spec.ts';
import type { PreparedData } from '../core/training/dataset-prep.ts';
import { headlineMetric, scalars } from '../core/training/report.ts';
import type { TF } from './backend.ts';
import {
  type FeatureImportance,
  permutationImportance,
  predictRaw,
  scoreClassification,
  scoreRegression,
} from './evaluate.ts';
import { type EncodedSet, encodeSet, type FitResult } from './fit.ts';

/** Row indices of a hold-out set are reported up to this many (so anyone can recompute its metrics). */
const MAX_REPORTED_ROW_INDICES = 100_000;
/** Permutation importance uses at most this many rows. */
const IMPORTANCE_MAX_ROWS = 5000;

export function score(data: PreparedData, raw: Float32Array, actual: Float32Array) {
  return data.classes ? scoreClassification(raw, actual, data.classes) : scoreRegression(raw, actual);
}

/** One fold of a k-fold run, scored on its validation rows. */
export function scoreFold(
  tf: TF,
  data: PreparedData,
  fold: number,
  result: FitResult,
): Record<string, unknown> {
  const validation = result.validation as EncodedSet;
  const raw = predictRaw(
    tf,
    result.outcome.model,
    validation.xData,
    validation.rows.length,
    result.fitted.inputShape,
  );
  return {
    fold,
    trainingRows: result.train.rows.length,
    validationRows: validation.rows.length,
    epochsRun: result.outcome.history.length,
    ...scalars(score(data, raw, validation.actual)),
    loss: result.outcome.history.at(-1)?.valLoss,
  };
}

export interface Evaluation {
  training: Record<string, unknown>;
  validation?: Record<string, unknown>;
  test?: Record<string, unknown>;
  featureImportance: FeatureImportance[];
  importance: { metric: string; set: 'validation' | 'test' | 'training'; rows: number };
  /** The test set's tensors, for the caller to dispose. */
  testSet?: EncodedSet;
}

export function evaluateDelivered(
  tf: TF,
  spec: JobSpec,
  data: PreparedData,
  final: FitResult,
  last: EpochMetrics | undefined,
): Evaluation {
  const { model } = final.outcome;
  const { fitted } = final;
  const evaluate = (set: EncodedSet) =>
    score(data, predictRaw(tf, model, set.xData, set.rows.length, fitted.inputShape), set.actual);
  const testSet = data.testRows.length ? encodeSet(tf, spec, data, fitted, data.testRows) : undefined;
  const validation = final.validation
    ? {
        ...evaluate(final.validation),
        loss: last?.valLoss,
        /** 0-based data-row indices of the hold-out set, so anyone can recompute these metrics. */
        ...(final.validation.rows.length <= MAX_REPORTED_ROW_INDICES
          ? { rowIndices: Array.from(final.validation.rows) }
          : {}),
      }
    : undefined;

  // What the model relies on: permutation importance on held-out rows (validation, else test, else training).
  const importanceSet = final.validation ?? testSet ?? final.train;
  const rows = Math.min(importanceSet.rows.length, IMPORTANCE_MAX_ROWS);
  const metric = headlineMetric(data.classes);
  const width = fitted.inputShape.reduce((a, b) => a * b, 1);
  const featureImportance = permutationImportance(
    tf,
    model,
    fitted,
    importanceSet.xData.subarray(0, rows * width),
    rows,
    (raw) =>
      (score(data, raw, importanceSet.actual.subarray(0, rows)) as Record<string, unknown>)[metric] as number,
    spec.training.seed,
  );
  return {
    training: { ...evaluate(final.train), loss: last?.loss },
    ...(validation ? { validation } : {}),
    ...(testSet ? { test: { ...evaluate(testSet), rows: testSet.rows.length }, testSet } : {}),
    featureImportance,
    importance: { metric, set: final.validation ? 'validation' : testSet ? 'test' : 'training', rows },
  };
}
