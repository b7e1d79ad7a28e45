/**
 * One DP-SGD step of a vectorisable model (trainer/private-step.ts `perExampleMethodOf`) as graph
 * ops, with the math of the eager path's `vectorized` step:
 *
 *   δ_k  = ∂(Σ_i w_i·loss_i)/∂z_k at each dense layer's pre-activation output z_k [m, out]
 *          (TF_AddGradients of the summed row losses with respect to every z_k at once)
 *   ‖g_i‖² = Σ_k ‖δ_k,i‖² · (‖a_k,i‖² + 1 if the layer has a bias)       (the ghost norm)
 *   c_i  = min(1, C / max(‖g_i‖, 1e-12))
 *   kernel_k: a_kᵀ·(c ⊙ δ_k)    bias_k: Σ_i c_i·δ_k,i
 *   grad = (clipped sum + σ·C·noise) / (q·n) + ∂penalties/∂w
 *
 * The sampled rows and the noise are fed per step, drawn in JS by `drawStep` (the eager engine's
 * stream); an empty sample gives zero sums and a noise-only step, as on the eager engine.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { LossName } from '../../core/jobs/job-spec.ts';
import type { DenseSite, LstmKernel, WeightRef } from './forward-context.ts';
import type { GraphBuilder } from './graph.ts';
import { chainLayers } from './layers.ts';
import { DT, type Output } from './native.ts';
import { rowLosses, sideMetric } from './objective.ts';
import {
  forward,
  type LayerObject,
  penalties,
  type StepInputs,
  type TrackedRead,
  weightsByLayer,
} from './step-graph.ts';

/** The constants of a run's mechanism (its privacy plan). */
export interface PrivacyConstants {
  clipNorm: number;
  noiseMultiplier: number;
  /** q·n: what the noisy sum is divided by. */
  expectedBatchSize: number;
}

export interface PrivateStepGraph {
  /** The update's gradient per trainable weight, in `model.trainableWeights` order. */
  grads: { weight: WeightRef; grad: Output }[];
  /** Float placeholders of the standard normal noise, one per entry of `grads`, of its weight's shape. */
  noise: Output[];
  /** Σ over the sampled rows of the (weighted) row losses, and of the side metric. */
  lossSum: Output;
  metricSum: Output;
  masks: Map<string, Output>;
}

/** The trainable weights' refs in `model.trainableWeights` order (the order the noise is drawn in). */
export function trainableRefs(model: LayersModel, weights: WeightRef[]): WeightRef[] {
  return model.trainableWeights.map((w) => {
    const ref = weights[model.weights.indexOf(w)];
    if (!ref) throw new Error(`trainable weight ${w.originalName} is not a model weight`);
    return ref;
  });
}

/** Per-example clipped gradient sums of every dense layer's weights. */
function clippedSums(
  g: GraphBuilder,
  sites: DenseSite[],
  deltas: Output[],
  clipNorm: number,
): Map<WeightRef, Output> {
  let squared: Output | undefined;
  sites.forEach((site, k) => {
    const d = g.sum(g.square(deltas[k] as Output), [1]);
    const a = g.sum(g.square(site.input), [1]);
    const term = site.bias ? g.mul(d, g.add2(a, g.scalar(1))) : g.mul(d, a);
    squared = squared ? g.add2(squared, term) : term;
  });
  if (!squared) throw new Error('a private compiled step needs a dense layer');
  const factors = g.minimum(
    g.scalar(1),
    g.div(g.scalar(clipNorm), g.maximum(g.sqrt(squared), g.scalar(1e-12))),
  );
  const c = g.expandDims(factors, 1);
  const sums = new Map<WeightRef, Output>();
  sites.forEach((site, k) => {
    const scaled = g.mul(deltas[k] as Output, c);
    sums.set(site.kernel, g.matMul(site.input, scaled, true, false));
    if (site.bias) sums.set(site.bias, g.sum(scaled, [0]));
  });
  return sums;
}

/** Builds the private step's gradients (see the module comment) for one tower of `inputs`. */
export function buildPrivateStep(
  g: GraphBuilder,
  model: LayersModel,
  weights: WeightRef[],
  loss: LossName,
  inputs: StepInputs,
  privacy: PrivacyConstants,
  lstmKernel: LstmKernel = 'descent',
): PrivateStepGraph {
  const chain = chainLayers(model);
  if ('reason' in chain) throw new Error(chain.reason);
  const layers = chain.layers as unknown as LayerObject[];
  const byLayer = weightsByLayer(layers, weights);
  const reads: TrackedRead[] = [];
  const sites: DenseSite[] = [];
  const { pred, ctx } = forward(
    g,
    model,
    layers,
    byLayer,
    { index: 0, inputs, reads, chain: [], dense: sites },
    lstmKernel,
  );
  const rows = rowLosses(g, loss, inputs.y, pred);
  const lossSum = g.sum(inputs.rowWeights ? g.mul(rows, inputs.rowWeights) : rows, [0]);
  const units = (model.outputs[0]?.shape.at(-1) as number | null) ?? 1;
  const metricSum = sideMetric(g, pred, inputs.y, inputs.labels, units);
  const deltas = g.graph
    .addGradients(
      [lossSum],
      sites.map((s) => s.z),
    )
    .map((d, k) => d ?? g.zerosLike((sites[k] as DenseSite).z));
  const clipped = clippedSums(g, sites, deltas, privacy.clipNorm);
  // Penalties depend on the weights alone: their gradient is added after the noise, unclipped.
  const penaltyReads: TrackedRead[] = [];
  const terms = penalties(g, layers, byLayer, penaltyReads);
  const penaltyGrads = terms.length
    ? g.graph.addGradients(
        [g.addN(terms)],
        penaltyReads.map((r) => r.read),
      )
    : [];
  const scale = g.scalar(privacy.noiseMultiplier * privacy.clipNorm);
  const divisor = g.scalar(privacy.expectedBatchSize);
  const noise: Output[] = [];
  const grads = trainableRefs(model, weights).map((weight) => {
    const z = g.placeholder(DT.float32, weight.variable.shape);
    noise.push(z);
    const sum = clipped.get(weight) ?? g.zerosLike(z);
    let grad = g.div(g.add2(sum, g.mul(z, scale)), divisor);
    penaltyReads.forEach((r, i) => {
      const d = penaltyGrads[i];
      if (r.weight === weight && d) grad = g.add2(grad, d);
    });
    return { weight, grad };
  });
  return { grads, noise, lossSum, metricSum, masks: ctx.masks };
}
