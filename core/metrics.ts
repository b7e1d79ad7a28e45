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
