/** Evaluation of a trained model on sets of rows: the report's metrics and permutation feature importance. */
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { seededRng, shuffleInPlace } from '../core/platform/random.ts';
import { classificationMetrics, logLoss, regressionMetrics, rocAuc } from '../core/training/metrics.ts';
import { type FittedPreprocessing, widthOf } from '../core/training/preprocess.ts';
import type { TF } from './backend.ts';

/** Raw model outputs for row-major inputs, row-major [n × units]. */
export function predictRaw(
  tf: TF,
  model: LayersModel,
  x: Float32Array,
  n: number,
  inputShape: number[],
  slice = 2048,
): Float32Array {
  const width = inputShape.reduce((a, b) => a * b, 1);
  const parts: Float32Array[] = [];
  for (let start = 0; start < n; start += slice) {
    const size = Math.min(slice, n - start);
    const out = tf.tidy(
      () =>
        model.predict(
          tf.tensor(x.subarray(start * width, (start + size) * width), [size, ...inputShape]),
        ) as Tensor,
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

/**
 * Permutation feature importance: the drop in the metric when one feature's values are shuffled
 * across rows (seeded, `repeats` times), all its encoded columns together.
 */
export function permutationImportance(
  tf: TF,
  model: LayersModel,
  fitted: FittedPreprocessing,
  x: Float32Array,
  n: number,
  score: (raw: Float32Array) => number,
  seed: number,
  repeats = 3,
): FeatureImportance[] {
  if (fitted.columns.some((c) => c.kind === 'array') || n < 2) return [];
  const width = fitted.inputShape.reduce((a, b) => a * b, 1);
  const baseline = score(predictRaw(tf, model, x, n, fitted.inputShape));
  const rng = seededRng(seed ^ 0x1397);
  let offset = 0;
  const result: FeatureImportance[] = [];
  for (const column of fitted.columns) {
    const w = widthOf(column);
    const drops: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const order = Int32Array.from({ length: n }, (_, i) => i);
      shuffleInPlace(order, rng);
      const shuffled = x.slice();
      for (let i = 0; i < n; i++) {
        const from = (order[i] as number) * width + offset;
        shuffled.set(x.subarray(from, from + w), i * width + offset);
      }
      drops.push(baseline - score(predictRaw(tf, model, shuffled, n, fitted.inputShape)));
    }
    const mean = drops.reduce((a, b) => a + b, 0) / repeats;
    const std = Math.sqrt(drops.reduce((a, b) => a + (b - mean) ** 2, 0) / repeats);
    result.push({ feature: column.name, importance: mean, std });
    offset += w;
  }
  return result.sort((a, b) => b.importance - a.importance);
}
