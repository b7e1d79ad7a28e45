/**
 * The eager engine: each training step runs op by op through TensorFlow.js (on wasm, cpu or
 * TensorFlow native), with tfjs's optimizers (and the project's fixes in optimizers.ts). It is the
 * reference the compiled engine (trainer/compiled/) is checked against, and what runs whenever that
 * one cannot.
 */
import type { LayersModel, Optimizer, Scalar, Tensor, Variable } from '@tensorflow/tfjs';
import type { JobSpec, LossName, OptimizerSpec } from '../core/jobs/job-spec.ts';
import type { seededRng } from '../core/platform/random.ts';
import type { TF } from './backend.ts';
import type { DataSet, EpochRunner, EpochSums, Pause } from './engine.ts';
import { meanLoss, sideMetric } from './losses.ts';
import { classifyComputeError, computing } from './numeric-checks.ts';
import { captureOptimizer, type OptimizerState, restoreOptimizer } from './optimizer-state.ts';
import { adadelta, rmsprop } from './optimizers.ts';

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

export interface EagerRunnerOptions {
  model: LayersModel;
  spec: JobSpec;
  loss: LossName;
  trainSet: DataSet;
  batchSize: number;
  classCount: number | undefined;
}

export class EagerRunner implements EpochRunner {
  readonly engine = 'eager' as const;
  readonly #tf: TF;
  readonly #o: EagerRunnerOptions;
  readonly #optimizer: Optimizer;

  constructor(tf: TF, options: EagerRunnerOptions) {
    this.#tf = tf;
    this.#o = options;
    this.#optimizer = buildOptimizer(tf, options.spec.training.optimizer);
  }

  /** The tfjs optimizer (private training applies its noisy gradients with it). */
  get optimizer(): Optimizer {
    return this.#optimizer;
  }

  setLearningRate(rate: number): void {
    setLearningRate(this.#optimizer, rate);
  }

  syncModel(): void {
    // The model's variables are the ones trained.
  }

  captureOptimizer(): Promise<OptimizerState> {
    return captureOptimizer(this.#optimizer);
  }

  async restoreOptimizer(state: OptimizerState): Promise<void> {
    await restoreOptimizer(this.#tf, this.#optimizer, state);
  }

  dispose(): void {
    this.#optimizer.dispose();
  }

  /**
   * One pass over the training rows in `order`, one optimizer step per batch; returns the sums over
   * the rows of the loss and of the side metric (accuracy counts or absolute errors).
   */
  async runEpoch(
    order: Int32Array,
    rng: ReturnType<typeof seededRng>,
    pause: Pause,
    epoch: number,
  ): Promise<EpochSums> {
    const tf = this.#tf;
    const { model, loss, trainSet, batchSize, classCount } = this.#o;
    const optimizer = this.#optimizer;
    const clipping = this.#o.spec.training.gradientClipping;
    const n = order.length;
    const perm = tf.tensor1d(order, 'int32');
    let lossSum: Tensor = tf.scalar(0);
    let metricSum: Tensor = tf.scalar(0);
    const vars = model.trainableWeights.map((w) => w.read() as Variable);
    for (let start = 0; start < n; start += batchSize) {
      if (await pause()) {
        tf.dispose([perm, lossSum, metricSum]);
        return { loss: Number.NaN, metric: Number.NaN, interrupted: true };
      }
      const size = Math.min(batchSize, n - start);
      const where = () => `training step ${Math.floor(start / batchSize) + 1} of epoch ${epoch}`;
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
            optimizer.applyGradients(clip(tf, grads, clipping));
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
      throw classifyComputeError(error, `the end of epoch ${epoch}`);
    } finally {
      tf.dispose([lossSum, metricSum]);
    }
  }
}
