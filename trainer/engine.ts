/**
 * The training loop: seeded initialisation, shuffling and dropout (the same spec, data, seed and
 * backend give bitwise the same weights), per-step gradient clipping, learning-rate schedules,
 * early stopping, the loss threshold, class weights, and divergence detection. State that a resume
 * needs (epoch, history, RNG, schedule, early stopping) is kept in one `TrainState`.
 */
import type { LayersModel, Optimizer, Scalar, Tensor, Variable } from '@tensorflow/tfjs';

/** A named tensor, as optimizers save their state. */
export type NamedTensor = { name: string; tensor: Tensor };

import type { EpochMetrics } from '../core/jobs/job-record.ts';
import type { JobSpec, LossName, OptimizerSpec } from '../core/jobs/job-spec.ts';
import { UnrecoverableError } from '../core/platform/errors.ts';
import { seededRng, shuffleInPlace } from '../core/platform/random.ts';
import { divergence } from '../core/training/diagnostics.ts';
import { planPrivacy } from '../core/training/privacy.ts';
import {
  EarlyStopping,
  type EarlyStoppingState,
  LearningRateSchedule,
  type ScheduleState,
  thresholdReached,
} from '../core/training/training-rules.ts';
import type { TF } from './backend.ts';
import { defaultLoss, meanLoss } from './losses.ts';
import { classifyComputeError, computing } from './numeric-checks.ts';
import { type OptimizerState, restoreOptimizer } from './optimizer-state.ts';
import { adadelta, rmsprop } from './optimizers.ts';
import {
  type PerExampleMethod,
  type PrivateOutcome,
  type PrivateState,
  PrivateTraining,
} from './private-step.ts';

/** `privacyBudget`: a private run whose noise multiplier was given stopped before exceeding its target ε. */
export type StopReason = 'epochs' | 'lossThreshold' | 'earlyStopping' | 'cancelled' | 'privacyBudget';

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
  /** Private training: the plan, the steps taken and what a step cost. */
  privacy?: PrivateOutcome;
}

export interface EpochContext {
  model: LayersModel;
  optimizer: Optimizer;
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

export interface TrainOptions {
  spec: JobSpec;
  model: LayersModel;
  /** Classification: the number of classes (accuracy is tracked per epoch). */
  classCount?: number;
  hooks?: TrainHooks;
  /** Continue a run from a checkpoint: weights are already in `model`. */
  resume?: { state: TrainState; optimizer: OptimizerState; bestWeights?: Tensor[] };
  /** Rows per validation slice (the resource estimate's evaluation slice). @default 2048 */
  evalSliceRows?: number;
  /** Private training: the key of its sampling and noise stream (default: fresh random bytes). */
  privacyKey?: Uint8Array;
  /** Private training: force a per-example gradient method (benchmarks, tests). */
  perExample?: PerExampleMethod;
}

export function buildOptimizer(tf: TF, o: OptimizerSpec): Optimizer {
  switch (o.type) {
    case 'gd':
    case 'sgd':
      return tf.train.sgd(o.learningRate);
    case 'momentum':
      return tf.train.momentum(o.learningRate, o.momentum, o.useNesterov);
    case 'adam':
      return tf.train.adam(o.learningRate, o.beta1, o.beta2, o.epsilon);
    case 'adamax':
      return tf.train.adamax(o.learningRate, o.beta1, o.beta2, o.epsilon);
    case 'rmsprop':
      return rmsprop(tf, o.learningRate, o.rho, o.momentum, o.epsilon, o.centered);
    case 'adagrad':
      return tf.train.adagrad(o.learningRate, o.initialAccumulatorValue);
    case 'adadelta':
      return adadelta(tf, o.learningRate, o.rho, o.epsilon);
  }
}

/** SGD and momentum cache the rate in a tensor (`setLearningRate`); the others read the field each step. */
function setLearningRate(optimizer: Optimizer, rate: number): void {
  const o = optimizer as Optimizer & { learningRate: number; setLearningRate?: (r: number) => void };
  if (o.setLearningRate) o.setLearningRate(rate);
  else o.learningRate = rate;
}

/**
 * Runs `fn` with `Math.random` drawn from the job's generator: tfjs seeds each unseeded dropout mask
 * from `Math.random()`, so this makes dropout reproducible. Only synchronous code runs inside.
 */
export function withRandom<T>(rng: () => number, fn: () => T): T {
  const original = Math.random;
  Math.random = rng;
  try {
    return fn();
  } finally {
    Math.random = original;
  }
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

/** Sum over the batch of correct predictions (classification) or absolute errors (regression). */
export function sideMetric(
  tf: TF,
  pred: Tensor,
  y: Tensor,
  labels: Tensor | undefined,
  classCount?: number,
): Tensor {
  if (classCount && labels) {
    const predicted =
      pred.shape[1] === 1 ? tf.cast(tf.greater(pred.reshape([-1]), 0.5), 'int32') : tf.argMax(pred, -1);
    return tf.sum(tf.cast(tf.equal(predicted, tf.cast(labels, 'int32')), 'float32'));
  }
  return tf.sum(tf.abs(tf.sub(y, pred)));
}

function clip(
  tf: TF,
  grads: Record<string, Tensor>,
  spec: JobSpec['training']['gradientClipping'],
): Record<string, Tensor> {
  if (!spec) return grads;
  const names = Object.keys(grads);
  if (spec.clipValue !== undefined) {
    const v = spec.clipValue;
    return Object.fromEntries(names.map((n) => [n, tf.clipByValue(grads[n] as Tensor, -v, v)]));
  }
  const norm = tf.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads[n] as Tensor)))));
  const scale = tf.minimum(1, tf.div(spec.clipNorm as number, tf.maximum(norm, 1e-12)));
  return Object.fromEntries(names.map((n) => [n, tf.mul(grads[n] as Tensor, scale)]));
}

/** What one training step needs, the same for every batch of a run. */
interface StepContext {
  /** The epoch being trained (for messages). */
  epoch: number;
  /** Asked at every yield: `true` stops the epoch early. */
  interrupt: (() => Promise<boolean>) | undefined;
  model: LayersModel;
  optimizer: Optimizer;
  loss: LossName;
  trainSet: DataSet;
  batchSize: number;
  classCount: number | undefined;
  clipping: JobSpec['training']['gradientClipping'];
  variables: () => Variable[];
}

/**
 * One pass over the training rows in `order`, one optimizer step per batch; returns the sums over
 * the rows of the loss and of the side metric (accuracy counts or absolute errors).
 */
async function runEpoch(
  tf: TF,
  step: StepContext,
  order: Int32Array,
  rng: ReturnType<typeof seededRng>,
  yieldState: { last: number },
): Promise<{ loss: number; metric: number; interrupted?: boolean }> {
  const { model, optimizer, loss, trainSet, batchSize, classCount } = step;
  const n = order.length;
  const perm = tf.tensor1d(order, 'int32');
  let lossSum: Tensor = tf.scalar(0);
  let metricSum: Tensor = tf.scalar(0);
  const vars = step.variables();
  for (let start = 0; start < n; start += batchSize) {
    // tfjs kernels run synchronously: give timers and I/O (the heartbeat, a stop signal) a turn
    // every half second, or a long epoch would let the message's visibility run out.
    if (performance.now() - yieldState.last > 500) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      yieldState.last = performance.now();
      if (await step.interrupt?.()) {
        tf.dispose([perm, lossSum, metricSum]);
        return { loss: Number.NaN, metric: Number.NaN, interrupted: true };
      }
    }
    const size = Math.min(batchSize, n - start);
    const where = () => `training step ${Math.floor(start / batchSize) + 1} of epoch ${step.epoch}`;
    const [batchLoss, batchMetric] = computing(where, () =>
      withRandom(rng, () =>
        tf.tidy(() => {
          const whole = batchSize === n;
          const idx = whole ? undefined : perm.slice(start, size);
          const pick = (t: Tensor | undefined) => (t && idx ? tf.gather(t, idx) : t);
          const xb = pick(trainSet.x) as Tensor;
          const yb = pick(trainSet.y) as Tensor;
          const wb = pick(trainSet.weights);
          const lb = pick(trainSet.labels);
          let side: Tensor | undefined;
          const { value, grads } = tf.variableGrads(() => {
            const pred = model.apply(xb, { training: true }) as Tensor;
            side = tf.keep(sideMetric(tf, pred, yb, lb, classCount));
            const dataLoss = meanLoss(tf, loss, yb, pred, wb);
            const penalties = model.calculateLosses();
            return (penalties.length ? tf.addN([dataLoss, ...penalties]) : dataLoss) as Scalar;
          }, vars);
          optimizer.applyGradients(clip(tf, grads, step.clipping));
          return [tf.mul(value, size), side as Tensor];
        }),
      ),
    ) as [Tensor, Tensor];
    const nextLoss = tf.add(lossSum, batchLoss);
    const nextMetric = tf.add(metricSum, batchMetric);
    tf.dispose([lossSum, metricSum, batchLoss, batchMetric]);
    lossSum = nextLoss;
    metricSum = nextMetric;
  }
  perm.dispose();
  try {
    return { loss: (await lossSum.data())[0] as number, metric: (await metricSum.data())[0] as number };
  } catch (error) {
    throw classifyComputeError(error, `the end of epoch ${step.epoch}`);
  } finally {
    tf.dispose([lossSum, metricSum]);
  }
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
  const optimizer = buildOptimizer(tf, training.optimizer);
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
  if (options.resume) {
    await restoreOptimizer(tf, optimizer, options.resume.optimizer);
    tf.dispose(options.resume.optimizer.tensors.map((w) => w.tensor));
  }
  const history: EpochMetrics[] = [...(resumed?.history ?? [])];
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const variables = () => model.trainableWeights.map((w) => w.read() as Variable);
  let stoppedBy: StopReason = 'epochs';
  let bestWeights: Tensor[] | undefined = options.resume?.bestWeights;
  let bestEpoch: number | undefined = bestWeights ? resumed?.earlyStopping?.bestEpoch : undefined;
  const started = performance.now();
  const yieldState = { last: started };
  const step: StepContext = {
    epoch: 0,
    interrupt: hooks.interrupt,
    model,
    optimizer,
    loss,
    trainSet,
    batchSize,
    classCount,
    clipping: training.gradientClipping,
    variables,
  };
  let samples = 0;
  let privately: PrivateTraining | undefined;

  try {
    privately = privateTraining(tf, options, step, trainSet);
    for (let epoch = (resumed?.epoch ?? 0) + 1; epoch <= training.epochs; epoch++) {
      if (privately?.exhausted(epoch)) {
        stoppedBy = 'privacyBudget';
        break;
      }
      const rate = schedule.rateFor(epoch);
      setLearningRate(optimizer, rate);
      // Full batch: every step sees every row, so no shuffling; else a seeded permutation per epoch.
      if (batchSize < n && !privately) {
        // From the identity each epoch, so the order depends only on the RNG state (which a checkpoint keeps).
        for (let i = 0; i < n; i++) order[i] = i;
        shuffleInPlace(order, rng);
      }
      step.epoch = epoch;
      const epochSums = privately
        ? await privately.runEpoch(rng, yieldState)
        : { ...(await runEpoch(tf, step, order, rng, yieldState)), rows: n };
      if ('interrupted' in epochSums && epochSums.interrupted) {
        stoppedBy = 'cancelled';
        break;
      }
      const epochLoss = epochSums.loss / Math.max(1, epochSums.rows);
      const epochMetric = epochSums.metric / Math.max(1, epochSums.rows);
      samples += epochSums.rows;

      const metrics: EpochMetrics = { epoch, loss: epochLoss, [metricName]: epochMetric, learningRate: rate };
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
      let stop: StopReason | undefined;
      if (stopping) {
        const verdict = stopping.observe(metrics);
        if (verdict.improved && training.earlyStopping?.restoreBestWeights) {
          tf.dispose(bestWeights ?? []);
          bestWeights = model.getWeights().map((w) => w.clone());
          bestEpoch = epoch;
        }
        if (verdict.stop) stop = 'earlyStopping';
      }
      if (thresholdReached(training.lossThreshold, metrics)) stop = 'lossThreshold';
      const state: TrainState = {
        epoch,
        history,
        rngState: rng.state(),
        schedule: schedule.state,
        ...(stopping ? { earlyStopping: stopping.state } : {}),
        ...(privately ? { privacy: privately.state() } : {}),
      };
      if (
        (await hooks.onEpoch?.(metrics, {
          model,
          optimizer,
          state,
          ...(bestWeights ? { bestWeights } : {}),
        })) === 'stop'
      ) {
        stoppedBy = 'cancelled';
        break;
      }
      if (stop) {
        stoppedBy = stop;
        break;
      }
    }
    if (bestWeights && stoppedBy === 'earlyStopping') model.setWeights(bestWeights);
    else bestEpoch = undefined;
  } catch (error) {
    model.dispose();
    throw error;
  } finally {
    tf.dispose(bestWeights ?? []);
    optimizer.dispose();
  }
  const trainingSeconds = (performance.now() - started) / 1000;
  return {
    model,
    history,
    stoppedBy,
    ...(bestEpoch !== undefined ? { bestEpoch } : {}),
    trainingSeconds,
    samplesPerSecond: trainingSeconds > 0 ? samples / trainingSeconds : 0,
    ...(privately ? { privacy: privately.outcome() } : {}),
  };
}

/** The DP-SGD stepper of a job with `training.privacy` (trainer/private-step.ts), or `undefined`. */
function privateTraining(
  tf: TF,
  options: TrainOptions,
  step: StepContext,
  trainSet: DataSet,
): PrivateTraining | undefined {
  const { privacy, batchSize, epochs } = options.spec.training;
  if (!privacy) return undefined;
  const resumed = options.resume?.state.privacy;
  return new PrivateTraining(tf, {
    model: step.model,
    optimizer: step.optimizer,
    loss: step.loss,
    trainSet,
    plan: planPrivacy(privacy, trainSet.x.shape[0] as number, batchSize, epochs),
    variables: step.variables,
    sideMetric: (pred, y, labels) => sideMetric(tf, pred, y, labels, step.classCount),
    withRandom,
    ...(resumed ? { resume: resumed } : {}),
    ...(options.privacyKey ? { key: options.privacyKey } : {}),
    ...(options.perExample ? { perExample: options.perExample } : {}),
  });
}
