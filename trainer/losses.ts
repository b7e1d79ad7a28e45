/** Loss functions by name, as weighted means over a batch (weights: per-row class weights), and the side metric. */
import type { Scalar, Tensor } from '@tensorflow/tfjs';
import type { JobSpec, LossName } from '../core/jobs/job-spec.ts';
import type { TF } from './backend.ts';

export const defaultLoss = (spec: JobSpec): LossName =>
  spec.training.loss ?? (spec.task === 'classification' ? 'categoricalCrossentropy' : 'meanSquaredError');

const EPS = 1e-7;

/** Per-row losses, shape [n]. `yTrue` is one-hot for categorical losses, a column otherwise. */
export function rowLosses(tf: TF, name: LossName, yTrue: Tensor, yPred: Tensor): Tensor {
  switch (name) {
    case 'categoricalCrossentropy':
    case 'sparseCategoricalCrossentropy':
      // The labels arrive one-hot either way; "sparse" only names how Keras users give them.
      return tf.neg(tf.sum(tf.mul(yTrue, tf.log(tf.clipByValue(yPred, EPS, 1 - EPS))), -1));
    case 'binaryCrossentropy': {
      const p = tf.clipByValue(yPred, EPS, 1 - EPS);
      const l = tf.add(tf.mul(yTrue, tf.log(p)), tf.mul(tf.sub(1, yTrue), tf.log(tf.sub(1, p))));
      return tf.neg(tf.mean(l, -1));
    }
    case 'meanSquaredError':
      return tf.mean(tf.square(tf.sub(yTrue, yPred)), -1);
    case 'meanAbsoluteError':
      return tf.mean(tf.abs(tf.sub(yTrue, yPred)), -1);
    case 'huber': {
      const error = tf.abs(tf.sub(yTrue, yPred));
      const quadratic = tf.minimum(error, 1);
      const linear = tf.sub(error, quadratic);
      return tf.mean(tf.add(tf.mul(0.5, tf.square(quadratic)), linear), -1);
    }
  }
}

export function meanLoss(tf: TF, name: LossName, yTrue: Tensor, yPred: Tensor, weights?: Tensor): Scalar {
  const rows = rowLosses(tf, name, yTrue, yPred);
  return (weights ? tf.mean(tf.mul(rows, weights)) : tf.mean(rows)) as Scalar;
}

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
