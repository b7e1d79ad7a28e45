/**
 * The forward pass of a tfjs-layers Sequential model as TensorFlow graph ops, layer by layer, with
 * the math of tfjs-layers 4.22 (the eager path, trainer/engine.ts, is the reference): weights in the
 * layouts tfjs stores them (so they read back with `setWeights`), training-mode behaviour (dropout
 * masks, batch statistics and moving-average updates), and the same activations, paddings and gate
 * orders. A layer class or option this file does not know makes `unsupported()` say why, and the job
 * trains on the eager path instead.
 *
 * The batch axis is left unknown (−1), so one graph serves full and final partial batches.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import { ACTIVATIONS, activate, type Build, dropoutMask, need, withBias } from './forward-context.ts';
import type { GraphBuilder, Padding } from './graph.ts';
import { DT, type Output } from './native.ts';
import { recurrent } from './recurrent.ts';

const pair = (v: unknown): [number, number] =>
  Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : [Number(v), Number(v)];
const single = (v: unknown): number => (Array.isArray(v) ? Number(v[0]) : Number(v));
const paddingOf = (v: unknown): Padding => (v === 'same' ? 'SAME' : 'VALID');

const dense: Build = (ctx, info, x, inShape) => {
  const { g } = ctx;
  const units = Number(info.config.units);
  const kernel = ctx.read(need(ctx, info, 'kernel'));
  // Rank > 2 (a dense layer on a sequence): tfjs's K.dot contracts the last axis.
  const flat = inShape.length > 1 ? g.reshape(x, [-1, inShape.at(-1) as number]) : x;
  let y = withBias(ctx, info, g.matMul(flat, kernel));
  if (ctx.dense && inShape.length === 1) {
    const bias = info.config.useBias === false ? undefined : need(ctx, info, 'bias');
    ctx.dense.push({ input: flat, z: y, kernel: need(ctx, info, 'kernel'), ...(bias ? { bias } : {}) });
  }
  if (inShape.length > 1) y = g.reshape(y, [-1, ...inShape.slice(0, -1), units]);
  return activate(g, String(info.config.activation), y);
};

const dropout =
  (site: number): Build =>
  (ctx, info, x) => {
    const rate = Number(info.config.rate);
    if (rate === 0) return x;
    const mask = dropoutMask(ctx, site, x, rate);
    ctx.masks.set(info.name, mask);
    return ctx.g.mul(x, mask);
  };

const batchNormalization: Build = (ctx, info, x, inShape) => {
  const { g } = ctx;
  const epsilon = g.scalar(Number(info.config.epsilon));
  const gamma = ctx.read(need(ctx, info, 'gamma'));
  const beta = ctx.read(need(ctx, info, 'beta'));
  const movingMean = need(ctx, info, 'moving_mean');
  const movingVariance = need(ctx, info, 'moving_variance');
  // tf.moments over every axis but the last, then tf.batchNorm; moving averages as tfjs updates them.
  const axes = [0, ...inShape.slice(0, -1).map((_, i) => i + 1)];
  const mean = g.mean(x, axes, true);
  const variance = g.mean(g.square(g.sub(x, mean)), axes, true);
  const normed = g.add2(g.mul(g.mul(g.sub(x, mean), g.rsqrt(g.add2(variance, epsilon))), gamma), beta);
  const decay = g.scalar(1 - Number(info.config.momentum));
  const channels = inShape.at(-1) as number;
  for (const [ref, value] of [
    [movingMean, mean],
    [movingVariance, variance],
  ] as const) {
    const current = g.read(ref.variable);
    const delta = g.mul(g.sub(current, g.reshape(value, [channels])), decay);
    ctx.updates.push(g.assign(ref.variable, g.sub(current, delta)));
  }
  return normed;
};

/**
 * conv1d runs as conv2d on [b, 1, w, c] with a [1, k, in, out] filter, as tfjs-core's conv1d does.
 * A dilated convolution runs undilated on the filter with its zeros put in: TensorFlow's CPU kernels
 * compute dilated convolutions forward but not their gradients. (Dilations need stride 1.)
 */
const convolution =
  (rank: 1 | 2): Build =>
  (ctx, info, x, inShape) => {
    const { g } = ctx;
    const c = info.config;
    let strides = pair(c.strides);
    let dilations = pair(c.dilationRate);
    let kernel = ctx.read(need(ctx, info, 'kernel'));
    let input = x;
    if (rank === 1) {
      const [w, channels] = inShape as [number, number];
      input = g.reshape(x, [-1, 1, w, channels]);
      kernel = g.expandDims(kernel, 0);
      strides = [1, single(c.strides)];
      dilations = [1, single(c.dilationRate)];
    }
    if (dilations[0] > 1 || dilations[1] > 1) kernel = dilateFilter(g, kernel, dilations);
    let y = g.conv2d(input, kernel, strides, paddingOf(c.padding), [1, 1]);
    if (rank === 1) y = g.reshape(y, [-1, ...info.outShape]);
    return activate(g, String(c.activation), withBias(ctx, info, y));
  };

/** A [kh, kw, in, out] filter with d − 1 zero rows (columns) between its rows (columns). */
function dilateFilter(g: GraphBuilder, kernel: Output, [dh, dw]: [number, number]): Output {
  const [kh, kw, cin, cout] = g.shape(kernel) as [number, number, number, number];
  const spread = g.reshape(kernel, [kh, 1, kw, 1, cin, cout]);
  const padded = g.op('Pad', [
    spread,
    g.constant({
      dtype: DT.int32,
      shape: [6, 2],
      data: Int32Array.from([0, 0, 0, dh - 1, 0, 0, 0, dw - 1, 0, 0, 0, 0]),
    }),
  ]);
  const full = g.reshape(padded, [kh * dh, kw * dw, cin, cout]);
  return g.slice(full, [0, 0, 0, 0], [(kh - 1) * dh + 1, (kw - 1) * dw + 1, cin, cout]);
}

const pooling =
  (type: 'MaxPool' | 'AvgPool', rank: 1 | 2): Build =>
  (ctx, info, x, inShape) => {
    const { g } = ctx;
    const c = info.config;
    if (rank === 2)
      return g.pool(type, x, pair(c.poolSize), pair(c.strides ?? c.poolSize), paddingOf(c.padding));
    const [w, channels] = inShape as [number, number];
    const pool = single(c.poolSize);
    const stride = single(c.strides ?? c.poolSize);
    const y = g.pool(type, g.reshape(x, [-1, w, 1, channels]), [pool, 1], [stride, 1], paddingOf(c.padding));
    return g.reshape(y, [-1, ...info.outShape]);
  };

const reshape: Build = (ctx, info, x) => ctx.g.reshape(x, [-1, ...info.outShape]);

const embedding: Build = (ctx, info, x, inShape) => {
  const { g } = ctx;
  const table = ctx.read(need(ctx, info, 'embeddings'));
  const ids = g.reshape(g.cast(x, DT.int32), [-1]);
  return g.reshape(g.gather(table, ids), [-1, ...inShape, Number(info.config.outputDim)]);
};

/** The builder of each supported layer class, with the dropout site it draws from. */
export function builderFor(className: string, site: number): Build | undefined {
  switch (className) {
    case 'Dense':
      return dense;
    case 'Dropout':
      return dropout(site);
    case 'BatchNormalization':
      return batchNormalization;
    case 'Conv1D':
      return convolution(1);
    case 'Conv2D':
      return convolution(2);
    case 'MaxPooling1D':
      return pooling('MaxPool', 1);
    case 'AveragePooling1D':
      return pooling('AvgPool', 1);
    case 'MaxPooling2D':
      return pooling('MaxPool', 2);
    case 'AveragePooling2D':
      return pooling('AvgPool', 2);
    case 'Flatten':
    case 'Reshape':
      return reshape;
    case 'Embedding':
      return embedding;
    case 'LSTM':
    case 'GRU':
      return recurrent(site);
    default:
      return undefined;
  }
}

interface ChainLayer {
  name: string;
  inboundNodes: { inboundLayers: unknown[] }[];
  getClassName(): string;
}

/**
 * The model's layers when they form one chain from its single input to its single output (every
 * Sequential model, and a fine-tuned functional one built as a chain), without the input layer.
 */
export function chainLayers(model: LayersModel): { layers: LayersModel['layers'] } | { reason: string } {
  if (model.inputs.length !== 1 || model.outputs.length !== 1)
    return { reason: 'the model has several inputs or outputs' };
  const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  for (const [i, layer] of (layers as unknown as ChainLayer[]).entries()) {
    const nodes = layer.inboundNodes;
    if (nodes.length !== 1 || nodes[0]?.inboundLayers.length !== 1)
      return { reason: `layer ${layer.name} is not in a single chain (shared, or with several inputs)` };
    if (i > 0 && nodes[0].inboundLayers[0] !== layers[i - 1])
      return { reason: `layer ${layer.name} does not take the previous layer's output` };
  }
  return { layers };
}

/** Why the compiled path cannot build `model`, or `undefined` when it can. */
export function unsupportedModel(model: LayersModel): string | undefined {
  const chain = chainLayers(model);
  if ('reason' in chain) return chain.reason;
  for (const layer of chain.layers) {
    const className = layer.getClassName();
    const config = layer.getConfig() as Record<string, unknown>;
    if (!builderFor(className, 0))
      return `layer ${layer.name} is a ${className}, which the compiled path does not build`;
    if ((layer as unknown as { activityRegularizer?: unknown }).activityRegularizer)
      return `layer ${layer.name} has an activity regulariser`;
    for (const key of ['activation', 'recurrentActivation'] as const) {
      if (config[key] !== undefined && !ACTIVATIONS.has(String(config[key])))
        return `layer ${layer.name} uses the activation ${String(config[key])}`;
    }
    if (config.dataFormat !== undefined && config.dataFormat !== 'channelsLast')
      return `layer ${layer.name} is channelsFirst`;
    if (
      className === 'BatchNormalization' &&
      (config.axis !== -1 || config.center === false || config.scale === false)
    )
      return `layer ${layer.name} normalises another axis or without centre/scale`;
    if (
      (className === 'LSTM' || className === 'GRU') &&
      (config.goBackwards || config.stateful || Number(config.recurrentDropout) > 0)
    )
      return `layer ${layer.name} runs backwards, statefully or with recurrent dropout`;
    if (className === 'GRU' && config.resetAfter === true)
      return `layer ${layer.name} is a GRU with resetAfter`;
    if (className === 'Dropout' && config.noiseShape) return `layer ${layer.name} has a noise shape`;
    if (className === 'Embedding' && config.maskZero) return `layer ${layer.name} masks zero`;
  }
  return undefined;
}
