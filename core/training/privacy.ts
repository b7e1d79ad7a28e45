/**
 * Differentially private training, the parts that need no tensors: the plan of a private run (its
 * sampling rate, noise multiplier and the steps its budget allows), the report's `privacy` section,
 * what the guarantee does not cover, and the checks made at submit.
 */
import type { JobSpec } from '../jobs/job-spec.ts';
import { UnrecoverableError } from '../platform/errors.ts';
import type { FittedPreprocessing } from './preprocess.ts';
import {
  type Conversion,
  DEFAULT_ORDERS,
  epsilonOf,
  MAX_NOISE_MULTIPLIER,
  noiseForTarget,
  stepsWithin,
} from './privacy-accountant.ts';

export type PrivacySpec = NonNullable<JobSpec['training']['privacy']>;

/** The accountant, named in every report. */
export const ACCOUNTANT = 'rdp' as const;
export const CONVERSION: Conversion = 'ckst2020';

/** δ when the spec gives none: 1e-5, or 1 / (10 n) for more than 10,000 training rows (δ must stay well below 1/n). */
export const defaultDelta = (rows: number): number => Math.min(1e-5, 1 / (10 * rows));

export interface PrivacyPlan {
  clipNorm: number;
  noiseMultiplier: number;
  /** q: the probability that a row is in a step's batch (batchSize / training rows). */
  sampleRate: number;
  /** Expected rows per step (q × n): the noisy sum is divided by it. */
  expectedBatchSize: number;
  delta: number;
  stepsPerEpoch: number;
  /** Epochs the budget allows (≤ training.epochs). */
  epochs: number;
  /** steps per epoch × epochs. */
  plannedSteps: number;
  targetEpsilon?: number;
  /** ε of the planned steps (≤ targetEpsilon). */
  plannedEpsilon: number;
}

/**
 * The plan of a private run over `rows` training rows: q = batch / rows, ⌈rows / batch⌉ steps per
 * epoch, σ from the spec or the least (to 1e-4 relative) that keeps every planned epoch within the
 * target, and with both a σ and a target, the epochs that fit in the budget. Fails the job when the
 * target cannot be met.
 */
export function planPrivacy(
  privacy: PrivacySpec,
  rows: number,
  batchSize: number | 'full',
  epochs: number,
): PrivacyPlan {
  const batch = batchSize === 'full' ? rows : Math.min(batchSize, rows);
  const sampleRate = batch / rows;
  const stepsPerEpoch = Math.ceil(rows / batch);
  const delta = privacy.delta ?? defaultDelta(rows);
  const target = privacy.targetEpsilon;
  let noiseMultiplier = privacy.noiseMultiplier;
  let allowed = epochs;
  if (noiseMultiplier === undefined) {
    const found = noiseForTarget({
      sampleRate,
      steps: stepsPerEpoch * epochs,
      delta,
      targetEpsilon: target as number,
    });
    if (found === undefined) {
      throw new UnrecoverableError(
        'PRIVACY_TARGET_UNREACHABLE',
        `No noise multiplier up to ${MAX_NOISE_MULTIPLIER} keeps ${epochs} epochs of ${stepsPerEpoch} steps within targetEpsilon ${target} at δ = ${delta}: raise training.privacy.targetEpsilon or train fewer epochs.`,
      );
    }
    noiseMultiplier = found;
  } else if (target !== undefined) {
    const steps = stepsWithin(
      { sampleRate, noiseMultiplier, delta, targetEpsilon: target },
      stepsPerEpoch * epochs,
    );
    allowed = Math.floor(steps / stepsPerEpoch);
    if (allowed === 0) {
      const one = epsilonOf({ sampleRate, noiseMultiplier, steps: stepsPerEpoch, delta }).epsilon;
      throw new UnrecoverableError(
        'PRIVACY_BUDGET_EXCEEDED',
        `One epoch (${stepsPerEpoch} steps at q = ${sampleRate.toPrecision(3)}) with noiseMultiplier ${noiseMultiplier} already spends ε = ${one.toFixed(3)}, over targetEpsilon ${target}: raise the noise multiplier or the target, or leave noiseMultiplier out to have it chosen.`,
      );
    }
  }
  const plannedSteps = stepsPerEpoch * allowed;
  return {
    clipNorm: privacy.clipNorm,
    noiseMultiplier,
    sampleRate,
    expectedBatchSize: batch,
    delta,
    stepsPerEpoch,
    epochs: allowed,
    plannedSteps,
    ...(target !== undefined ? { targetEpsilon: target } : {}),
    plannedEpsilon: epsilonOf({ sampleRate, noiseMultiplier, steps: plannedSteps, delta }).epsilon,
  };
}

/** Rules that watch a metric of the training rows, computed without noise. */
function trainingRowRules(spec: JobSpec): string[] {
  const t = spec.training;
  const rules: string[] = [];
  const onTraining = (m: string) => !m.startsWith('val');
  if (
    t.lossThreshold !== undefined &&
    (typeof t.lossThreshold === 'number' || onTraining(t.lossThreshold.metric))
  )
    rules.push('training.lossThreshold');
  if (t.earlyStopping && onTraining(t.earlyStopping.monitor)) rules.push('training.earlyStopping');
  if (t.learningRateSchedule?.type === 'reduceOnPlateau' && onTraining(t.learningRateSchedule.monitor))
    rules.push('training.learningRateSchedule');
  return rules;
}

/** Preprocessing statistics fitted on the training rows (not supplied in the spec), by kind. */
function fittedStatistics(spec: JobSpec, fitted: FittedPreprocessing): string[] {
  const found: string[] = [];
  for (const c of fitted.columns) {
    const path = `preprocessing.columns["${c.name}"]`;
    if (c.kind === 'numeric') {
      if (c.scale !== 'none' && !c.range)
        found.push(
          `"${c.name}" is scaled (${c.scale}) with its ${c.scale === 'minMax' ? 'minimum and maximum' : 'mean and standard deviation'} over the training rows: supply ${path}.range`,
        );
      if (c.fill !== undefined)
        found.push(
          `missing "${c.name}" values are filled with a statistic of the training rows: use "missing": "drop" or "error"`,
        );
    } else if (c.kind === 'date') {
      found.push(
        `"${c.name}" is a date column, whose scaling and mean date come from the training rows: leave it out (dataset.exclude) or supply it as a number (days) with ${path}.range`,
      );
    } else if (c.kind === 'categorical') {
      if (!spec.preprocessing.columns[c.name]?.categories)
        found.push(
          `the categories of "${c.name}" are the values seen in the training rows: supply ${path}.categories`,
        );
      if (c.fill !== undefined)
        found.push(
          `missing "${c.name}" values are filled with its most frequent value: use "missing": "drop" or "error"`,
        );
    }
  }
  return found;
}

/** What the guarantee does not cover in this job, each with the way to cover it where there is one. */
export function notCovered(spec: JobSpec, fitted: FittedPreprocessing): string[] {
  const items: string[] = [];
  const v = spec.training.validation;
  if (v.type === 'holdout')
    items.push(
      'The hold-out rows are not trained on, so they are not protected by it: their validation metrics (and any early stopping on them) reveal them. Use training.validation {"type": "none"} when every row is private, or accept it for those rows.',
    );
  if (v.type === 'kfold')
    items.push(
      'Each k-fold fold trains privately, but the fold metrics are computed on the rows held out of each fold without noise: they are not covered.',
    );
  if (spec.training.testFraction !== undefined)
    items.push('The test rows are not trained on, so they are not protected: the test metrics reveal them.');
  for (const rule of trainingRowRules(spec))
    items.push(
      `${rule} watches a metric of the training rows computed without noise: when it acts, the time it acts depends on those rows outside the guarantee. Watch a validation metric instead.`,
    );
  const stats = fittedStatistics(spec, fitted);
  if (stats.length)
    items.push(
      `Preprocessing statistics fitted on the training rows are published with the model: ${stats.join('; ')}.`,
    );
  items.push(
    'The per-epoch training loss, the training metrics of this report (and its feature importances when no rows are held out) are computed on the private rows without noise: they are for the data owner, not for publication. The list of classes is the set of label values found.',
  );
  return items;
}

export interface PrivacyOutcome {
  plan: PrivacyPlan;
  /** Steps taken (resumed ones included). */
  steps: number;
}

/**
 * The report's `privacy` section: ε for the steps actually taken (the number to quote), the planned
 * run's ε (≤ the target: the bound that holds however a validation-based rule chose to stop), and how
 * both were computed.
 */
export function privacySection(outcome: PrivacyOutcome, spec: JobSpec, fitted: FittedPreprocessing) {
  const { plan, steps } = outcome;
  const run = {
    sampleRate: plan.sampleRate,
    noiseMultiplier: plan.noiseMultiplier,
    steps,
    delta: plan.delta,
  };
  const spent = epsilonOf(run);
  return {
    epsilon: spent.epsilon,
    delta: plan.delta,
    noiseMultiplier: plan.noiseMultiplier,
    clipNorm: plan.clipNorm,
    sampleRate: plan.sampleRate,
    steps,
    ...(plan.targetEpsilon !== undefined ? { targetEpsilon: plan.targetEpsilon } : {}),
    plannedSteps: plan.plannedSteps,
    plannedEpsilon: plan.plannedEpsilon,
    accountant: ACCOUNTANT,
    mechanism: 'Poisson-subsampled Gaussian, add/remove-one-row adjacency',
    conversion: CONVERSION,
    /** The order α at which ε is reached. */
    optimalOrder: spent.order,
    orders: [...DEFAULT_ORDERS],
    /** The same RDP curve through the classic conversion ε = rdp + log(1/δ)/(α − 1), for older tools. */
    epsilonClassic: epsilonOf({ ...run, conversion: 'classic' }).epsilon,
    notCovered: notCovered(spec, fitted),
  };
}
export type PrivacySection = ReturnType<typeof privacySection>;

/** Layers whose per-example gradients are not independent: a row's gradient depends on the other rows of its batch. */
const BATCH_COUPLED_LAYERS = ['batchNormalization'];

/** Spec problems of a private job, refused at submit (400) with the path and why. */
export function privacyProblems(spec: {
  model: { layers: readonly { type: string }[] };
  training: { privacy?: unknown; gradientClipping?: unknown };
}): { path: string; message: string }[] {
  if (!spec.training.privacy) return [];
  const problems: { path: string; message: string }[] = [];
  spec.model.layers.forEach((layer, i) => {
    if (BATCH_COUPLED_LAYERS.includes(layer.type))
      problems.push({
        path: `model.layers[${i}]`,
        message: `${layer.type} cannot be trained with training.privacy: it normalises each row with statistics of the whole batch, so one row's gradient depends on the other rows and clipping it no longer bounds that row's influence (DP-SGD needs independent per-example gradients). Remove the layer, or use dropout or a smaller model to regularise.`,
      });
  });
  if (spec.training.gradientClipping)
    problems.push({
      path: 'training.gradientClipping',
      message:
        'training.gradientClipping cannot be combined with training.privacy: private training already clips every row’s gradient to training.privacy.clipNorm.',
    });
  return problems;
}

/** Whether a base model's layers (class names) hold one that private training refuses. */
export function batchCoupledLayer(classNames: readonly string[]): string | undefined {
  return classNames.find((c) => c === 'BatchNormalization');
}
