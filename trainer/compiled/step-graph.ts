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
import type {
  CustomBackward,
  DenseSite,
  ForwardContext,
  LayerInfo,
  LstmKernel,
  WeightRef,
} from './forward-context.ts';
import type { GraphBuilder } from './graph.ts';
import { builderFor, chainLayers } from './layers.ts';
import { DT, type Output } from './native.ts';
import { meanLoss, penalty, sideMetric, sumLoss } from './objective.ts';

/** A read of a weight and the segment of the backward pass it belongs to. */
export interface TrackedRead {
  weight: WeightRef;
  read: Output;
  /** The tower whose forward pass read it; −1: a penalty (differentiated with the top segments). */
  tower: number;
  /** How many explicit-backward layers come before it in its tower's forward pass. */
  segment: number;
}

export interface StepGraph {
  weights: WeightRef[];
  /** The model's output (predictions) for the batch (the first tower's rows when there are towers). */
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

/** One tower's rows: its slice of the batch. */
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

export interface LayerObject {
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

/** The weights of each layer by layer name and weight-name suffix. */
export function weightsByLayer(layers: LayerObject[], weights: WeightRef[]): Map<string, WeightRef> {
  const byLayer = new Map<string, WeightRef>();
  for (const layer of layers) {
    for (const w of layer.weights) {
      const ref = weights.find((r) => r.name === w.originalName);
      if (ref) byLayer.set(`${layer.name}\u0000${suffixOf(w.originalName)}`, ref);
    }
  }
  return byLayer;
}

/** One tower's forward pass (exported for private-step-graph.ts); its reads are tracked in `reads`, its explicit-backward layers in `chain`. */
export function forward(
  g: GraphBuilder,
  model: LayersModel,
  layers: LayerObject[],
  byLayer: Map<string, WeightRef>,
  tower: {
    index: number;
    inputs: StepInputs;
    reads: TrackedRead[];
    chain: CustomBackward[];
    dense?: DenseSite[];
  },
  lstmKernel: LstmKernel,
): { pred: Output; ctx: ForwardContext } {
  const { reads, chain } = tower;
  const ctx: ForwardContext = {
    g,
    seed: tower.index === 0 ? tower.inputs.seed : g.add2(tower.inputs.seed, g.ints([0, 7919 * tower.index])),
    weight: (layer, suffix) => byLayer.get(`${layer}\u0000${suffix}`),
    read: (weight, tracked = true) => {
      const read = g.read(weight.variable);
      if (tracked) reads.push({ weight, read, tower: tower.index, segment: chain.length });
      return read;
    },
    updates: [],
    masks: new Map(),
    custom: chain,
    lstmKernel,
    ...(tower.dense ? { dense: tower.dense } : {}),
  };
  let x = tower.inputs.x;
  let inShape = (model.inputs[0]?.shape ?? []).slice(1) as number[];
  layers.forEach((layer, site) => {
    const className = layer.getClassName();
    const build = builderFor(className, site + 1);
    if (!build) throw new Error(`no builder for ${className}`);
    const outShape = (layer.outputShape as (number | null)[]).slice(1) as number[];
    const info: LayerInfo = { className, name: layer.name, config: layer.getConfig(), outShape, layer };
    x = g.scoped(`tower${tower.index}_layer${site + 1}`, () => build(ctx, info, x, inShape));
    inShape = outShape;
  });
  return { pred: x, ctx };
}

/** The penalties of every regularised weight (read once, whatever the number of towers). */
export function penalties(
  g: GraphBuilder,
  layers: LayerObject[],
  byLayer: Map<string, WeightRef>,
  reads: TrackedRead[],
) {
  const terms: Output[] = [];
  for (const layer of layers) {
    for (const w of layer.weights) {
      const r = regularizerOf(layer, suffixOf(w.originalName));
      const ref = byLayer.get(`${layer.name}\u0000${suffixOf(w.originalName)}`);
      if (!r || !ref || (r.l1 === 0 && r.l2 === 0)) continue;
      const read = g.read(ref.variable);
      reads.push({ weight: ref, read, tower: -1, segment: 0 });
      terms.push(penalty(g, read, ref.variable.shape.length, r.l1, r.l2));
    }
  }
  return terms;
}

/**
 * Builds forward, loss, metric and gradients; `extraInputs` (of the first tower) are differentiated
 * too. Several towers (each a slice of the batch, run concurrently by TensorFlow's inter-op threads)
 * minimise Σ row losses / rows of the whole batch, which is the one-tower mean loss. A fused LSTM
 * runs on `lstmKernel` (default descent's own).
 */
export function buildStep(
  g: GraphBuilder,
  model: LayersModel,
  weights: WeightRef[],
  loss: LossName,
  inputs: StepInputs | StepInputs[],
  extraInputs: Output[] = [],
  lstmKernel: LstmKernel = 'descent',
): StepGraph {
  const towers = Array.isArray(inputs) ? inputs : [inputs];
  const chainOf = chainLayers(model);
  if ('reason' in chainOf) throw new Error(chainOf.reason);
  const layers = chainOf.layers as unknown as LayerObject[];
  const byLayer = weightsByLayer(layers, weights);
  const reads: TrackedRead[] = [];
  const chains = towers.map(() => [] as CustomBackward[]);
  const built = towers.map((t, index) =>
    forward(
      g,
      model,
      layers,
      byLayer,
      { index, inputs: t, reads, chain: chains[index] as CustomBackward[] },
      lstmKernel,
    ),
  );
  const units = (model.outputs[0]?.shape.at(-1) as number | null) ?? 1;
  const terms = penalties(g, layers, byLayer, reads);
  let dataLoss: Output;
  if (towers.length === 1) {
    dataLoss = meanLoss(g, loss, towers[0]?.y as Output, built[0]?.pred as Output, towers[0]?.rowWeights);
  } else {
    const sums = built.map((b, i) => sumLoss(g, loss, towers[i]?.y as Output, b.pred, towers[i]?.rowWeights));
    const rows = g.addN(towers.map((t) => g.sizeOf(t.y, 0)));
    dataLoss = g.div(g.addN(sums), rows);
  }
  const total = terms.length ? g.addN([dataLoss, ...terms]) : dataLoss;
  const metric = g.addN(
    built.map((b, i) => sideMetric(g, b.pred, towers[i]?.y as Output, towers[i]?.labels, units)),
  );
  const { grads, inputGrads } = backward(g, total, reads, chains, extraInputs);
  const masks = new Map(
    built.flatMap((b, i) => [...b.ctx.masks].map(([k, v]) => [i ? `${k}#${i}` : k, v] as const)),
  );
  return {
    weights,
    pred: built[0]?.pred as Output,
    loss: total,
    metric,
    grads,
    inputGrads,
    updates: built.flatMap((b) => b.ctx.updates),
    masks,
  };
}

/**
 * The segmented backward pass (see the module comment): the top segments of every tower (and the
 * penalties) in one differentiation of the loss, then each tower down its chain of explicit-backward
 * layers.
 */
function backward(
  g: GraphBuilder,
  loss: Output,
  reads: TrackedRead[],
  chains: CustomBackward[][],
  extraInputs: Output[],
): { grads: StepGraph['grads']; inputGrads: Output[] } {
  const perWeight = new Map<WeightRef, Output[]>();
  const add = (weight: WeightRef, grad: Output) =>
    perWeight.set(weight, [...(perWeight.get(weight) ?? []), grad]);
  let inputGrads: Output[] = [];
  const inSegment = (tower: number, segment: number) =>
    reads.filter((r) => r.weight.trainable && r.tower === tower && r.segment === segment);
  /** Differentiates `ys` (seeded with `dys`) for the reads of each (tower, segment) and the extra xs. */
  const differentiate = (
    ys: Output[],
    dys: Output[] | null,
    groups: TrackedRead[],
    extra: Output[],
    outputs: Output[],
  ) => {
    const xs = [...groups.map((r) => r.read), ...extra, ...outputs];
    if (xs.length === 0) return { extra: [] as Output[], outputs: [] as Output[] };
    const dxs = g.graph.addGradients(ys, xs, dys);
    const grad = (i: number) => dxs[i] ?? g.zerosLike(xs[i] as Output);
    groups.forEach((r, i) => {
      add(r.weight, grad(i));
    });
    const base = groups.length;
    return {
      extra: extra.map((_, i) => grad(base + i)),
      outputs: outputs.map((_, i) => grad(base + extra.length + i)),
    };
  };
  // The top: every tower's reads after its last explicit-backward layer, the penalties, and those layers' outputs.
  const tops = [...inSegment(-1, 0), ...chains.flatMap((chain, t) => inSegment(t, chain.length))];
  const firstHasChain = (chains[0]?.length ?? 0) > 0;
  const lasts = chains.filter((c) => c.length > 0).map((c) => c.at(-1) as CustomBackward);
  const top = differentiate(
    [loss],
    null,
    tops,
    firstHasChain ? [] : extraInputs,
    lasts.map((c) => c.output),
  );
  if (!firstHasChain) inputGrads = top.extra;
  let k = 0;
  chains.forEach((chain, t) => {
    if (chain.length === 0) return;
    let dOutput = top.outputs[k++] as Output;
    for (let segment = chain.length - 1; segment >= 0; segment--) {
      const layer = chain[segment] as CustomBackward;
      const step = layer.backward(dOutput);
      for (const [weight, d] of step.reads) if (weight.trainable) add(weight, d);
      const below = segment > 0 ? [(chain[segment - 1] as CustomBackward).output] : [];
      const extra = segment === 0 && t === 0 ? extraInputs : [];
      const out = differentiate([layer.input], [step.dInput], inSegment(t, segment), extra, below);
      if (extra.length) inputGrads = out.extra;
      dOutput = out.outputs[0] as Output;
    }
  });
  const grads: StepGraph['grads'] = [];
  for (const [weight, list] of [...perWeight].sort((a, b) => a[0].index - b[0].index)) {
    grads.push({ weight, grad: g.addN(list) });
  }
  return { grads, inputGrads };
}
