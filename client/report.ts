/** Reading a job's report for people: shared by the CLI and the dashboard. Browser-safe. */
import type { EvaluationMetrics, JobReport } from './types.ts';

export interface FeatureImportance {
  feature: string;
  importance: number;
  /** Spread over the permutation repeats, when the report gives it. */
  std?: number;
}

const IMPORTANCE_KEYS = ['importance', 'mean', 'drop', 'value', 'score'] as const;

const numberIn = (value: Record<string, unknown>, keys: readonly string[]): number | undefined => {
  for (const key of keys) if (typeof value[key] === 'number') return value[key] as number;
  return undefined;
};

/**
 * `report.featureImportance` as a list sorted by importance (largest first). Accepts the shapes a
 * trainer may write: `[{feature, importance, std?}]`, `{feature: number}`, `{feature: {mean, std}}`,
 * or any of those under a `features` / `importances` field. Anything else gives `[]`.
 */
export function featureImportances(report: JobReport | undefined): FeatureImportance[] {
  let raw: unknown = report?.featureImportance;
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
    const wrapper = raw as Record<string, unknown>;
    if (typeof wrapper.features === 'object' && wrapper.features) raw = wrapper.features;
    else if (typeof wrapper.importances === 'object' && wrapper.importances) raw = wrapper.importances;
  }
  const out: FeatureImportance[] = [];
  const add = (feature: unknown, value: unknown) => {
    if (typeof value === 'number' && Number.isFinite(value)) {
      out.push({ feature: String(feature), importance: value });
    } else if (value && typeof value === 'object') {
      const v = value as Record<string, unknown>;
      const importance = numberIn(v, IMPORTANCE_KEYS);
      if (importance === undefined) return;
      const std = numberIn(v, ['std', 'stdDev', 'stddev']);
      out.push({ feature: String(feature), importance, ...(std === undefined ? {} : { std }) });
    }
  };
  if (Array.isArray(raw)) {
    for (const entry of raw) {
      if (entry && typeof entry === 'object') {
        const e = entry as Record<string, unknown>;
        add(e.feature ?? e.name ?? e.column, e);
      }
    }
  } else if (raw && typeof raw === 'object') {
    for (const [feature, value] of Object.entries(raw)) add(feature, value);
  }
  return out.sort((a, b) => b.importance - a.importance);
}

/** Scalar metrics worth a table row, in a stable order (known ones first). */
const ORDER = ['loss', 'accuracy', 'macroF1', 'weightedF1', 'logLoss', 'rocAuc', 'mae', 'mse', 'rmse', 'r2'];

/** The scalar metrics of the training, validation and test sets side by side: `[name, training, validation, test]`. */
export function metricRows(
  report: JobReport | undefined,
): [string, number | undefined, number | undefined, number | undefined][] {
  const test = report?.test as EvaluationMetrics | undefined;
  const sets: (EvaluationMetrics | undefined)[] = [report?.training, report?.validation, test];
  const names = new Set<string>();
  for (const set of sets)
    for (const [k, v] of Object.entries(set ?? {})) if (typeof v === 'number' && k !== 'rows') names.add(k);
  const sorted = [...names].sort((a, b) => {
    const ia = ORDER.indexOf(a);
    const ib = ORDER.indexOf(b);
    return (ia < 0 ? ORDER.length : ia) - (ib < 0 ? ORDER.length : ib) || a.localeCompare(b);
  });
  const pick = (set: EvaluationMetrics | undefined, name: string) =>
    typeof set?.[name] === 'number' ? (set[name] as number) : undefined;
  return sorted.map((name) => [
    name,
    pick(report?.training, name),
    pick(report?.validation, name),
    pick(test, name),
  ]);
}

/** The confusion matrix to show: the validation set's when there is one, else the training set's. */
export function confusionMatrixOf(
  report: JobReport | undefined,
): { set: 'validation' | 'training'; classes: string[]; matrix: number[][] } | undefined {
  for (const set of ['validation', 'training'] as const) {
    const matrix = report?.[set]?.confusionMatrix;
    if (Array.isArray(matrix) && matrix.length > 0) {
      const classes = (report?.classes ?? matrix.map((_, i) => i)).map(String);
      return { set, classes, matrix };
    }
  }
  return undefined;
}

/** A number for people: 4 significant digits, no exponent for ordinary values. */
export function formatNumber(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return '–';
  if (!Number.isFinite(value)) return value > 0 ? '∞' : '−∞';
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e6)) return value.toExponential(3);
  return String(Number(value.toPrecision(4)));
}

/** The report's warnings (its record's, for a report from before they were kept there). */
export function warningsOf(report: JobReport | undefined, job?: { warnings?: string[] }): string[] {
  const fromReport = Array.isArray(report?.warnings) ? (report.warnings as unknown[]).map(String) : [];
  return fromReport.length ? fromReport : (job?.warnings ?? []);
}
