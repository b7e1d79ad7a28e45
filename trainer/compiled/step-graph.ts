/**
 * One training step of a tfjs Sequential model as a TensorFlow graph: the model's weights as
 * variables, the forward pass (layers.ts), the loss with class weights and regularisation penalties
 * (objective.ts), and the gradients of the loss with respect to every trainable weight.
 *
 * Gradients come from TensorFlow's symbolic differentiation (`TF_AddGradients`), taken per read of
 * a weight (a ReadVariableOp output) and summed per weight. Layers with an explicit backward pass
 * (the fused LSTM) split the differentiation into segments: from the loss down to the top such
 * layer's output, then its own backward op, then from its input down to the next one, and so on.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { LossName } from '../../core/jobs/job-spec.ts';
import type { CustomBackward, ForwardContext, LayerInfo, WeightRef } from './forward-context.ts';
import type { GraphBuilder } from './graph.ts';
import { builderFor, chainLayers } from './layers.ts';
import { DT, type Output } from './native.ts';
import { meanLoss, penalty, sideMetric } from './objective.ts';

/** A read of a weight and the segment of the backward pass it belongs to. */
interface TrackedRead {
  weight: WeightRef;
  read: Output;
  /** How many explicit-backward layers come before it in the forward pass. */
  segment: number;
}

export interface StepGraph {
  weights: WeightRef[];
  /** The model's output (predictions) for the batch. */
  pred: Output;
  /** Data loss + penalties (what is minimised and reported). */
  loss: Output;
  /** Σ of correct predictions or absolute errors over the batch. */
  metric: Output;
  /** Gradient of `loss` per trainable weight, in `weights` order (trainable ones only). */
  grads: { weight: WeightRef; grad: Output }[];
  /** Gradients of `loss` with respect to `inputs` (the gradient check asks for the model input). */
  inputGrads: Output[];
  /** Batch-norm moving-statistic updates. */
  updates: number[];
  masks: Map<string, Output>;
}

export interface StepInputs {
  x: Output;
  y: Output;
  labels?: Output;
  rowWeights?: Output;
  /** int32 [2]: the dropout seed. */
  seed: Output;
}

/** Variables for every weight of `model`, in `model.weights` order. */
export function weightVariables(g: GraphBuilder, model: LayersModel): WeightRef[] {
  return model.weights.map((w, index) => ({
    index,
    name: w.originalName,
    variable: g.variable(DT.float32, w.shape as number[]),
    trainable: w.trainable,
  }));
}

interface LayerObject {
  name: string;
  weights: { originalName: string }[];
  outputShape: (number | null)[] | (number | null)[][];
  cell?: Record<string, unknown>;
  getClassName(): string;
  getConfig(): Record<string, unknown>;
}

/** The regulariser's {l1, l2} of a layer's weight (on the layer, or on an RNN layer's cell). */
function regularizerOf(layer: LayerObject, suffix: string): { l1: number; l2: number } | undefined {
  const property = {
    kernel: 'kernelRegularizer',
    bias: 'biasRegularizer',
    recurrent_kernel: 'recurrentRegularizer',
    embeddings: 'embeddingsRegularizer',
    gamma: 'gammaRegularizer',
    beta: 'betaRegularizer',
  }[suffix];
  if (!property) return undefined;
  const owner = (layer.cell ?? layer) as Record<string, unknown>;
  const r = (owner[property] ?? (layer as unknown as Record<string, unknown>)[property]) as
    | { l1?: number; l2?: number }
    | undefined;
  return r ? { l1: Number(r.l1 ?? 0), l2: Number(r.l2 ?? 0) } : undefined;
}

const suffixOf = (name: string) => name.slice(name.lastIndexOf('/') + 1);

/** Builds forward, loss, metric and gradients; `extraInputs` are differentiated too (segment 0). */
export function buildStep(
  g: GraphBuilder,
  model: LayersModel,
  weights: WeightRef[],
  loss: LossName,
  inputs: StepInputs,
  extraInputs: Output[] = [],
): StepGraph {
  const reads: TrackedRead[] = [];
  const custom: CustomBackward[] = [];
  const byLayer = new Map<string, WeightRef>();
  const chain = chainLayers(model);
  if ('reason' in chain) throw new Error(chain.reason);
  const layers = chain.layers as unknown as LayerObject[];
  for (const layer of layers) {
    for (const w of layer.weights) {
      const ref = weights.find((r) => r.name === w.originalName);
      if (ref) byLayer.set(`${layer.name}\u0000${suffixOf(w.originalName)}`, ref);
    }
  }
  const ctx: ForwardContext = {
    g,
    seed: inputs.seed,
    weight: (layer, suffix) => byLayer.get(`${layer}\u0000${suffix}`),
    read: (weight, tracked = true) => {
      const read = g.read(weight.variable);
      if (tracked) reads.push({ weight, read, segment: custom.length });
      return read;
    },
    updates: [],
    masks: new Map(),
    custom,
  };
  let x = inputs.x;
  let inShape = (model.inputs[0]?.shape ?? []).slice(1) as number[];
  layers.forEach((layer, site) => {
    const className = layer.getClassName();
    const build = builderFor(className, site + 1);
    if (!build) throw new Error(`no builder for ${className}`);
    const outShape = (layer.outputShape as (number | null)[]).slice(1) as number[];
    const info: LayerInfo = { className, name: layer.name, config: layer.getConfig(), outShape, layer };
    x = g.scoped(`layer${site + 1}`, () => build(ctx, info, x, inShape));
    inShape = outShape;
  });
  const pred = x;
  const units = inShape.at(-1) ?? 1;
  const penalties: Output[] = [];
  for (const layer of layers) {
    for (const w of layer.weights) {
      const r = regularizerOf(layer, suffixOf(w.originalName));
      const ref = byLayer.get(`${layer.name}\u0000${suffixOf(w.originalName)}`);
      if (!r || !ref || (r.l1 === 0 && r.l2 === 0)) continue;
      const read = g.read(ref.variable);
      reads.push({ weight: ref, read, segment: custom.length });
      penalties.push(penalty(g, read, ref.variable.shape.length, r.l1, r.l2));
    }
  }
  const dataLoss = meanLoss(g, loss, inputs.y, pred, inputs.rowWeights);
  const total = penalties.length ? g.addN([dataLoss, ...penalties]) : dataLoss;
  const metric = sideMetric(g, pred, inputs.y, inputs.labels, units);
  const { grads, inputGrads } = backward(g, total, reads, custom, extraInputs);
  return { weights, pred, loss: total, metric, grads, inputGrads, updates: ctx.updates, masks: ctx.masks };
}

/** The segmented backward pass (see the module comment). */
function backward(
  g: GraphBuilder,
  loss: Output,
  reads: TrackedRead[],
  custom: CustomBackward[],
  extraInputs: Output[],
): { grads: StepGraph['grads']; inputGrads: Output[] } {
  const perWeight = new Map<WeightRef, Output[]>();
  const add = (weight: WeightRef, grad: Output) =>
    perWeight.set(weight, [...(perWeight.get(weight) ?? []), grad]);
  let inputGrads: Output[] = [];
  let ys: Output[] = [loss];
  let dys: Output[] | null = null;
  for (let segment = custom.length; segment >= 0; segment--) {
    const mine = reads.filter((r) => r.segment === segment && r.weight.trainable);
    const below = segment > 0 ? (custom[segment - 1] as CustomBackward) : undefined;
    const extra = segment === 0 ? extraInputs : [];
    const xs = [...mine.map((r) => r.read), ...extra, ...(below ? [below.output] : [])];
    if (xs.length === 0) continue;
    const dxs = g.graph.addGradients(ys, xs, dys);
    const grad = (i: number) => dxs[i] ?? g.zerosLike(xs[i] as Output);
    mine.forEach((r, i) => {
      add(r.weight, grad(i));
    });
    if (segment === 0) inputGrads = extra.map((_, i) => grad(mine.length + i));
    if (!below) break;
    const step = below.backward(grad(xs.length - 1));
    for (const [weight, d] of step.reads) if (weight.trainable) add(weight, d);
    ys = [below.input];
    dys = [step.dInput];
  }
  const grads: StepGraph['grads'] = [];
  for (const [weight, list] of [...perWeight].sort((a, b) => a[0].index - b[0].index)) {
    grads.push({ weight, grad: g.addN(list) });
  }
  return { grads, inputGrads };
}
