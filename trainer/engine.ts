/**
 * The training engine: builds the model a spec declares and trains it with a custom loop (seeded
 * initialisation and shuffling, so the same spec, data and backend give the same weights).
 */
import type { Scalar, Sequential, Tensor, Tensor2D } from '@tensorflow/tfjs';
import type { PreparedData } from '../core/dataset-prep.ts';
import { UnrecoverableError } from '../core/errors.ts';
import type { EpochMetrics } from '../core/job-record.ts';
import type { JobSpec, OptimizerSpec } from '../core/job-spec.ts';
import { seededRng, shuffleInPlace } from '../core/random.ts';
import type { TF } from './backend.ts';

export type StopReason = 'epochs' | 'lossThreshold' | 'cancelled';

export interface TrainOutcome {
  model: Sequential;
  history: EpochMetrics[];
  stoppedBy: StopReason;
  trainingSeconds: number;
  samplesPerSecond: number;
}

export interface TrainHooks {
  /** Called after every epoch; return `'stop'` to end training (cancel). */
  onEpoch?: (metrics: EpochMetrics) => Promise<'stop' | undefined> | 'stop' | undefined;
}

export function buildModel(tf: TF, spec: JobSpec, inputs: number, outputs: number): Sequential {
  const seed = spec.training.seed;
  const model = tf.sequential();
  let first = true;
  const input = () => {
    const shape = first ? { inputShape: [inputs] } : {};
    first = false;
    return shape;
  };
  spec.model.layers.forEach((layer, i) => {
    if (layer.type === 'dense') {
      model.add(
        tf.layers.dense({
          ...input(),
          units: layer.units,
          activation: layer.activation,
          useBias: layer.useBias,
          kernelInitializer: tf.initializers.glorotUniform({ seed: seed + i }),
          name: `dense_${i + 1}`,
        }),
      );
    } else {
      model.add(tf.layers.dropout({ ...input(), rate: layer.rate, name: `dropout_${i + 1}` }));
    }
  });
  const classification = spec.task === 'classification';
  model.add(
    tf.layers.dense({
      ...input(),
      units: outputs,
      activation: spec.model.outputActivation ?? (classification ? 'softmax' : 'linear'),
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1000 }),
      name: 'output',
    }),
  );
  return model;
}

export function buildOptimizer(tf: TF, o: OptimizerSpec) {
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
      return tf.train.rmsprop(o.learningRate, o.rho, o.momentum, o.epsilon, o.centered);
    case 'adagrad':
      return tf.train.adagrad(o.learningRate, o.initialAccumulatorValue);
    case 'adadelta':
      return tf.train.adadelta(o.learningRate, o.rho, o.epsilon);
  }
}

/** Mean loss of predictions: cross-entropy over softmax outputs, or mean squared error. */
function lossOf(tf: TF, task: JobSpec['task'], yTrue: Tensor, yPred: Tensor): Tensor {
  if (task === 'classification') {
    const p = tf.clipByValue(yPred, 1e-7, 1 - 1e-7);
    return tf.neg(tf.mean(tf.sum(tf.mul(yTrue, tf.log(p)), -1)));
  }
  return tf.mean(tf.square(tf.sub(yTrue, yPred)));
}

export interface Tensors {
  x: Tensor2D;
  /** One-hot (classification) or a column (regression). */
  y: Tensor2D;
}

/** Tensors of the given rows of the prepared data. */
export function tensorsFor(tf: TF, data: PreparedData, rows: Int32Array): Tensors {
  const f = data.features.length;
  const x = new Float32Array(rows.length * f);
  rows.forEach((r, i) => {
    x.set(data.x.subarray(r * f, (r + 1) * f), i * f);
  });
  const labels = Float32Array.from(rows, (r) => data.y[r] as number);
  const y = data.classes
    ? tf.tidy(
        () =>
          tf.oneHot(tf.tensor1d(labels, 'int32'), (data.classes as unknown[]).length).toFloat() as Tensor2D,
      )
    : tf.tensor2d(labels, [rows.length, 1]);
  return { x: tf.tensor2d(x, [rows.length, f]), y };
}

/** Mean loss over a set, in slices so that large sets fit in memory. */
export function evaluateLoss(
  tf: TF,
  model: Sequential,
  task: JobSpec['task'],
  set: Tensors,
  slice = 4096,
): number {
  const n = set.x.shape[0];
  let total = 0;
  for (let start = 0; start < n; start += slice) {
    const size = Math.min(slice, n - start);
    const part = tf.tidy(() => {
      const pred = model.predict(set.x.slice([start, 0], [size, -1])) as Tensor;
      return lossOf(tf, task, set.y.slice([start, 0], [size, -1]), pred).mul(size);
    });
    total += part.dataSync()[0] as number;
    part.dispose();
  }
  return total / n;
}

export async function train(
  tf: TF,
  spec: JobSpec,
  data: PreparedData,
  hooks: TrainHooks = {},
): Promise<TrainOutcome> {
  const outputs = data.classes ? data.classes.length : 1;
  const model = buildModel(tf, spec, data.features.length, outputs);
  const optimizer = buildOptimizer(tf, spec.training.optimizer);
  const trainSet = tensorsFor(tf, data, data.trainRows);
  const validationSet =
    data.validationRows.length > 0 ? tensorsFor(tf, data, data.validationRows) : undefined;
  const n = data.trainRows.length;
  const batchSize = spec.training.batchSize === 'full' ? n : Math.min(spec.training.batchSize, n);
  const rng = seededRng(spec.training.seed);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const history: EpochMetrics[] = [];
  let stoppedBy: StopReason = 'epochs';
  const started = performance.now();
  let samples = 0;
  try {
    for (let epoch = 1; epoch <= spec.training.epochs; epoch++) {
      // Full batch: no shuffling needed (the gradient is over every row); else a seeded permutation.
      if (batchSize < n) shuffleInPlace(order, rng);
      const perm = tf.tensor1d(order, 'int32');
      let sum: Tensor = tf.scalar(0);
      for (let start = 0; start < n; start += batchSize) {
        const size = Math.min(batchSize, n - start);
        const cost = tf.tidy(() => {
          const idx = perm.slice(start, size);
          const xb = batchSize === n ? trainSet.x : tf.gather(trainSet.x, idx);
          const yb = batchSize === n ? trainSet.y : tf.gather(trainSet.y, idx);
          const c = optimizer.minimize(
            () => lossOf(tf, spec.task, yb, model.apply(xb, { training: true }) as Tensor) as Scalar,
            true,
          );
          return (c as Tensor).mul(size);
        });
        const next = tf.add(sum, cost);
        sum.dispose();
        cost.dispose();
        sum = next;
      }
      perm.dispose();
      const loss = ((await sum.data())[0] as number) / n;
      sum.dispose();
      samples += n;
      if (!Number.isFinite(loss)) {
        throw new UnrecoverableError(
          'TRAINING_DIVERGED',
          `The training loss became ${loss} at epoch ${epoch}: lower the learning rate (now ${spec.training.optimizer.learningRate}) or scale the features.`,
        );
      }
      const metrics: EpochMetrics = { epoch, loss };
      if (validationSet) metrics.valLoss = evaluateLoss(tf, model, spec.task, validationSet);
      history.push(metrics);
      if ((await hooks.onEpoch?.(metrics)) === 'stop') {
        stoppedBy = 'cancelled';
        break;
      }
      if (spec.training.lossThreshold !== undefined && loss < spec.training.lossThreshold) {
        stoppedBy = 'lossThreshold';
        break;
      }
    }
  } catch (error) {
    model.dispose();
    throw error;
  } finally {
    optimizer.dispose();
    tf.dispose([trainSet.x, trainSet.y, ...(validationSet ? [validationSet.x, validationSet.y] : [])]);
  }
  const trainingSeconds = (performance.now() - started) / 1000;
  return {
    model,
    history,
    stoppedBy,
    trainingSeconds,
    samplesPerSecond: trainingSeconds > 0 ? samples / trainingSeconds : 0,
  };
}

/** Predictions for rows: class indices (classification) or values (regression). */
export function predictRows(tf: TF, model: Sequential, data: PreparedData, rows: Int32Array): Float32Array {
  if (rows.length === 0) return new Float32Array(0);
  const set = tensorsFor(tf, data, rows);
  const out = tf.tidy(() => {
    const pred = model.predict(set.x) as Tensor;
    return data.classes ? pred.argMax(-1).toFloat() : pred.reshape([-1]);
  });
  const values = out.dataSync() as Float32Array;
  tf.dispose([out, set.x, set.y]);
  return Float32Array.from(values);
}
