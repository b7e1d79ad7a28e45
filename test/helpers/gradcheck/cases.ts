/**
 * The gradient-check cases: every layer type of the job spec with each of its options (both
 * paddings, strides, dilations, tuple sizes, every activation, with and without bias, dropout,
 * return sequences, regularisers), every loss, and the tfjs ops behind kernels the project supplies
 * that no job-spec layer reaches (trainer/kernel-registry.ts names the cases that check each
 * kernel). Shapes are drawn from each case's seeded generator; keep them small: the float64
 * finite differences evaluate the reference four times per parameter.
 */
import type { Tensor4D, Tensor5D } from '@tensorflow/tfjs';
import { ACTIVATIONS } from '../../../core/jobs/job-spec.ts';
import type { Draw, GradientCase, HiddenLayerInput, ModelCase, OpCase } from './harness.ts';
import { type Arr, avgPool3d, depthwiseConv2d, pool2d } from './reference.ts';

const model = (
  id: string,
  layers: HiddenLayerInput[],
  input: (d: Draw) => number[],
  extra: Partial<ModelCase> = {},
): ModelCase => ({ kind: 'model', id, layers, input, ...extra });

const features = (d: Draw) => [d.int(3, 5)];
const sequence = (d: Draw) => [d.int(5, 8), d.int(2, 3)];
const image = (d: Draw) => [d.int(5, 7), d.int(5, 7), d.int(1, 2)];
const shortSequence = (d: Draw) => [d.int(3, 4), d.int(2, 3)];
const l1l2 = { l1: 0.01, l2: 0.02 };

const denseCases: ModelCase[] = [
  ...ACTIVATIONS.map((activation) =>
    model(`dense/activation ${activation}`, [{ type: 'dense', units: 4, activation }], features),
  ),
  model('dense/no bias', [{ type: 'dense', units: 4, activation: 'tanh', useBias: false }], features),
  model(
    'dense/regularizers',
    [{ type: 'dense', units: 4, activation: 'tanh', kernelRegularizer: l1l2, biasRegularizer: { l2: 0.05 } }],
    features,
  ),
  model('dense/on a sequence (rank 3)', [{ type: 'dense', units: 3, activation: 'sigmoid' }], sequence),
];

const dropoutCases: ModelCase[] = [
  model('dropout/rate 0.4, fixed mask', [{ type: 'dropout', rate: 0.4 }], (d) => [d.int(6, 8)]),
  model(
    'dropout/rate 0.5 between dense layers',
    [
      { type: 'dense', units: 6, activation: 'tanh' },
      { type: 'dropout', rate: 0.5 },
    ],
    features,
  ),
  model('dropout/rate 0 (identity)', [{ type: 'dropout', rate: 0 }], features),
];

const batchNormCases: ModelCase[] = [
  model('batchNormalization/training mode, rank 2', [{ type: 'batchNormalization' }], features, { rows: 4 }),
  model(
    'batchNormalization/epsilon 0.1, momentum 0.5',
    [{ type: 'batchNormalization', epsilon: 0.1, momentum: 0.5 }],
    features,
    { rows: 3 },
  ),
  model(
    'batchNormalization/after conv2d (rank 4)',
    [{ type: 'conv2d', filters: 2, kernelSize: 2, activation: 'tanh' }, { type: 'batchNormalization' }],
    image,
  ),
];

const conv1d = (id: string, options: Partial<Extract<HiddenLayerInput, { type: 'conv1d' }>>) =>
  model(
    `conv1d/${id}`,
    [{ type: 'conv1d', filters: 3, kernelSize: 3, activation: 'tanh', ...options }],
    (d) => [d.int(7, 9), d.int(1, 2)],
  );
const conv1dCases: ModelCase[] = [
  conv1d('valid', {}),
  conv1d('same', { padding: 'same' }),
  conv1d('strides 2, valid', { strides: 2 }),
  conv1d('strides 2, same', { strides: 2, padding: 'same' }),
  conv1d('dilation 2, valid', { dilationRate: 2 }),
  conv1d('dilation 2, same', { dilationRate: 2, padding: 'same' }),
  conv1d('kernel 1', { kernelSize: 1 }),
  conv1d('activation relu', { activation: 'relu' }),
  conv1d('activation linear', { activation: 'linear' }),
  conv1d('no bias', { useBias: false }),
  conv1d('regularizers', { kernelRegularizer: l1l2, biasRegularizer: { l1: 0.03 } }),
];

const conv2d = (id: string, options: Partial<Extract<HiddenLayerInput, { type: 'conv2d' }>>) =>
  model(
    `conv2d/${id}`,
    [{ type: 'conv2d', filters: 2, kernelSize: 3, activation: 'tanh', ...options }],
    image,
  );
const conv2dCases: ModelCase[] = [
  conv2d('valid', {}),
  conv2d('same', { padding: 'same' }),
  conv2d('strides 2, same', { strides: 2, padding: 'same' }),
  conv2d('strides [2, 1], valid', { strides: [2, 1] }),
  conv2d('kernel [2, 3], strides [1, 2], same', { kernelSize: [2, 3], strides: [1, 2], padding: 'same' }),
  // tfjs-layers fuses linear, tanh, sigmoid … into one op and runs relu and elu unfused under a
  // gradient: two gradient paths, each checked with and without dilation.
  conv2d('activation relu (unfused)', { activation: 'relu' }),
  conv2d('activation elu (unfused)', { activation: 'elu' }),
  conv2d('activation linear (fused)', { activation: 'linear' }),
  conv2d('dilation 2, valid, tanh (fused)', { dilationRate: 2, kernelSize: 2 }),
  conv2d('dilation 2, same, relu (unfused)', {
    dilationRate: 2,
    kernelSize: 2,
    padding: 'same',
    activation: 'relu',
  }),
  conv2d('dilation [2, 1], same, linear', {
    dilationRate: [2, 1],
    kernelSize: [2, 2],
    padding: 'same',
    activation: 'linear',
  }),
  conv2d('no bias', { useBias: false }),
  conv2d('regularizers', { kernelRegularizer: { l2: 0.05 }, biasRegularizer: l1l2 }),
];

type PoolType = 'maxPooling1d' | 'averagePooling1d' | 'maxPooling2d' | 'averagePooling2d';
const pooling = (type: PoolType, id: string, options: object) =>
  model(
    `${type}/${id}`,
    [{ type, ...options } as HiddenLayerInput],
    type.endsWith('1d') ? (d) => [d.int(6, 9), d.int(1, 2)] : image,
  );
const poolingCases: ModelCase[] = (['maxPooling1d', 'averagePooling1d'] as const).flatMap((type) => [
  pooling(type, 'valid, pool 2', {}),
  pooling(type, 'valid, pool 3, strides 1', { poolSize: 3, strides: 1 }),
  pooling(type, 'same, pool 2, strides 1', { poolSize: 2, strides: 1, padding: 'same' }),
  pooling(type, 'same, pool 3, strides 2', { poolSize: 3, strides: 2, padding: 'same' }),
  pooling(type, 'same, pool 3 (strides = pool)', { poolSize: 3, padding: 'same' }),
]);
poolingCases.push(
  ...(['maxPooling2d', 'averagePooling2d'] as const).flatMap((type) => [
    pooling(type, 'valid, pool 2', {}),
    pooling(type, 'valid, pool 3, strides 1', { poolSize: 3, strides: 1 }),
    pooling(type, 'same, pool 2, strides 1', { poolSize: 2, strides: 1, padding: 'same' }),
    pooling(type, 'same, pool 3, strides 2', { poolSize: 3, strides: 2, padding: 'same' }),
    pooling(type, 'same, pool [3, 2], strides [2, 1]', {
      poolSize: [3, 2],
      strides: [2, 1],
      padding: 'same',
    }),
  ]),
);

const shapeCases: ModelCase[] = [
  model('flatten/rank 3 to 2', [{ type: 'flatten' }], (d) => [d.int(2, 3), d.int(2, 4)]),
  model('reshape/[n] to [2, n/2]', [{ type: 'reshape', targetShape: [2, -1] }], (d) => [2 * d.int(2, 3)]),
  model(
    'reshape/to a sequence, then lstm',
    [
      { type: 'reshape', targetShape: [3, -1] },
      { type: 'lstm', units: 2 },
    ],
    () => [6],
  ),
];

type Recurrent = Extract<HiddenLayerInput, { type: 'lstm' | 'gru' }>;
const recurrentCases: ModelCase[] = (['lstm', 'gru'] as const).flatMap((type) => {
  const rnn = (id: string, options: Partial<Recurrent>) =>
    model(`${type}/${id}`, [{ type, units: 3, ...options } as HiddenLayerInput], shortSequence);
  return [
    rnn('last output', {}),
    rnn('returnSequences', { returnSequences: true }),
    rnn('activation relu, recurrentActivation hardSigmoid', {
      activation: 'relu',
      recurrentActivation: 'hardSigmoid',
    }),
    rnn('activation softsign, recurrentActivation tanh', {
      activation: 'softsign',
      recurrentActivation: 'tanh',
    }),
    rnn('input dropout 0.3, fixed mask', { dropout: 0.3, returnSequences: true }),
    rnn('no bias', { useBias: false }),
    rnn('regularizers', {
      kernelRegularizer: { l2: 0.03 },
      recurrentRegularizer: l1l2,
      biasRegularizer: { l1: 0.01 },
    }),
  ];
});

const embeddingCases: ModelCase[] = [
  model(
    'embedding/ids to vectors',
    [{ type: 'embedding', inputDim: 7, outputDim: 3 }],
    (d) => [d.int(3, 5)],
    {
      ids: 7,
    },
  ),
  model(
    'embedding/regularizer',
    [{ type: 'embedding', inputDim: 5, outputDim: 2, embeddingsRegularizer: l1l2 }],
    (d) => [d.int(3, 4)],
    { ids: 5 },
  ),
  model(
    'embedding/then gru',
    [
      { type: 'embedding', inputDim: 6, outputDim: 2 },
      { type: 'gru', units: 2 },
    ],
    () => [4],
    { ids: 6 },
  ),
];

const networkCases: ModelCase[] = [
  model(
    'network/conv2d, maxPooling2d, flatten, dense',
    [
      { type: 'conv2d', filters: 2, kernelSize: 2, activation: 'relu', padding: 'same' },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'flatten' },
      { type: 'dense', units: 4, activation: 'tanh' },
    ],
    image,
  ),
  model(
    'network/conv1d, averagePooling1d same, lstm',
    [
      { type: 'conv1d', filters: 2, kernelSize: 2, padding: 'same' },
      { type: 'averagePooling1d', poolSize: 2, padding: 'same' },
      { type: 'lstm', units: 2 },
    ],
    (d) => [d.int(5, 7), 2],
  ),
];

/** Every loss, on the output layer the task would get, with and without class (row) weights. */
const lossCases: ModelCase[] = [
  ...(['meanSquaredError', 'meanAbsoluteError', 'huber'] as const).map((loss) =>
    model(`loss/${loss}`, [{ type: 'dense', units: 4, activation: 'tanh' }], features, {
      loss,
      output: { units: 2, activation: 'linear' },
    }),
  ),
  model(
    'loss/binaryCrossentropy (sigmoid output)',
    [{ type: 'dense', units: 4, activation: 'tanh' }],
    features,
    {
      loss: 'binaryCrossentropy',
      output: { units: 1, activation: 'sigmoid' },
    },
  ),
  ...(['categoricalCrossentropy', 'sparseCategoricalCrossentropy'] as const).map((loss) =>
    model(`loss/${loss} (softmax output)`, [{ type: 'dense', units: 4, activation: 'tanh' }], features, {
      loss,
      output: { units: 3, activation: 'softmax' },
    }),
  ),
  model(
    'loss/categoricalCrossentropy, class weights',
    [{ type: 'dense', units: 4, activation: 'tanh' }],
    features,
    {
      loss: 'categoricalCrossentropy',
      output: { units: 3, activation: 'softmax' },
      rowWeights: true,
    },
  ),
  model(
    'loss/binaryCrossentropy, class weights',
    [{ type: 'dense', units: 4, activation: 'tanh' }],
    features,
    {
      loss: 'binaryCrossentropy',
      output: { units: 1, activation: 'sigmoid' },
      rowWeights: true,
    },
  ),
  model('loss/meanSquaredError, row weights', [{ type: 'dense', units: 4, activation: 'tanh' }], features, {
    rowWeights: true,
  }),
];

/** Ops no job-spec layer reaches whose kernels the project supplies (fine-tuned base models may use them). */
const depthwise = (
  id: string,
  strides: [number, number],
  dilations: [number, number],
  padding: 'valid' | 'same',
): OpCase => ({
  kind: 'op',
  id: `op depthwiseConv2d/${id}`,
  shapes: (d) => [
    [2, d.int(5, 7), d.int(5, 7), 2],
    [2, 2, 2, 2],
  ],
  run: (tf, [x, f]) => tf.depthwiseConv2d(x as Tensor4D, f as Tensor4D, strides, padding, 'NHWC', dilations),
  reference: ([x, f]) => depthwiseConv2d(x as Arr, f as Arr, { strides, dilations, padding }),
});

const opCases: GradientCase[] = [
  depthwise('valid', [1, 1], [1, 1], 'valid'),
  depthwise('strides 2, same', [2, 2], [1, 1], 'same'),
  {
    kind: 'op',
    id: 'op avgPool3d/same, pool [2, 3, 2], strides [1, 2, 1]',
    shapes: (d) => [[2, d.int(3, 4), d.int(4, 6), d.int(3, 5), 2]],
    run: (tf, [x]) => tf.avgPool3d(x as Tensor5D, [2, 3, 2], [1, 2, 1], 'same'),
    reference: ([x]) => avgPool3d(x as Arr, [2, 3, 2], [1, 2, 1], 'same'),
  },
  {
    kind: 'op',
    id: 'op avgPool/explicit padding 1, pool 3, strides 2',
    notOn: {
      backends: ['tensorflow'],
      why: "tfjs-node supports only 'valid' and 'same' padding, the only ones the job spec allows",
    },
    shapes: () => [[2, 7, 5, 2]],
    run: (tf, [x]) => tf.avgPool(x as Tensor4D, 3, 2, 1),
    reference: ([x]) =>
      pool2d(
        x as Arr,
        'avg',
        [3, 3],
        [2, 2],
        [
          [1, 1],
          [1, 1],
        ],
      ),
  },
];

export const GRADIENT_CASES: readonly GradientCase[] = [
  ...denseCases,
  ...dropoutCases,
  ...batchNormCases,
  ...conv1dCases,
  ...conv2dCases,
  ...poolingCases,
  ...shapeCases,
  ...recurrentCases,
  ...embeddingCases,
  ...networkCases,
  ...lossCases,
  ...opCases,
];
