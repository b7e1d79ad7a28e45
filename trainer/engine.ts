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
import type { LayersModel, Tensor } from '@tensorflow/tfjs';

/** A named tensor, as optimizers save their state. */
export type NamedTensor = { name: string; tensor: Tensor };

import type { EpochMetrics } from '../core/jobs/job-record.ts';
import type { JobSpec, LossName } from '../core/jobs/job-spec.ts';
import { UnrecoverableError } from '../core/platform/errors.ts';
import { seededRng, shuffleInPlace } from '../core/platform/random.ts';
import { divergence } from '../core/training/diagnostics.ts';
import {
  EarlyStopping,
  type EarlyStoppingState,
  LearningRateSchedule,
  type ScheduleState,
  thresholdReached,
} from '../core/training/training-rules.ts';
import type { TF } from './backend.ts';
import { EagerRunner } from './eager-runner.ts';
import { defaultLoss, meanLoss, sideMetric } from './losses.ts';
import type { OptimizerState } from './optimizer-state.ts';

export { buildOptimizer } from './eager-runner.ts';

export type StopReason = 'epochs' | 'lossThreshold' | 'earlyStopping' | 'cancelled';

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
}

/** The loss and side-metric sums over an epoch's rows. */
export interface EpochSums {
  loss: number;
  metric: number;
}

/** Runs the steps of epochs on one engine; owns the optimizer state. */
export interface EpochRunner {
  readonly engine: EngineName;
  setLearningRate(rate: number): void;
  /** One pass over the rows in `order`, a step per batch; `pause` lets timers and I/O run. */
  runEpoch(
    order: Int32Array,
    rng: ReturnType<typeof seededRng>,
    pause: () => Promise<void>,
  ): Promise<EpochSums>;
  /** Makes the model hold the weights trained so far. */
  syncModel(): void;
  captureOptimizer(): Promise<OptimizerState>;
  restoreOptimizer(state: OptimizerState): Promise<void>;
  dispose(): void;
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
}

/** Mean loss and accuracy / MAE of a set, in slices so that large sets fit in memory. */
export function evaluateSet(
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
    const size = Math.min(slice, n - start);
    const [l, m] = tf.tidy(() => {
      const x = set.x.slice(start, size);
      const y = set.y.slice(start, size);
      const pred = model.predict(x) as Tensor;
      const total = tf.mul(meanLoss(tf, loss, y, pred), size);
      return [total, sideMetric(tf, pred, y, set.labels?.slice(start, size), classCount)];
    });
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
    } finally {
      tf.dispose(resume.optimizer.tensors.map((w) => w.tensor));
    }
  }
  return chosen;
}

/** Yields to timers and I/O (the heartbeat, a stop signal) at most every half second. */
function pauser(): () => Promise<void> {
  let last = performance.now();
  return async () => {
    if (performance.now() - last <= 500) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    last = performance.now();
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
  const { runner, reason } = await startRunner(tf, options, {
    spec,
    model,
    loss,
    trainSet,
    batchSize,
    classCount,
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
  const pause = pauser();
  let samples = 0;
  try {
    for (let epoch = (resumed?.epoch ?? 0) + 1; epoch <= training.epochs; epoch++) {
      const rate = schedule.rateFor(epoch);
      runner.setLearningRate(rate);
      // Full batch: every step sees every row, so no shuffling; else a seeded permutation per epoch.
      if (batchSize < n) {
        // From the identity each epoch, so the order depends only on the RNG state (which a checkpoint keeps).
        for (let i = 0; i < n; i++) order[i] = i;
        shuffleInPlace(order, rng);
      }
      const sums = await runner.runEpoch(order, rng, pause);
      runner.syncModel();
      samples += n;
      const metrics: EpochMetrics = {
        epoch,
        loss: sums.loss / n,
        [metricName]: sums.metric / n,
        learningRate: rate,
      };
      if (validationSet) {
        const v = evaluateSet(tf, model, loss, validationSet, classCount);
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
  };
}
