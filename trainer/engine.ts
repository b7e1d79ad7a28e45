/**
 * The training loop: seeded initialisation, shuffling and dropout (the same spec, data, seed,
 * backend and engine give bitwise the same weights), learning-rate schedules, early stopping, the
 * loss threshold, class weights, and divergence detection. State that a resume needs (epoch,
 * history, RNG, schedule, early stopping) is kept in one `TrainState`.
 *
 * The steps of an epoch run on an engine (`EpochRunner`): eager (trainer/eager-runner.ts, op by op
 * through TensorFlow.js, the reference) or compiled (trainer/compiled/, the whole step as one
 * TensorFlow graph). Everything between epochs — validation, schedules, stopping rules, the hooks
 * that checkpoint and report — is the same for both.
 */
import type { LayersModel, Tensor, Variable } from '@tensorflow/tfjs';

/** A named tensor, as optimizers save their state. */
export type NamedTensor = { name: string; tensor: Tensor };

import type { EpochMetrics } from '../core/jobs/job-record.ts';
import type { JobSpec, LossName } from '../core/jobs/job-spec.ts';
import { UnrecoverableError } from '../core/platform/errors.ts';
import { seededRng, shuffleInPlace } from '../core/platform/random.ts';
import { divergence } from '../core/training/diagnostics.ts';
import { type PrivacyPlan, planPrivacy } from '../core/training/privacy.ts';
import {
  EarlyStopping,
  type EarlyStoppingState,
  LearningRateSchedule,
  type ScheduleState,
  thresholdReached,
} from '../core/training/training-rules.ts';
import type { TF } from './backend.ts';
import { EagerRunner, withRandom } from './eager-runner.ts';
import { defaultLoss, meanLoss, sideMetric } from './losses.ts';
import { classifyComputeError, computing } from './numeric-checks.ts';
import type { OptimizerState } from './optimizer-state.ts';
import {
  type PerExampleMethod,
  type PrivateOutcome,
  type PrivateState,
  type PrivateSteps,
  PrivateTraining,
} from './private-step.ts';

export { buildOptimizer, withRandom } from './eager-runner.ts';
export { sideMetric } from './losses.ts';

/** `privacyBudget`: a private run whose noise multiplier was given stopped before exceeding its target ε. */
export type StopReason = 'epochs' | 'lossThreshold' | 'earlyStopping' | 'cancelled' | 'privacyBudget';

/** How the steps of a run execute: op by op through tfjs, or as one compiled TensorFlow graph. */
export type EngineName = 'eager' | 'compiled';

/** Inputs and targets of a set of rows. */
export interface DataSet {
  /** [n, ...inputShape] */
  x: Tensor;
  /** One-hot [n, k] (categorical losses), [n, 1] class index (binary) or target (regression). */
  y: Tensor;
  /** Class index of each row (classification), for accuracy. */
  labels?: Tensor;
  /** Per-row loss weights (class weights). */
  weights?: Tensor;
}

export interface TrainState {
  /** Epochs completed. */
  epoch: number;
  history: EpochMetrics[];
  rngState: number;
  schedule: ScheduleState;
  earlyStopping?: EarlyStoppingState;
  /** Private training: steps taken, the noise multiplier and the keyed stream's state. */
  privacy?: PrivateState;
}

export interface TrainOutcome {
  model: LayersModel;
  history: EpochMetrics[];
  stoppedBy: StopReason;
  /** Epoch whose weights the model holds when early stopping restored the best ones. */
  bestEpoch?: number;
  trainingSeconds: number;
  samplesPerSecond: number;
  /** The engine that ran the steps, and why that one. */
  engine: EngineName;
  engineReason: string;
  /** Private training: the plan, the steps taken and what a step cost. */
  privacy?: PrivateOutcome;
}

export interface EpochContext {
  /** Holds the weights at the end of the epoch (whichever engine trains). */
  model: LayersModel;
  engine: EngineName;
  /** The optimizer's whole state, in the engine's own form (a checkpoint resumes on the same engine). */
  captureOptimizer: () => Promise<OptimizerState>;
  state: TrainState;
  /** The best epoch's weights so far (early stopping with `restoreBestWeights`). */
  bestWeights?: Tensor[];
}

export interface TrainHooks<Context = EpochContext> {
  /** After every epoch; return `'stop'` to end training (cancel, shutdown). */
  onEpoch?: (metrics: EpochMetrics, context: Context) => Promise<'stop' | undefined> | 'stop' | undefined;
  /** Things worth an event (a learning rate reduced on plateau). */
  onInfo?: (message: string) => void;
  /**
   * Asked every half second inside an epoch: `true` stops training before the epoch's end (a cancel
   * or the maximum runtime); the epoch is not recorded.
   */
  interrupt?: () => Promise<boolean>;
}

/** The loss and side-metric sums over an epoch's rows; `interrupted`: stopped inside the epoch. */
export interface EpochSums {
  loss: number;
  metric: number;
  interrupted?: boolean;
}

/** Lets timers and I/O run (at most every half second); `true` when the epoch must stop now. */
export type Pause = () => Promise<boolean>;

/** Runs the steps of epochs on one engine; owns the optimizer state. */
export interface EpochRunner {
  readonly engine: EngineName;
  setLearningRate(rate: number): void;
  /**
   * One pass over the rows in `order`, a step per batch (`epoch` names it in errors); `pause` lets
   * timers and I/O run, and stops the epoch (`interrupted`) when it says so.
   */
  runEpoch(
    order: Int32Array,
    rng: ReturnType<typeof seededRng>,
    pause: Pause,
    epoch: number,
  ): Promise<EpochSums>;
  /** Makes the model hold the weights trained so far. */
  syncModel(): void;
  captureOptimizer(): Promise<OptimizerState>;
  restoreOptimizer(state: OptimizerState): Promise<void>;
  dispose(): void;
  /** Private training on an engine other than eager: its DP-SGD steps (the eager engine's are built from its optimizer). */
  readonly privateSteps?: PrivateSteps;
}

/** What an engine needs to run a model's steps. */
export interface RunnerRequest {
  spec: JobSpec;
  model: LayersModel;
  loss: LossName;
  trainSet: DataSet;
  batchSize: number;
  classCount: number | undefined;
  /** The engine of the checkpoint this run resumes: it must be the same. */
  resumeEngine?: EngineName;
  /** Private training: the run's plan (its noise multiplier the checkpoint's when it resumes). */
  privacy?: PrivacyPlan;
  /** Private training: a per-example gradient method forced (benchmarks, tests). */
  perExample?: PerExampleMethod;
}

/** Chooses the engine of a run and says why. Throws when a resumed run's engine cannot run here. */
export type SelectRunner = (tf: TF, request: RunnerRequest) => { runner: EpochRunner; reason: string };

/** Eager only: the default, and every backend's fallback. */
export const eagerOnly: SelectRunner = (tf, request) => ({
  runner: new EagerRunner(tf, request),
  reason: 'the eager engine was asked for',
});

export interface TrainOptions {
  spec: JobSpec;
  model: LayersModel;
  /** Classification: the number of classes (accuracy is tracked per epoch). */
  classCount?: number;
  hooks?: TrainHooks;
  /** Continue a run from a checkpoint: weights are already in `model`. */
  resume?: { state: TrainState; optimizer: OptimizerState; bestWeights?: Tensor[]; engine?: EngineName };
  /** Which engine runs the steps. @default eagerOnly */
  selectRunner?: SelectRunner;
  /** Rows per validation slice (the resource estimate's evaluation slice). @default 2048 */
  evalSliceRows?: number;
  /** Private training: the key of its sampling and noise stream (default: fresh random bytes). */
  privacyKey?: Uint8Array;
  /** Private training: force a per-example gradient method (benchmarks, tests). */
  perExample?: PerExampleMethod;
}

/**
 * Mean loss and accuracy / MAE of a set, in slices so that large sets fit in memory, giving the event
 * loop a turn between slices (the queue's heartbeat must not starve).
 */
export async function evaluateSet(
  tf: TF,
  model: LayersModel,
  loss: LossName,
  set: DataSet,
  classCount?: number,
  slice = 2048,
) {
  const n = set.x.shape[0] as number;
  let lossSum = 0;
  let metricSum = 0;
  for (let start = 0; start < n; start += slice) {
    if (start > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const size = Math.min(slice, n - start);
    const [l, m] = computing(
      () => `the evaluation of rows ${start + 1}–${start + size}`,
      () =>
        tf.tidy(() => {
          const x = set.x.slice(start, size);
          const y = set.y.slice(start, size);
          const pred = model.predict(x) as Tensor;
          const total = tf.mul(meanLoss(tf, loss, y, pred), size);
          return [total, sideMetric(tf, pred, y, set.labels?.slice(start, size), classCount)];
        }),
    );
    lossSum += scalarOf(l) as number;
    metricSum += scalarOf(m) as number;
    tf.dispose([l, m] as Tensor[]);
  }
  return { loss: lossSum / n, metric: metricSum / n };
}

const scalarOf = (t: Tensor | undefined): number => (t ? (t.dataSync()[0] as number) : 0);

/** Starts the run's engine, with the optimizer state of the checkpoint it resumes. */
async function startRunner(tf: TF, options: TrainOptions, request: RunnerRequest) {
  const resume = options.resume;
  const chosen = (options.selectRunner ?? eagerOnly)(tf, {
    ...request,
    ...(resume ? { resumeEngine: resume.engine ?? 'eager' } : {}),
  });
  if (resume) {
    try {
      await chosen.runner.restoreOptimizer(resume.optimizer);
    } catch (error) {
      chosen.runner.dispose();
      throw error;
    } finally {
      tf.dispose(resume.optimizer.tensors.map((w) => w.tensor));
    }
  }
  return chosen;
}

/** A private run's plan: from the spec, with the noise multiplier of the checkpoint it resumes. */
function privacyPlanOf(options: TrainOptions, rows: number): PrivacyPlan | undefined {
  const { privacy, batchSize, epochs } = options.spec.training;
  if (!privacy) return undefined;
  const plan = planPrivacy(privacy, rows, batchSize, epochs);
  const resumed = options.resume?.state.privacy;
  return resumed ? { ...plan, noiseMultiplier: resumed.noiseMultiplier } : plan;
}

/** Yields to timers and I/O (the heartbeat, a stop signal) at most every half second, then asks `interrupt`. */
function pauser(interrupt: TrainHooks['interrupt']): Pause {
  let last = performance.now();
  return async () => {
    if (performance.now() - last <= 500) return false;
    await new Promise<void>((resolve) => setImmediate(resolve));
    last = performance.now();
    return (await interrupt?.()) ?? false;
  };
}

/** Early stopping's bookkeeping: the best epoch's weights, kept when `restoreBestWeights`. */
interface Best {
  weights?: Tensor[];
  epoch?: number;
}

/** Whether this epoch ends training by a rule (keeping the best weights on the way). */
function ruleStop(
  tf: TF,
  spec: JobSpec,
  model: LayersModel,
  metrics: EpochMetrics,
  stopping: EarlyStopping | undefined,
  best: Best,
): StopReason | undefined {
  const training = spec.training;
  let stop: StopReason | undefined;
  if (stopping) {
    const verdict = stopping.observe(metrics);
    if (verdict.improved && training.earlyStopping?.restoreBestWeights) {
      tf.dispose(best.weights ?? []);
      best.weights = model.getWeights().map((w) => w.clone());
      best.epoch = metrics.epoch;
    }
    if (verdict.stop) stop = 'earlyStopping';
  }
  if (thresholdReached(training.lossThreshold, metrics)) stop = 'lossThreshold';
  return stop;
}

export async function train(
  tf: TF,
  options: TrainOptions,
  trainSet: DataSet,
  validationSet?: DataSet,
): Promise<TrainOutcome> {
  const { spec, model, classCount, hooks = {} } = options;
  const training = spec.training;
  const loss = defaultLoss(spec);
  const n = trainSet.x.shape[0] as number;
  const batchSize = training.batchSize === 'full' ? n : Math.min(training.batchSize, n);
  const metricName = classCount ? 'accuracy' : 'mae';
  const resumed = options.resume?.state;
  const rng = seededRng(resumed?.rngState ?? training.seed);
  const schedule = new LearningRateSchedule(
    training.optimizer.learningRate,
    training.learningRateSchedule,
    training.epochs,
    resumed?.schedule,
  );
  const stopping = training.earlyStopping
    ? new EarlyStopping(training.earlyStopping, resumed?.earlyStopping)
    : undefined;
  let plan: PrivacyPlan | undefined;
  try {
    plan = privacyPlanOf(options, n);
  } catch (error) {
    model.dispose(); // as for any error of the run (the budget cannot be met)
    throw error;
  }
  const { runner, reason } = await startRunner(tf, options, {
    spec,
    model,
    loss,
    trainSet,
    batchSize,
    classCount,
    ...(plan ? { privacy: plan } : {}),
    ...(options.perExample ? { perExample: options.perExample } : {}),
  });
  const history: EpochMetrics[] = [...(resumed?.history ?? [])];
  const order = Int32Array.from({ length: n }, (_, i) => i);
  let stoppedBy: StopReason = 'epochs';
  const best: Best = options.resume?.bestWeights
    ? {
        weights: options.resume.bestWeights,
        ...(resumed?.earlyStopping ? { epoch: resumed.earlyStopping.bestEpoch } : {}),
      }
    : {};
  const started = performance.now();
  const pause = pauser(hooks.interrupt);
  let samples = 0;
  let privately: PrivateTraining | undefined;
  try {
    privately = plan && privateTraining(tf, options, runner, plan, { trainSet, classCount });
    for (let epoch = (resumed?.epoch ?? 0) + 1; epoch <= training.epochs; epoch++) {
      if (privately?.exhausted(epoch)) {
        stoppedBy = 'privacyBudget';
        break;
      }
      const rate = schedule.rateFor(epoch);
      runner.setLearningRate(rate);
      // Full batch: every step sees every row, so no shuffling; else a seeded permutation per epoch.
      // Private training samples its own batches (Poisson sampling).
      if (batchSize < n && !privately) {
        // From the identity each epoch, so the order depends only on the RNG state (which a checkpoint keeps).
        for (let i = 0; i < n; i++) order[i] = i;
        shuffleInPlace(order, rng);
      }
      const sums = privately
        ? await privately.runEpoch(rng, pause)
        : { ...(await epochOn(runner, order, rng, pause, epoch)), rows: n };
      if (sums.interrupted) {
        stoppedBy = 'cancelled';
        break;
      }
      runner.syncModel();
      samples += sums.rows;
      const rows = Math.max(1, sums.rows);
      const metrics: EpochMetrics = {
        epoch,
        loss: sums.loss / rows,
        [metricName]: sums.metric / rows,
        learningRate: rate,
      };
      if (validationSet) {
        const v = await evaluateSet(tf, model, loss, validationSet, classCount, options.evalSliceRows);
        metrics.valLoss = v.loss;
        metrics[classCount ? 'valAccuracy' : 'valMae'] = v.metric;
      }
      history.push(metrics);
      const diverged = divergence(history, rate);
      if (diverged) throw new UnrecoverableError('DIVERGED', diverged);
      const reduced = schedule.observe(metrics);
      if (reduced !== undefined)
        hooks.onInfo?.(`Learning rate reduced to ${reduced} at epoch ${epoch} (no improvement on plateau).`);
      const stop = ruleStop(tf, spec, model, metrics, stopping, best);
      const state: TrainState = {
        epoch,
        history,
        rngState: rng.state(),
        schedule: schedule.state,
        ...(stopping ? { earlyStopping: stopping.state } : {}),
        ...(privately ? { privacy: privately.state() } : {}),
      };
      const context: EpochContext = {
        model,
        engine: runner.engine,
        captureOptimizer: () => runner.captureOptimizer(),
        state,
        ...(best.weights ? { bestWeights: best.weights } : {}),
      };
      if ((await hooks.onEpoch?.(metrics, context)) === 'stop') {
        stoppedBy = 'cancelled';
        break;
      }
      if (stop) {
        stoppedBy = stop;
        break;
      }
    }
    if (best.weights && stoppedBy === 'earlyStopping') model.setWeights(best.weights);
    else best.epoch = undefined;
  } catch (error) {
    model.dispose();
    throw error;
  } finally {
    tf.dispose(best.weights ?? []);
    privately?.dispose();
    runner.dispose();
  }
  const trainingSeconds = (performance.now() - started) / 1000;
  return {
    model,
    history,
    stoppedBy,
    ...(best.epoch !== undefined ? { bestEpoch: best.epoch } : {}),
    trainingSeconds,
    samplesPerSecond: trainingSeconds > 0 ? samples / trainingSeconds : 0,
    engine: runner.engine,
    engineReason: reason,
    ...(privately ? { privacy: privately.outcome() } : {}),
  };
}

/** One epoch on `runner`; a TensorFlow error in it is classified (see trainer/numeric-checks.ts). */
async function epochOn(
  runner: EpochRunner,
  order: Int32Array,
  rng: ReturnType<typeof seededRng>,
  pause: Pause,
  epoch: number,
): Promise<EpochSums> {
  try {
    return await runner.runEpoch(order, rng, pause, epoch);
  } catch (error) {
    throw classifyComputeError(error, `epoch ${epoch}`);
  }
}

/** The DP-SGD loop of a job with `training.privacy` (trainer/private-step.ts), on the run's engine. */
function privateTraining(
  tf: TF,
  options: TrainOptions,
  runner: EpochRunner,
  plan: PrivacyPlan,
  data: { trainSet: DataSet; classCount: number | undefined },
): PrivateTraining {
  const { model } = options;
  const resumed = options.resume?.state.privacy;
  const run = {
    model,
    trainSet: data.trainSet,
    plan,
    ...(resumed ? { resume: resumed } : {}),
    ...(options.privacyKey ? { key: options.privacyKey } : {}),
  };
  if (runner.privateSteps) return new PrivateTraining(tf, { ...run, steps: runner.privateSteps });
  if (!(runner instanceof EagerRunner))
    throw new Error(`the ${runner.engine} engine was chosen for a private run but has no private steps`);
  return new PrivateTraining(tf, {
    ...run,
    optimizer: runner.optimizer,
    loss: defaultLoss(options.spec),
    variables: () => model.trainableWeights.map((w) => w.read() as Variable),
    sideMetric: (pred, y, labels) => sideMetric(tf, pred, y, labels, data.classCount),
    withRandom,
    ...(options.perExample ? { perExample: options.perExample } : {}),
  });
}
