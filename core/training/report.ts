/**
 * The job's report (`report.json`) and the record's resources and lineage, as pure functions of what
 * training and evaluation measured: no I/O, no clock, no tensors.
 */
import type { EpochMetrics } from '../jobs/job-record.ts';
import type { JobSpec, LossName } from '../jobs/job-spec.ts';
import { meanStd } from './metrics.ts';
import type { FittedPreprocessing } from './preprocess.ts';
import type { PrivacySection } from './privacy.ts';

/** The scalar metrics of a report section (what folds average and `result.metrics` shows). */
export const scalars = (o: object): Record<string, number> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => typeof v === 'number')) as Record<string, number>;

/** The metric a model is judged by: accuracy for classification, R² for regression. */
export const headlineMetric = (classes: unknown[] | undefined): 'accuracy' | 'r2' =>
  classes ? 'accuracy' : 'r2';

const FOLD_BOOKKEEPING = ['fold', 'trainingRows', 'validationRows', 'epochsRun'];

/** k-fold: every fold's metrics, their mean and standard deviation, and what the delivered model is. */
export function kfoldSection(folds: Record<string, unknown>[], trainRows: number) {
  const first = folds[0] ?? {};
  const metrics = Object.keys(first).filter(
    (m) => !FOLD_BOOKKEEPING.includes(m) && typeof first[m] === 'number',
  );
  return {
    k: folds.length,
    folds,
    summary: Object.fromEntries(metrics.map((m) => [m, meanStd(folds.map((f) => f[m] as number))])),
    deliveredModel: `Retrained on all ${trainRows} rows after the folds; the fold metrics estimate its performance.`,
  };
}
export type KfoldSection = ReturnType<typeof kfoldSection>;

export interface Resources {
  wallSeconds: number;
  queueSeconds: number;
  trainingSeconds: number;
  epochsRun: number;
  samplesPerSecond: number;
  peakRssBytes: number;
  peakTensorBytes: number;
  backend: string;
  device: string;
  /** The instance type the price is for, when the trainer could tell it. */
  instanceType?: string;
  /** `compiled` or `eager`: how the training steps ran. */
  engine: string;
  engineReason: string;
  hourlyPriceUsd: number;
  estimatedCostUsd: number;
  rows: { training: number; validation: number; test: number };
  parameters: number;
  /** Private training: steps taken and what a step cost against an ordinary one. */
  privateTraining?: PrivateTrainingCost;
}

export interface PrivateTrainingCost {
  /** `vectorized` (one backward pass for the batch) or `microbatch` (one per row). */
  perExampleGradients: string;
  steps: number;
  secondsPerStep: number;
  nonPrivateSecondsPerStep: number;
  overhead: number;
}

/** What the run cost, from its timestamps (ms since the epoch) and measurements. */
export function resourcesOf(input: {
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  epochsRun: number;
  samplesPerSecond: number;
  peakRssBytes: number;
  peakTensorBytes: number;
  backend: string;
  device: string;
  instanceType?: string;
  engine: string;
  engineReason: string;
  hourlyPriceUsd: number;
  rows: Resources['rows'];
  parameters: number;
  privateTraining?: PrivateTrainingCost;
}): Resources {
  const { createdAt, startedAt, finishedAt, hourlyPriceUsd, ...rest } = input;
  return {
    wallSeconds: (finishedAt - createdAt) / 1000,
    queueSeconds: Math.max(0, (startedAt - createdAt) / 1000),
    trainingSeconds: (finishedAt - startedAt) / 1000,
    ...rest,
    hourlyPriceUsd,
    estimatedCostUsd: (hourlyPriceUsd * (finishedAt - startedAt)) / 3_600_000,
  };
}

export interface ReportInput {
  jobId: string;
  spec: JobSpec;
  classes?: (string | number)[];
  loss: LossName;
  backend: string;
  history: EpochMetrics[];
  stoppedBy: string;
  bestEpoch?: number;
  training: Record<string, unknown>;
  /** The hold-out set's metrics, when there is one. */
  validation?: Record<string, unknown>;
  kfold?: KfoldSection;
  test?: Record<string, unknown>;
  featureImportance: unknown;
  importance: {
    metric: string;
    set: 'validation' | 'test' | 'training';
    rows: number;
    /** Features shuffled, of all features (a seeded sample past the budget), and shuffles of each. */
    features?: number;
    featuresTotal?: number;
    repeats?: number;
  };
  warnings: string[];
  resources: Resources;
  lineage: Record<string, unknown>;
  preprocessing: FittedPreprocessing;
  /** The file's rows: how many, how many were used, left out and why, and the columns not used. */
  data?: {
    rows: number;
    used: number;
    dropped: { missingLabel: number; missingValues: number };
    excluded: { name: string; reason: string }[];
  };
  /** Private training: the guarantee and what it does not cover. */
  privacy?: PrivacySection;
}

/** The headline metric of each evaluated set, as the job record's `summary` (what listings show). */
export function headlineSummary(
  classes: unknown[] | undefined,
  training: Record<string, unknown>,
  validation: Record<string, unknown> | undefined,
  test: Record<string, unknown> | undefined,
): { metric: string; training?: number; validation?: number; test?: number } {
  const metric = headlineMetric(classes);
  const pick = (set: Record<string, unknown> | undefined) =>
    typeof set?.[metric] === 'number' ? (set[metric] as number) : undefined;
  const [t, v, x] = [pick(training), pick(validation), pick(test)];
  return {
    metric,
    ...(t !== undefined ? { training: t } : {}),
    ...(v !== undefined ? { validation: v } : {}),
    ...(x !== undefined ? { test: x } : {}),
  };
}

/**
 * The validation figures the report and `result.metrics` show: the hold-out set's, or without one
 * the mean of the k folds.
 */
export function validationSummary(
  validation: Record<string, unknown> | undefined,
  kfold: KfoldSection | undefined,
): Record<string, unknown> | undefined {
  return (
    validation ??
    (kfold ? Object.fromEntries(Object.entries(kfold.summary).map(([m, s]) => [m, s.mean])) : undefined)
  );
}

/** How much better the model does on its training rows than on held-out ones, in the headline metric. */
export function gapOf(
  classes: unknown[] | undefined,
  training: Record<string, unknown>,
  validation: Record<string, unknown> | undefined,
): { metric: string; train: number; validation: number } | undefined {
  const metric = headlineMetric(classes);
  return validation
    ? { metric, train: training[metric] as number, validation: validation[metric] as number }
    : undefined;
}

export function buildReport(input: ReportInput): Record<string, unknown> {
  const summary = validationSummary(input.validation, input.kfold);
  const gap = gapOf(input.classes, input.training, summary);
  return {
    jobId: input.jobId,
    task: input.spec.task,
    label: input.spec.dataset.label,
    features: input.preprocessing.columns.map((c) => c.name),
    ...(input.classes ? { classes: input.classes } : {}),
    loss: input.loss,
    backend: input.backend,
    epochsRun: input.history.length,
    stoppedBy: input.stoppedBy,
    ...(input.bestEpoch !== undefined ? { bestEpoch: input.bestEpoch, restoredBestWeights: true } : {}),
    training: input.training,
    ...(summary ? { validation: { ...input.validation, ...(input.validation ? {} : summary) } } : {}),
    ...(input.kfold ? { kfold: input.kfold } : {}),
    ...(input.test ? { test: input.test } : {}),
    ...(gap ? { gap: { ...gap, difference: gap.train - gap.validation } } : {}),
    featureImportance: input.featureImportance,
    importance: input.importance,
    warnings: input.warnings,
    resources: input.resources,
    ...(input.privacy ? { privacy: input.privacy } : {}),
    lineage: input.lineage,
    preprocessing: input.preprocessing,
    ...(input.data ? { data: input.data } : {}),
  };
}
