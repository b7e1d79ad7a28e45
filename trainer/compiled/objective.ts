/**
 * What a compiled step minimises and reports, as graph ops with the math of the eager path: the six
 * losses of trainer/losses.ts (weighted by per-row class weights), the L1/L2 penalties tfjs-layers'
 * regularisers add (`model.calculateLosses()`), and the side metric of trainer/engine.ts (correct
 * predictions for classification, absolute errors for regression).
 *
 * |x| is built so that its gradient is tfjs's (+1 for x > 0, −1 for x ≤ 0: tfjs-core's Abs gradient
 * is `step(x, −1)`); TensorFlow's gives 0 at 0, which matters for L1 penalties on zero-initialised
 * biases.
 */
import type { LossName } from '../../core/jobs/job-spec.ts';
import type { GraphBuilder } from './graph.ts';
import { DT, type Output } from './native.ts';

const EPS = 1e-7;

/** |x| with tfjs's gradient: x · stopGradient(x > 0 ? 1 : −1). */
export function absTfjs(g: GraphBuilder, x: Output): Output {
  const sign = g.select(g.greater(x, g.scalar(0)), g.scalar(1), g.scalar(-1));
  return g.mul(x, g.op('StopGradient', [sign]));
}

/** Per-row losses [n]; `yTrue` is one-hot for the categorical losses, a column otherwise. */
export function rowLosses(g: GraphBuilder, name: LossName, yTrue: Output, yPred: Output): Output {
  switch (name) {
    case 'categoricalCrossentropy':
    case 'sparseCategoricalCrossentropy': {
      const p = g.clip(yPred, g.scalar(EPS), g.scalar(1 - EPS));
      return g.neg(g.sum(g.mul(yTrue, g.log(p)), [-1]));
    }
    case 'binaryCrossentropy': {
      const p = g.clip(yPred, g.scalar(EPS), g.scalar(1 - EPS));
      const one = g.scalar(1);
      const l = g.add2(g.mul(yTrue, g.log(p)), g.mul(g.sub(one, yTrue), g.log(g.sub(one, p))));
      return g.neg(g.mean(l, [-1]));
    }
    case 'meanSquaredError':
      return g.mean(g.square(g.sub(yTrue, yPred)), [-1]);
    case 'meanAbsoluteError':
      return g.mean(absTfjs(g, g.sub(yTrue, yPred)), [-1]);
    case 'huber': {
      const error = absTfjs(g, g.sub(yTrue, yPred));
      const quadratic = g.minimum(error, g.scalar(1));
      const linear = g.sub(error, quadratic);
      return g.mean(g.add2(g.mul(g.scalar(0.5), g.square(quadratic)), linear), [-1]);
    }
  }
}

/** Mean over the batch of the row losses, each times its row weight when there are weights. */
export function meanLoss(g: GraphBuilder, name: LossName, yTrue: Output, yPred: Output, weights?: Output) {
  const rows = rowLosses(g, name, yTrue, yPred);
  return g.mean(weights ? g.mul(rows, weights) : rows, [0]);
}

/** Σ over the rows of the row losses (each times its row weight): a tower's share of the mean. */
export function sumLoss(g: GraphBuilder, name: LossName, yTrue: Output, yPred: Output, weights?: Output) {
  const rows = rowLosses(g, name, yTrue, yPred);
  return g.sum(weights ? g.mul(rows, weights) : rows, [0]);
}

/** tfjs-layers' L1L2 regulariser: Σ l1·|w| + Σ l2·w². */
export function penalty(g: GraphBuilder, w: Output, rank: number, l1: number, l2: number): Output {
  const axes = Array.from({ length: rank }, (_, i) => i);
  const terms: Output[] = [];
  if (l1 !== 0) terms.push(g.sum(g.mul(g.scalar(l1), absTfjs(g, w)), axes));
  if (l2 !== 0) terms.push(g.sum(g.mul(g.scalar(l2), g.square(w)), axes));
  return terms.length ? g.addN(terms) : g.scalar(0);
}

/** Σ over the batch of correct predictions (`labels` given) or of absolute errors. */
export function sideMetric(
  g: GraphBuilder,
  pred: Output,
  y: Output,
  labels: Output | undefined,
  units: number,
) {
  if (labels) {
    const predicted =
      units === 1 ? g.cast(g.greater(g.reshape(pred, [-1]), g.scalar(0.5)), DT.int32) : g.argMax(pred, -1);
    return g.sum(g.cast(g.equal(predicted, g.cast(labels, DT.int32)), DT.float32), [0]);
  }
  return g.sumAll(g.abs(g.sub(y, pred)));
}
