/**
 * Specs that exercise every layer type (and its options), optimizer, loss, clipping and schedule of
 * the job spec, on small seeded tables: the compiled engine's agreement with the eager one is
 * checked on them (test/integration/compiled-engine.test.ts).
 */
import type { Table } from '../../core/datasets/tabular.ts';
import type { JobSpec } from '../../core/jobs/job-spec.ts';
import { DATASET_ID, specOf } from './specs.ts';
import { blobs, lcg, tableOf } from './tables.ts';

/** Rising or falling sequences of `length` steps × `features`, with noise: label up / down. */
export function sequences(n: number, length: number, features = 1): Promise<Table> {
  const r = lcg(5);
  return tableOf(
    ['s', 'label'],
    Array.from({ length: n }, (_, i) => {
      const up = i % 2 === 0;
      const total = length * features;
      return [
        Array.from({ length: total }, (_, t) => (up ? t : total - t) / total + (r() - 0.5) * 0.2),
        up ? 'up' : 'down',
      ];
    }),
  );
}

/** Integer ids 0–4 (down) or 5–9 (up). */
function ids(n: number, length: number): Promise<Table> {
  const r = lcg(5);
  return tableOf(
    ['s', 'label'],
    Array.from({ length: n }, (_, i) => {
      const up = i % 2 === 0;
      return [Array.from({ length }, () => Math.floor(r() * 5) + (up ? 5 : 0)), up ? 'up' : 'down'];
    }),
  );
}

/** 6×6 images with a vertical or horizontal bar. */
function images(n: number): Promise<Table> {
  const r = lcg(6);
  return tableOf(
    ['img', 'label'],
    Array.from({ length: n }, (_, i) => {
      const v = i % 2 === 0;
      const pixel = (p: number) => ((v ? p % 6 : Math.floor(p / 6)) === 2 ? 1 : 0) + (r() - 0.5) * 0.3;
      return [Array.from({ length: 36 }, (_, p) => pixel(p)), v ? 'vertical' : 'horizontal'];
    }),
  );
}

/** y = a/2 + b² with a, b on a grid: a smooth regression target. */
function curve(n: number): Promise<Table> {
  return tableOf(
    ['a', 'b', 'label'],
    Array.from({ length: n }, (_, i) => [i / n, (i % 7) / 7, i / (2 * n) + ((i % 7) / 7) ** 2]),
  );
}

export interface EngineCase {
  name: string;
  table: () => Promise<Table>;
  spec: JobSpec;
}

const seq = (shape: number[]) => ({ id: DATASET_ID, label: 'label', features: [{ name: 's', shape }] });
const img = { id: DATASET_ID, label: 'label', features: [{ name: 'img', shape: [6, 6, 1] }] };
const adam = (extra: object = {}) => ({
  optimizer: { type: 'adam', learningRate: 0.02 },
  epochs: 6,
  batchSize: 8,
  validation: { type: 'holdout', fraction: 0.25 },
  ...extra,
});
const dense = (units: number, activation: string, extra: object = {}) => ({
  type: 'dense',
  units,
  activation,
  ...extra,
});
const with_ = (
  name: string,
  table: () => Promise<Table>,
  spec: Record<string, unknown> & { training?: Record<string, unknown> },
): EngineCase => ({ name, table, spec: specOf(spec) });

/** Layer types and options (Adam). Activations avoid relu's kinks where they would only add noise. */
export const LAYER_CASES: EngineCase[] = [
  with_('dense: elu, selu, softplus, softsign', () => blobs(64), {
    model: { layers: [dense(8, 'elu'), dense(8, 'selu'), dense(8, 'softplus'), dense(6, 'softsign')] },
    training: adam(),
  }),
  with_('dense: swish, mish, hardSigmoid, relu6, sigmoid; no bias', () => blobs(64), {
    model: {
      layers: [
        dense(8, 'swish'),
        dense(8, 'mish'),
        dense(8, 'hardSigmoid'),
        dense(8, 'relu6', { useBias: false }),
        dense(4, 'sigmoid'),
      ],
    },
    training: adam(),
  }),
  with_('dense: relu, linear, tanh on a sequence (rank 3)', () => sequences(48, 5, 2), {
    dataset: seq([5, 2]),
    model: { layers: [dense(6, 'relu'), dense(4, 'linear'), dense(3, 'tanh')] },
    training: adam(),
  }),
  with_('batchNormalization (rank 2, momentum 0.5, epsilon 0.01)', () => blobs(64), {
    model: {
      layers: [
        dense(8, 'tanh'),
        { type: 'batchNormalization', momentum: 0.5, epsilon: 0.01 },
        dense(4, 'elu'),
      ],
    },
    training: adam(),
  }),
  with_('conv2d same + batchNormalization (rank 4) + maxPooling2d + flatten', () => images(48), {
    dataset: img,
    model: {
      layers: [
        { type: 'conv2d', filters: 4, kernelSize: 3, padding: 'same', activation: 'tanh' },
        { type: 'batchNormalization' },
        { type: 'maxPooling2d' },
        { type: 'flatten' },
      ],
    },
    training: adam(),
  }),
  with_('conv2d strides [2, 1], kernel [2, 3] + averagePooling2d same', () => images(48), {
    dataset: img,
    model: {
      layers: [
        { type: 'conv2d', filters: 3, kernelSize: [2, 3], strides: [2, 1], activation: 'elu' },
        { type: 'averagePooling2d', poolSize: [2, 2], strides: 1, padding: 'same' },
      ],
    },
    training: adam(),
  }),
  with_('conv2d dilation 2 (valid), dilation [2, 1] (same)', () => images(48), {
    dataset: img,
    model: {
      layers: [
        { type: 'conv2d', filters: 3, kernelSize: 2, dilationRate: 2, activation: 'tanh' },
        {
          type: 'conv2d',
          filters: 2,
          kernelSize: 2,
          dilationRate: [2, 1],
          padding: 'same',
          activation: 'linear',
        },
      ],
    },
    training: adam(),
  }),
  with_('conv1d same, strides 2, dilation 2 + pooling1d', () => sequences(48, 12, 2), {
    dataset: seq([12, 2]),
    model: {
      layers: [
        { type: 'conv1d', filters: 4, kernelSize: 3, padding: 'same', activation: 'selu' },
        { type: 'maxPooling1d', poolSize: 3, strides: 1, padding: 'same' },
        { type: 'conv1d', filters: 3, kernelSize: 2, dilationRate: 2, activation: 'tanh' },
        { type: 'conv1d', filters: 3, kernelSize: 2, strides: 2, activation: 'tanh' },
        { type: 'averagePooling1d', padding: 'same' },
      ],
    },
    training: adam(),
  }),
  with_('reshape [-1] + dense', () => images(48), {
    dataset: img,
    model: { layers: [{ type: 'reshape', targetShape: [-1] }, dense(4, 'tanh')] },
    training: adam(),
  }),
  with_('embedding (L2) + flatten + dense', () => ids(48, 5), {
    dataset: seq([5]),
    model: {
      layers: [
        { type: 'embedding', inputDim: 10, outputDim: 3, embeddingsRegularizer: { l2: 0.01 } },
        { type: 'flatten' },
        dense(4, 'tanh'),
      ],
    },
    training: adam(),
  }),
  with_('lstm (fused: tanh / sigmoid), last output', () => sequences(48, 8), {
    dataset: seq([8, 1]),
    model: { layers: [{ type: 'lstm', units: 8 }] },
    training: adam(),
  }),
  with_('lstm (fused) returnSequences, no bias, regularisers; then lstm', () => sequences(48, 6, 2), {
    dataset: seq([6, 2]),
    model: {
      layers: [
        {
          type: 'lstm',
          units: 6,
          returnSequences: true,
          useBias: false,
          kernelRegularizer: { l1: 0.01 },
          recurrentRegularizer: { l2: 0.01 },
        },
        { type: 'lstm', units: 4 },
      ],
    },
    training: adam(),
  }),
  with_('lstm (unrolled: softsign / hardSigmoid)', () => sequences(48, 6), {
    dataset: seq([6, 1]),
    model: {
      layers: [{ type: 'lstm', units: 5, activation: 'softsign', recurrentActivation: 'hardSigmoid' }],
    },
    training: adam(),
  }),
  with_('gru returnSequences, gru (bias L1)', () => sequences(48, 6), {
    dataset: seq([6, 1]),
    model: {
      layers: [
        { type: 'gru', units: 6, returnSequences: true },
        { type: 'gru', units: 4, biasRegularizer: { l1: 0.01 } },
      ],
    },
    training: adam(),
  }),
];

const optimizerCase = (name: string, optimizer: object): EngineCase =>
  with_(`optimizer ${name}`, () => blobs(64), {
    model: { layers: [dense(8, 'tanh'), dense(4, 'elu')] },
    training: { optimizer, epochs: 6, batchSize: 8 },
  });

/** Each optimizer with its options away from the defaults. */
export const OPTIMIZER_CASES: EngineCase[] = [
  optimizerCase('gd', { type: 'gd', learningRate: 0.1 }),
  optimizerCase('sgd', { type: 'sgd', learningRate: 0.1 }),
  optimizerCase('momentum', { type: 'momentum', learningRate: 0.05, momentum: 0.8 }),
  optimizerCase('momentum, nesterov', { type: 'momentum', learningRate: 0.05, useNesterov: true }),
  optimizerCase('adam', { type: 'adam', learningRate: 0.01, beta1: 0.8, beta2: 0.95, epsilon: 1e-4 }),
  optimizerCase('adamax', { type: 'adamax', learningRate: 0.01, beta1: 0.85, beta2: 0.9 }),
  optimizerCase('rmsprop', { type: 'rmsprop', learningRate: 0.01, rho: 0.8 }),
  optimizerCase('rmsprop, centered, momentum', {
    type: 'rmsprop',
    learningRate: 0.005,
    momentum: 0.5,
    centered: true,
  }),
  optimizerCase('adagrad', { type: 'adagrad', learningRate: 0.1, initialAccumulatorValue: 0.05 }),
  optimizerCase('adadelta', { type: 'adadelta', learningRate: 1, rho: 0.9, epsilon: 1e-6 }),
];

/** Losses (with class weights), clipping, schedules, penalties. */
export const TRAINING_CASES: EngineCase[] = [
  with_('categoricalCrossentropy, balanced class weights, clipNorm', () => blobs(64), {
    model: { layers: [dense(8, 'tanh')] },
    training: adam({ classWeights: 'balanced', gradientClipping: { clipNorm: 0.5 } }),
  }),
  with_('sparseCategoricalCrossentropy, class weights, step schedule', () => blobs(64), {
    model: { layers: [dense(8, 'tanh')] },
    training: adam({
      loss: 'sparseCategoricalCrossentropy',
      classWeights: { pos: 2, neg: 0.5 },
      learningRateSchedule: { type: 'step', stepSize: 2, gamma: 0.5 },
    }),
  }),
  with_('binaryCrossentropy, clipValue, cosine schedule', () => blobs(64), {
    model: { layers: [dense(8, 'tanh')] },
    training: adam({
      loss: 'binaryCrossentropy',
      gradientClipping: { clipValue: 0.05 },
      learningRateSchedule: { type: 'cosine' },
    }),
  }),
  with_('meanSquaredError, L1 on zero-initialised biases, L2 on kernels', () => curve(60), {
    task: 'regression',
    model: { layers: [dense(8, 'tanh', { biasRegularizer: { l1: 0.05 }, kernelRegularizer: { l2: 0.01 } })] },
    training: adam(),
  }),
  with_('meanAbsoluteError, full batch', () => curve(60), {
    task: 'regression',
    model: { layers: [dense(8, 'sigmoid')] },
    training: adam({ loss: 'meanAbsoluteError', batchSize: 'full' }),
  }),
  with_('huber, exponential schedule', () => curve(60), {
    task: 'regression',
    model: { layers: [dense(8, 'tanh')] },
    training: adam({ loss: 'huber', learningRateSchedule: { type: 'exponential', gamma: 0.8 } }),
  }),
];
