/**
 * Evaluation of a trained model on sets of rows: the report's metrics and permutation feature
 * importance. Predictions run in slices, with a turn of the event loop and a check for a cancel, the
 * maximum runtime or a shutdown between slices (`pace`); importance is bounded by a stated budget.
 */
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { seededRng, shuffleInPlace } from '../core/platform/random.ts';
import { classificationMetrics, logLoss, regressionMetrics, rocAuc } from '../core/training/metrics.ts';
import { type FittedPreprocessing, widthOf } from '../core/training/preprocess.ts';
import type { TF } from './backend.ts';
import { computing } from './numeric-checks.ts';

/** Between slices of a prediction: `TrainingSession.pace`, or nothing. */
export type PaceFn = () => Promise<void>;
const noPace: PaceFn = async () => {};

/** Raw model outputs for row-major inputs, row-major [n × units], `slice` rows at a time. */
export async function predictRaw(
  tf: TF,
  model: LayersModel,
  x: Float32Array,
  n: number,
  inputShape: number[],
  options: { slice?: number; pace?: PaceFn } = {},
): Promise<Float32Array> {
  const width = inputShape.reduce((a, b) => a * b, 1);
  const slice = Math.max(1, options.slice ?? 2048);
  const pace = options.pace ?? noPace;
  const parts: Float32Array[] = [];
  for (let start = 0; start < n; start += slice) {
    await pace();
    const size = Math.min(slice, n - start);
    const out = computing(
      () => `the prediction of rows ${start + 1}–${start + size}`,
      () =>
        tf.tidy(
          () =>
            model.predict(
              tf.tensor(x.subarray(start * width, (start + size) * width), [size, ...inputShape]),
            ) as Tensor,
        ),
    );
    parts.push(out.dataSync() as Float32Array);
    out.dispose();
  }
  const total = parts.reduce((s, p) => s + p.length, 0);
  const all = new Float32Array(total);
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.length;
  }
  return all;
}

/** Class probabilities [n × k] from raw outputs (a single sigmoid unit means two classes). */
export function probabilities(raw: Float32Array, n: number, classCount: number): Float32Array {
  const units = raw.length / Math.max(n, 1);
  if (units === classCount) return raw;
  const out = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    out[i * 2 + 1] = raw[i] as number;
    out[i * 2] = 1 - (raw[i] as number);
  }
  return out;
}

export function scoreClassification(raw: Float32Array, actual: Float32Array, classes: (string | number)[]) {
  const n = actual.length;
  const k = classes.length;
  const probs = probabilities(raw, n, k);
  const predicted = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if ((probs[i * k + c] as number) > (probs[i * k + best] as number)) best = c;
    predicted[i] = best;
  }
  const metrics = classificationMetrics(actual, predicted, classes);
  const auc =
    k === 2
      ? rocAuc(
          Float32Array.from({ length: n }, (_, i) => probs[i * 2 + 1] as number),
          Array.from(actual, (a) => a === 1),
        )
      : undefined;
  return {
    ...metrics,
    logLoss: logLoss(probs, actual, k),
    ...(auc !== undefined ? { rocAuc: auc } : {}),
    classes,
  };
}

export const scoreRegression = (raw: Float32Array, actual: Float32Array) => regressionMetrics(actual, raw);

export interface FeatureImportance {
  feature: string;
  /** Drop of the headline metric (accuracy or R²) when the feature is shuffled; larger = relied on more. */
  importance: number;
  /** Standard deviation of the drop over the repeats. */
  std: number;
}

/** The budget of permutation importance: rows scored, features shuffled, and predictions in all. */
export const IMPORTANCE_BUDGET = {
  /** Rows of the held-out set it scores at most. */
  maxRows: 5000,
  /** Features it shuffles at most (a seeded sample of them when there are more). */
  maxFeatures: 50,
  /** Shuffles of each feature. */
  repeats: 3,
  /** Row predictions in all (baseline + features × repeats): fewer rows when many features. */
  maxPredictions: 1_000_000,
  /** ...but never fewer rows than this (or all of them). */
  minRows: 200,
} as const;

export interface ImportanceResult {
  features: FeatureImportance[];
  /** Features shuffled, of `featuresTotal`. */
  featuresEvaluated: number;
  featuresTotal: number;
  rows: number;
  repeats: number;
}

/** How many rows importance scores for `features` shuffled features of `available` rows. */
export function importanceRows(available: number, features: number): number {
  const b = IMPORTANCE_BUDGET;
  const byBudget = Math.floor(b.maxPredictions / (1 + features * b.repeats));
  return Math.min(available, b.maxRows, Math.max(b.minRows, byBudget));
}

/**
 * Permutation feature importance: the drop in the metric when one feature's values are shuffled
 * across rows (seeded, `repeats` times), all its encoded columns together, within `IMPORTANCE_BUDGET`:
 * at most `maxFeatures` features (a seeded sample) and `maxPredictions` row predictions. Each shuffle
 * permutes the feature's values in place and puts them back (no copy of the inputs).
 */
export async function permutationImportance(
  tf: TF,
  model: LayersModel,
  fitted: FittedPreprocessing,
  x: Float32Array,
  available: number,
  score: (raw: Float32Array, rows: number) => number,
  seed: number,
  options: { slice?: number; pace?: PaceFn } = {},
): Promise<ImportanceResult> {
  const total = fitted.columns.length;
  const b = IMPORTANCE_BUDGET;
  if (fitted.columns.some((c) => c.kind === 'array') || available < 2)
    return { features: [], featuresEvaluated: 0, featuresTotal: total, rows: 0, repeats: b.repeats };
  const width = fitted.inputShape.reduce((a, c) => a * c, 1);
  const rng = seededRng(seed ^ 0x1397);
  // Every feature with its offset, then a seeded sample of them when there are more than the budget.
  let offset = 0;
  const all = fitted.columns.map((column) => {
    const entry = { name: column.name, offset, width: widthOf(column) };
    offset += entry.width;
    return entry;
  });
  const order = Int32Array.from(all.keys());
  if (all.length > b.maxFeatures) shuffleInPlace(order, rng);
  const chosen = Array.from(
    order.subarray(0, Math.min(all.length, b.maxFeatures)),
    (i) => all[i] as (typeof all)[number],
  );
  const n = importanceRows(available, chosen.length);
  const view = x.subarray(0, n * width);
  const predict = () => predictRaw(tf, model, view, n, fitted.inputShape, options);
  const baseline = score(await predict(), n);
  const features: FeatureImportance[] = [];
  for (const feature of chosen) {
    const original = new Float32Array(n * feature.width);
    for (let i = 0; i < n; i++)
      original.set(
        view.subarray(i * width + feature.offset, i * width + feature.offset + feature.width),
        i * feature.width,
      );
    const drops: number[] = [];
    try {
      for (let r = 0; r < b.repeats; r++) {
        const perm = Int32Array.from({ length: n }, (_, i) => i);
        shuffleInPlace(perm, rng);
        for (let i = 0; i < n; i++) {
          const from = (perm[i] as number) * feature.width;
          view.set(original.subarray(from, from + feature.width), i * width + feature.offset);
        }
        drops.push(baseline - score(await predict(), n));
      }
    } finally {
      for (let i = 0; i < n; i++)
        view.set(original.subarray(i * feature.width, (i + 1) * feature.width), i * width + feature.offset);
    }
    const mean = drops.reduce((a, d) => a + d, 0) / b.repeats;
    const std = Math.sqrt(drops.reduce((a, d) => a + (d - mean) ** 2, 0) / b.repeats);
    features.push({ feature: feature.name, importance: mean, std });
  }
  return {
    features: features.sort((a, c) => c.importance - a.importance),
    featuresEvaluated: chosen.length,
    featuresTotal: total,
    rows: n,
    repeats: b.repeats,
  };
}
