/**
 * The evaluate step of a job run: the delivered model scored on its training, validation and test
 * rows, a k-fold fold scored on its held-out rows, and permutation importance on held-out rows. Each
 * prediction runs in the resource estimate's slices, paced by the session (a cancel, the maximum
 * runtime and a shutdown apply here too).
 */
import type { EpochMetrics } from '../core/jobs/job-record.ts';
import type { JobSpec } from '../core/jobs/job-spec.ts';
import type { PreparedData } from '../core/training/dataset-prep.ts';
import { headlineMetric, scalars } from '../core/training/report.ts';
import type { TF } from './backend.ts';
import {
  type FeatureImportance,
  type PaceFn,
  permutationImportance,
  predictRaw,
  scoreClassification,
  scoreRegression,
} from './evaluate.ts';
import { type EncodedSet, encodeSet, type FitResult, type Pace } from './fit.ts';

/** Row indices of a hold-out set are reported up to this many (so anyone can recompute its metrics). */
const MAX_REPORTED_ROW_INDICES = 100_000;

export function score(data: PreparedData, raw: Float32Array, actual: Float32Array) {
  return data.classes ? scoreClassification(raw, actual, data.classes) : scoreRegression(raw, actual);
}

const predictions = (result: FitResult, pace: PaceFn) => ({ slice: result.estimate.evalSliceRows, pace });

/** One fold of a k-fold run, scored on its validation rows. */
export async function scoreFold(
  tf: TF,
  data: PreparedData,
  fold: number,
  result: FitResult,
  pace: Pace,
): Promise<Record<string, unknown>> {
  const validation = result.validation as EncodedSet;
  const raw = await predictRaw(
    tf,
    result.outcome.model,
    validation.xData,
    validation.rows.length,
    result.fitted.inputShape,
    predictions(result, () => pace(`scoring fold ${fold}`)),
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
  importance: {
    metric: string;
    set: 'validation' | 'test' | 'training';
    rows: number;
    /** Features shuffled of all features (a seeded sample past the budget), and shuffles of each. */
    features: number;
    featuresTotal: number;
    repeats: number;
  };
  /** The test set's tensors, for the caller to dispose. */
  testSet?: EncodedSet;
}

export async function evaluateDelivered(
  tf: TF,
  spec: JobSpec,
  data: PreparedData,
  final: FitResult,
  last: EpochMetrics | undefined,
  pace: Pace,
): Promise<Evaluation> {
  const { model } = final.outcome;
  const { fitted } = final;
  const evaluating = predictions(final, () => pace('evaluating the model'));
  const evaluate = async (set: EncodedSet) =>
    score(
      data,
      await predictRaw(tf, model, set.xData, set.rows.length, fitted.inputShape, evaluating),
      set.actual,
    );
  const testSet = data.testRows.length
    ? await encodeSet(tf, spec, data, fitted, data.testRows, undefined, pace)
    : undefined;
  try {
    const validation = final.validation
      ? {
          ...(await evaluate(final.validation)),
          loss: last?.valLoss,
          /** 0-based data-row indices of the hold-out set, so anyone can recompute these metrics. */
          ...(final.validation.rows.length <= MAX_REPORTED_ROW_INDICES
            ? { rowIndices: Array.from(final.validation.rows) }
            : {}),
        }
      : undefined;
    const training = { ...(await evaluate(final.train)), loss: last?.loss };
    const test = testSet ? { ...(await evaluate(testSet)), rows: testSet.rows.length } : undefined;

    // What the model relies on: permutation importance on held-out rows (validation, else test, else training).
    const importanceSet = final.validation ?? testSet ?? final.train;
    const metric = headlineMetric(data.classes);
    const importance = await permutationImportance(
      tf,
      model,
      fitted,
      importanceSet.xData,
      importanceSet.rows.length,
      (raw, rows) =>
        (score(data, raw, importanceSet.actual.subarray(0, rows)) as Record<string, unknown>)[
          metric
        ] as number,
      spec.training.seed,
      predictions(final, () => pace('computing feature importance')),
    );
    return {
      training,
      ...(validation ? { validation } : {}),
      ...(test && testSet ? { test, testSet } : {}),
      featureImportance: importance.features,
      importance: {
        metric,
        set: final.validation ? 'validation' : testSet ? 'test' : 'training',
        rows: importance.rows,
        features: importance.featuresEvaluated,
        featuresTotal: importance.featuresTotal,
        repeats: importance.repeats,
      },
    };
  } catch (error) {
    if (testSet) tf.dispose([testSet.x, testSet.y, ...(testSet.labels ? [testSet.labels] : [])]);
    throw error;
  }
}
