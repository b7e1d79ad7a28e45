/** Evaluation metrics computed from predictions, in plain JavaScript. */

export interface ClassificationMetrics {
  rows: number;
  accuracy: number;
  macroF1: number;
  weightedF1: number;
  perClass: { class: string | number; precision: number; recall: number; f1: number; support: number }[];
  /** `confusionMatrix[actual][predicted]`, in class order. */
  confusionMatrix: number[][];
}

export function classificationMetrics(
  actual: ArrayLike<number>,
  predicted: ArrayLike<number>,
  classes: (string | number)[],
): ClassificationMetrics {
  const k = classes.length;
  const matrix = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number;
    const p = predicted[i] as number;
    (matrix[a] as number[])[p] = ((matrix[a] as number[])[p] as number) + 1;
    if (a === p) correct++;
  }
  const perClass = classes.map((c, i) => {
    const tp = (matrix[i] as number[])[i] as number;
    const support = (matrix[i] as number[]).reduce((s, v) => s + v, 0);
    const predictedCount = matrix.reduce((s, row) => s + (row[i] as number), 0);
    const precision = predictedCount ? tp / predictedCount : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { class: c, precision, recall, f1, support };
  });
  const n = actual.length;
  return {
    rows: n,
    accuracy: n ? correct / n : 0,
    macroF1: perClass.reduce((s, c) => s + c.f1, 0) / k,
    weightedF1: n ? perClass.reduce((s, c) => s + c.f1 * c.support, 0) / n : 0,
    perClass,
    confusionMatrix: matrix,
  };
}

export interface RegressionMetrics {
  rows: number;
  mae: number;
  mse: number;
  rmse: number;
  r2: number;
}

export function regressionMetrics(
  actual: ArrayLike<number>,
  predicted: ArrayLike<number>,
): RegressionMetrics {
  const n = actual.length;
  let abs = 0;
  let sq = 0;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += (actual[i] as number) / n;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const e = (actual[i] as number) - (predicted[i] as number);
    abs += Math.abs(e);
    sq += e * e;
    total += ((actual[i] as number) - mean) ** 2;
  }
  const mse = n ? sq / n : 0;
  return { rows: n, mae: n ? abs / n : 0, mse, rmse: Math.sqrt(mse), r2: total > 0 ? 1 - sq / total : 0 };
}

/** Mean negative log-likelihood of the true classes; `probabilities` is row-major [n × k]. */
export function logLoss(probabilities: ArrayLike<number>, actual: ArrayLike<number>, k: number): number {
  const n = actual.length;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const p = probabilities[i * k + (actual[i] as number)] as number;
    sum -= Math.log(Math.min(Math.max(p, 1e-15), 1 - 1e-15));
  }
  return n ? sum / n : 0;
}

/**
 * Area under the ROC curve for a binary task: the probability that a random positive scores above a
 * random negative (ties count half), computed from ranks in O(n log n).
 */
export function rocAuc(scores: ArrayLike<number>, positive: ArrayLike<boolean>): number | undefined {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => (scores[a] as number) - (scores[b] as number),
  );
  const ranks = new Float64Array(n);
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1] as number] === scores[order[i] as number]) j++;
    const rank = (i + j) / 2 + 1;
    for (let t = i; t <= j; t++) ranks[order[t] as number] = rank;
    i = j + 1;
  }
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < n; i++) {
    if (positive[i]) {
      positives++;
      rankSum += ranks[i] as number;
    }
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return undefined;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** Mean and population standard deviation. */
export function meanStd(values: number[]): { mean: number; std: number } {
  const n = values.length;
  const mean = n ? values.reduce((a, b) => a + b, 0) / n : 0;
  const std = n ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / n) : 0;
  return { mean, std };
}
