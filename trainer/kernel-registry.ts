/**
 * Every kernel, gradient function and layer method the project supplies to TensorFlow.js, and every
 * training path it supplies besides tfjs (the compiled engine), with the gradient-check cases that
 * exercise it (ids of test/helpers/gradcheck/cases.ts: a small model or op with seeded random
 * shapes, checked against float64 finite differences on every backend).
 *
 * test/gradients/kernel-registry.test.ts starts the backends as the trainer does and diffs what is
 * registered before and after: a kernel, gradient or layer method the project changes without an
 * entry here fails it, as does an entry whose cases are missing or never run its kernel. Adding a
 * kernel (a compiled step, a per-example gradient for private training, …) means adding its entry
 * and, if no existing case runs it, a case.
 */

/** `path`: a whole training path outside tfjs's kernels, checked by the harness as a pseudo-backend. */
export type SuppliedKind = 'kernel' | 'gradient' | 'layer' | 'path';

export interface SuppliedKernel {
  kind: SuppliedKind;
  /**
   * The tfjs kernel name; for `gradient`, the forward kernel whose gradient is replaced; for `layer`,
   * the tfjs-layers class; for `path`, the harness's pseudo-backend name.
   */
  name: string;
  /** Backends it is registered for (`kernel`) or runs on (`path`); gradients and layer methods apply to every backend. */
  backends: readonly string[];
  /** Where it is defined. */
  module: string;
  /** The op or gradient it backs, and why the project supplies it. */
  backs: string;
  /** Gradient-check case ids that run it. */
  checkedBy: readonly string[];
}

const ALL = ['cpu', 'wasm', 'tensorflow'] as const;

const conv = ['conv2d/valid', 'conv2d/strides 2, same', 'conv1d/same', 'conv1d/strides 2, valid'];
const dense = ['dense/activation tanh', 'dense/on a sequence (rank 3)', 'lstm/returnSequences'];
const embedding = ['embedding/ids to vectors', 'embedding/then gru'];

/** One case per builder, activation, option and loss of the compiled step (it runs every model case too). */
const compiledStep = [
  ...['linear', 'relu', 'relu6', 'elu', 'selu', 'sigmoid', 'hardSigmoid', 'tanh', 'softmax'].map(
    (a) => `dense/activation ${a}`,
  ),
  ...['softplus', 'softsign', 'swish', 'mish'].map((a) => `dense/activation ${a}`),
  'dense/no bias',
  'dense/regularizers',
  'dense/on a sequence (rank 3)',
  'dropout/rate 0.5 between dense layers',
  'batchNormalization/training mode, rank 2',
  'batchNormalization/after conv2d (rank 4)',
  'conv1d/same',
  'conv1d/strides 2, valid',
  'conv1d/dilation 2, same',
  'conv2d/strides 2, same',
  'conv2d/dilation 2, same, relu (unfused)',
  'conv2d/dilation [2, 1], same, linear',
  'maxPooling1d/same, pool 3, strides 2',
  'averagePooling1d/same, pool 2, strides 1',
  'maxPooling2d/same, pool [3, 2], strides [2, 1]',
  'averagePooling2d/same, pool 3, strides 2',
  'flatten/rank 3 to 2',
  'reshape/to a sequence, then lstm',
  'lstm/last output',
  'lstm/returnSequences',
  'lstm/activation relu, recurrentActivation hardSigmoid',
  'lstm/input dropout 0.3, fixed mask',
  'lstm/no bias',
  'lstm/regularizers',
  'gru/returnSequences',
  'gru/input dropout 0.3, fixed mask',
  'gru/regularizers',
  'embedding/regularizer',
  'embedding/then gru',
  'loss/meanAbsoluteError',
  'loss/huber',
  'loss/binaryCrossentropy, class weights',
  'loss/categoricalCrossentropy, class weights',
  'loss/meanSquaredError, row weights',
];

export const SUPPLIED_KERNELS: readonly SuppliedKernel[] = [
  {
    kind: 'path',
    name: 'compiled',
    backends: ['tensorflow'],
    module: 'trainer/compiled/',
    backs:
      'the compiled training step: forward, loss, penalties and gradients (TF_AddGradients, the fused LSTM backward) as one TensorFlow graph; its optimizers go through the optimizer check',
    checkedBy: compiledStep,
  },
  {
    kind: 'kernel',
    name: 'Conv2DBackpropFilter',
    backends: ['wasm'],
    module: 'trainer/wasm-kernels.ts',
    backs: 'the filter gradient of conv1d/conv2d (missing from wasm)',
    checkedBy: conv,
  },
  {
    kind: 'kernel',
    name: 'DepthwiseConv2dNativeBackpropFilter',
    backends: ['wasm'],
    module: 'trainer/wasm-kernels.ts',
    backs: 'the filter gradient of depthwise/separable convolutions in fine-tuned models (missing from wasm)',
    checkedBy: ['op depthwiseConv2d/valid', 'op depthwiseConv2d/strides 2, same'],
  },
  {
    kind: 'kernel',
    name: 'DepthwiseConv2dNativeBackpropInput',
    backends: ['wasm'],
    module: 'trainer/wasm-kernels.ts',
    backs: 'the input gradient of depthwise/separable convolutions (missing from wasm)',
    checkedBy: ['op depthwiseConv2d/valid', 'op depthwiseConv2d/strides 2, same'],
  },
  {
    kind: 'kernel',
    name: 'UnsortedSegmentSum',
    backends: ['wasm'],
    module: 'trainer/wasm-kernels.ts',
    backs: 'the gradient of gather: embedding layers (missing from wasm)',
    checkedBy: embedding,
  },
  {
    kind: 'kernel',
    name: 'BatchMatMul',
    backends: ['wasm'],
    module: 'trainer/wasm-fast-kernels.ts',
    backs: 'dense and recurrent layers, forward and backward (stock is slow with a transpose flag)',
    checkedBy: dense,
  },
  {
    kind: 'kernel',
    name: '_FusedMatMul',
    backends: ['wasm'],
    module: 'trainer/wasm-fast-kernels.ts',
    backs: 'the forward pass of dense layers (stock is slow, and wrong with a bias, when transposed)',
    checkedBy: dense,
  },
  {
    kind: 'kernel',
    name: 'GatherV2',
    backends: ['wasm'],
    module: 'trainer/wasm-fast-kernels.ts',
    backs: 'embedding lookups and batch gathers (stock copies element by element)',
    checkedBy: embedding,
  },
  {
    kind: 'kernel',
    name: 'Conv2DBackpropInput',
    backends: ['wasm'],
    module: 'trainer/wasm-fast-kernels.ts',
    backs: 'the input gradient of conv1d/conv2d (stock is a naive loop)',
    checkedBy: conv,
  },
  {
    kind: 'kernel',
    name: 'MaxPoolGrad',
    backends: ['wasm'],
    module: 'trainer/wasm-fast-kernels.ts',
    backs: 'the gradient of max pooling (stock is slow and breaks ties unlike cpu)',
    checkedBy: [
      'maxPooling2d/valid, pool 2',
      'maxPooling2d/same, pool 3, strides 2',
      'maxPooling1d/same, pool 2, strides 1',
    ],
  },
  {
    kind: 'kernel',
    name: 'AvgPoolGrad',
    backends: ['cpu', 'wasm'],
    module: 'trainer/gradient-fixes.ts',
    backs: 'the gradient of average pooling: stock divides border windows by the full window size',
    checkedBy: [
      'averagePooling2d/same, pool 2, strides 1',
      'averagePooling2d/same, pool 3, strides 2',
      'averagePooling2d/same, pool [3, 2], strides [2, 1]',
      'averagePooling1d/same, pool 3, strides 2',
      'op avgPool/explicit padding 1, pool 3, strides 2',
    ],
  },
  {
    kind: 'kernel',
    name: 'AvgPool3DGrad',
    backends: ['cpu', 'wasm'],
    module: 'trainer/gradient-fixes.ts',
    backs: 'the gradient of 3-D average pooling in fine-tuned models: the same fault as AvgPoolGrad',
    checkedBy: ['op avgPool3d/same, pool [2, 3, 2], strides [1, 2, 1]'],
  },
  {
    kind: 'gradient',
    name: 'Conv2D',
    backends: ALL,
    module: 'trainer/gradient-fixes.ts',
    backs: 'the gradient of dilated convolutions (tfjs-core refuses dilations > 1)',
    checkedBy: [
      'conv1d/dilation 2, valid',
      'conv1d/dilation 2, same',
      'conv2d/dilation 2, same, relu (unfused)',
    ],
  },
  {
    kind: 'layer',
    name: 'Conv2D',
    backends: ALL,
    module: 'trainer/gradient-fixes.ts',
    backs: 'dilated conv2d layers: computed unfused, whose gradient handles dilations',
    checkedBy: ['conv2d/dilation 2, valid, tanh (fused)', 'conv2d/dilation [2, 1], same, linear'],
  },
  {
    kind: 'layer',
    name: 'RNN',
    backends: ALL,
    module: 'trainer/gradient-fixes.ts',
    backs: "lstm/gru regularisers: the cell's penalties reach model.calculateLosses()",
    checkedBy: ['lstm/regularizers', 'gru/regularizers'],
  },
];
