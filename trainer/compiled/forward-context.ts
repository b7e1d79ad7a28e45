/**
 * What every layer builder of the compiled path shares: the forward context of one training step
 * (weights as graph variables, the step's dropout seed, state updates, layers with an explicit
 * backward pass), and tfjs-layers' activation functions and dropout as graph ops.
 */
import type { ACTIVATIONS as SPEC_ACTIVATIONS } from '../../core/jobs/job-spec.ts';
import type { GraphBuilder, VariableRef } from './graph.ts';
import type { Output } from './native.ts';

type SpecActivation = (typeof SPEC_ACTIVATIONS)[number];

/** A model weight as a graph variable. */
export interface WeightRef {
  /** Index in `model.weights` (the order of getWeights / setWeights). */
  index: number;
  name: string;
  variable: VariableRef;
  trainable: boolean;
}

/** A layer whose backward pass is built explicitly (TensorFlow has no C++ gradient for its op). */
export interface CustomBackward {
  /** What the layer's op consumed and produced. */
  input: Output;
  output: Output;
  /** Gradients of its input and of its forward weight reads, given the gradient of `output`. */
  backward(dOutput: Output): { dInput: Output; reads: [WeightRef, Output][] };
}

/** What the forward pass of one step builds besides its output. */
export interface ForwardContext {
  g: GraphBuilder;
  /** int32 [2]: this step's dropout seed (fed per step). */
  seed: Output;
  /** The weights of each layer, by layer name and tfjs weight name suffix (`kernel`, `bias`, …). */
  weight(layer: string, suffix: string): WeightRef | undefined;
  /**
   * Reads a weight for the forward pass (one read per call: gradients are taken per read). A layer
   * with an explicit backward pass reads untracked: its backward returns those reads' gradients.
   */
  read(weight: WeightRef, tracked?: boolean): Output;
  /** State updates the step runs (batch-norm moving statistics). */
  updates: number[];
  /** Dropout multipliers by layer name (the gradient check reads them). */
  masks: Map<string, Output>;
  /** Layers with an explicit backward pass, in forward order. */
  custom: CustomBackward[];
  /** Which kernel runs a fused LSTM (see recurrent.ts). */
  lstmKernel: LstmKernel;
  /**
   * Private training (private-step-graph.ts): where dense layers on rank-2 inputs record their input
   * and pre-activation output, for per-example gradients.
   */
  dense?: DenseSite[];
}

/** A dense layer's input `a` [m, in] and pre-activation output `z = a·kernel (+ bias)` [m, out]. */
export interface DenseSite {
  input: Output;
  z: Output;
  kernel: WeightRef;
  bias?: WeightRef;
}

/**
 * The fused LSTM's kernel: `descent`, the graph addon's own CPU op (native/lstm_kernel.h), or
 * `tensorflow`, TensorFlow's `BlockLSTMV2`, which also has a GPU kernel (the choice on a GPU).
 */
export type LstmKernel = 'descent' | 'tensorflow';

export interface LayerInfo {
  className: string;
  name: string;
  config: Record<string, unknown>;
  /** Output shape without the batch axis. */
  outShape: number[];
  layer: unknown;
}

export type Build = (ctx: ForwardContext, info: LayerInfo, x: Output, inShape: number[]) => Output;

/**
 * tfjs-layers' activation functions (tfjs-layers/src/activations.ts) as graph ops: one for each
 * activation of the job spec (the type makes a new one in the spec a compile error here).
 */
const ACTIVATION_OPS: Record<SpecActivation, (g: GraphBuilder, x: Output) => Output> = {
  linear: (_, x) => x,
  relu: (g, x) => g.relu(x),
  relu6: (g, x) => g.minimum(g.scalar(6), g.relu(x)),
  elu: (g, x) => g.elu(x),
  selu: (g, x) => g.selu(x),
  sigmoid: (g, x) => g.sigmoid(x),
  hardSigmoid: (g, x) => g.clip(g.add2(g.scalar(0.5), g.mul(g.scalar(0.2), x)), g.scalar(0), g.scalar(1)),
  tanh: (g, x) => g.tanh(x),
  softmax: (g, x) => g.softmax(x),
  softplus: (g, x) => g.softplus(x),
  softsign: (g, x) => g.softsign(x),
  swish: (g, x) => g.mul(g.sigmoid(x), x),
  mish: (g, x) => g.mul(x, g.tanh(g.softplus(x))),
};

/** The activations the compiled path builds (a base model's layer may name another). */
export const ACTIVATIONS: ReadonlySet<string> = new Set(Object.keys(ACTIVATION_OPS));

export function activate(g: GraphBuilder, name: string, x: Output): Output {
  const op = ACTIVATION_OPS[name as SpecActivation];
  if (!ACTIVATIONS.has(name) || !op)
    throw new Error(`activation ${name} is not supported by the compiled path`);
  return op(g, x);
}

/** Weight `suffix` of the layer, which must exist. */
export function need(ctx: ForwardContext, info: LayerInfo, suffix: string): WeightRef {
  const w = ctx.weight(info.name, suffix);
  if (!w) throw new Error(`${info.name} has no weight ${suffix}`);
  return w;
}

export function withBias(ctx: ForwardContext, info: LayerInfo, y: Output): Output {
  if (info.config.useBias === false) return y;
  return ctx.g.biasAdd(y, ctx.read(need(ctx, info, 'bias')));
}

/** tfjs-core's dropout multiplier: floor(u + keep) / keep, u uniform in [0, 1) per element of `like`. */
export function dropoutMask(ctx: ForwardContext, site: number, like: Output, rate: number): Output {
  const { g } = ctx;
  const seed = g.add2(ctx.seed, g.ints([site, 0]));
  const u = g.statelessUniform(g.shapeOf(like), seed);
  const keep = 1 - rate;
  return g.div(g.op('Floor', [g.add2(u, g.scalar(keep))]), g.scalar(keep));
}
