/**
 * The resource model: what a job will need, from its spec and the shape of its data, before any
 * tensor exists. Pure (no TensorFlow.js), so the API refuses at submit what cannot fit, and the
 * trainer checks again with the real input width (after one-hot encoding) before building the model.
 *
 * - Parameters per layer, exactly as TensorFlow.js counts them (`model.countParams()`: every weight,
 *   batch normalization's moving statistics included), and every layer's output shape; the same walk
 *   finds shapes that can never work (a reshape that changes the size, a kernel wider than its input,
 *   a recurrent layer fed a flat row) before the first step would.
 * - Model memory: 4 bytes per parameter for each copy a training step holds at its peak (weights,
 *   gradients, the optimizer's slots and its update's temporaries: `stepCopies`, measured), or
 *   a checkpoint's copy when that is more, plus the best weights kept by early stopping.
 * - Activation memory of one training batch (what each layer keeps per sample for the backward pass,
 *   and what a step copies whatever its batch: a recurrent layer's kernels at every time step), and
 *   of one evaluation slice (forward only), whose row count is chosen to stay within the same budget.
 *   The per-layer factors were measured with `tf.profile` on tfjs 4.22 (wasm and cpu), rounded up.
 * - Data: the encoded inputs (a tensor and the array it was made from: 8 bytes a value).
 * - The parsed table: at least 8 bytes a cell (numeric columns are Float64Arrays).
 *
 * Figures are estimates of the peak, not measurements: `test/unit/resources.test.ts` checks the
 * parameters against `countParams()` for every layer type, `test/integration/resources.test.ts`
 * that one training step's measured peak stays under the activation estimate.
 */
import type { HiddenLayer, JobSpec, OptimizerSpec } from '../jobs/job-spec.ts';

const FLOAT = 4;
/** Rows of an evaluation slice at most (the trainer predicts in slices). */
export const MAX_EVAL_SLICE_ROWS = 2048;
/** Evaluation slices may use this much activation memory even when a training batch needs less. */
const EVAL_ACTIVATION_FLOOR_BYTES = 64 * 1024 ** 2;

/** The input of the model: its shape without the batch axis, and whether that shape is exact. */
export interface ModelInput {
  readonly shape: readonly number[];
  /**
   * `false` at submit for tabular data: the width is a lower bound (one column per feature; one-hot
   * encoding widens it), so only checks that hold for any width are made.
   */
  readonly exact: boolean;
}

export interface LayerEstimate {
  /** `layer 3 (conv2d)`, `the output layer`. */
  readonly name: string;
  readonly outputShape: readonly number[];
  readonly parameters: number;
  /** Bytes one training sample adds (forward values, their gradients, scratch). */
  readonly trainBytesPerSample: number;
  /** Bytes one predicted sample adds (forward only). */
  readonly forwardBytesPerSample: number;
  /**
   * Bytes a training step adds whatever its batch, beyond the parameter copies of the optimizer's step
   * (a recurrent layer copies its kernels at every time step; a convolution its filters twice).
   */
  readonly stepBytes: number;
}

export type ShapeWalk =
  | { readonly ok: true; readonly layers: readonly LayerEstimate[] }
  | { readonly ok: false; readonly problem: string };

const product = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);
const pair = (v: number | [number, number]): [number, number] => (Array.isArray(v) ? v : [v, v]);
const show = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** Output length of a window sliding over `length` (TensorFlow's `conv_output_length`). */
function windowOutput(
  length: number,
  window: number,
  stride: number,
  padding: 'valid' | 'same',
  dilation = 1,
) {
  const span = (window - 1) * dilation + 1;
  return padding === 'same' ? Math.ceil(length / stride) : Math.ceil((length - span + 1) / stride);
}

class ShapeProblem extends Error {}

/** The estimate of one hidden layer on an input of `shape`; throws `ShapeProblem` when it cannot work. */
function hiddenLayer(
  layer: HiddenLayer,
  name: string,
  shape: readonly number[],
  exact: boolean,
): LayerEstimate {
  const needRank = (rank: number, what: string) => {
    if (shape.length !== rank)
      throw new ShapeProblem(
        `${name} needs ${what} (an input of ${rank} dimension${rank > 1 ? 's' : ''} per row), but receives ${show(shape)}: reshape first (a reshape layer, or a feature declared with a shape)`,
      );
  };
  const last = shape.at(-1) ?? 1;
  const size = product(shape);
  /**
   * `train`: floats a training sample keeps; `stepCopies`: copies of the parameters a step adds
   * beyond the optimizer's. Forward-only work keeps about half of a training sample's floats.
   */
  const estimate = (
    outputShape: number[],
    parameters: number,
    train: number,
    stepCopies = 0,
  ): LayerEstimate => ({
    name,
    outputShape,
    parameters,
    trainBytesPerSample: train * FLOAT,
    forwardBytesPerSample: (train / 2) * FLOAT,
    stepBytes: stepCopies * parameters * FLOAT,
  });
  switch (layer.type) {
    case 'dense': {
      const out = [...shape.slice(0, -1), layer.units];
      return estimate(
        out,
        last * layer.units + (layer.useBias ? layer.units : 0),
        16 * product(out) + 2 * size,
      );
    }
    case 'dropout':
      return estimate([...shape], 0, 10 * size);
    case 'batchNormalization':
      return estimate([...shape], 4 * last, 18 * size, 2);
    case 'conv1d':
    case 'conv2d': {
      const twoD = layer.type === 'conv2d';
      needRank(twoD ? 3 : 2, twoD ? '[height, width, channels]' : '[steps, channels]');
      const kernel = twoD ? pair(layer.kernelSize) : [layer.kernelSize as number];
      const strides = twoD ? pair(layer.strides) : [layer.strides as number];
      const dilation = twoD ? pair(layer.dilationRate) : [layer.dilationRate as number];
      if (strides.some((s) => s > 1) && dilation.some((d) => d > 1))
        throw new ShapeProblem(`${name}: strides above 1 cannot be combined with a dilationRate above 1`);
      const spatial = kernel.map((k, i) =>
        windowOutput(shape[i] as number, k, strides[i] as number, layer.padding, dilation[i] as number),
      );
      if (spatial.some((d) => d < 1))
        throw new ShapeProblem(
          `${name}: its kernel ${show(kernel)} (dilation ${show(dilation)}) spans more than its input ${show(shape)}; use a smaller kernel or padding "same"`,
        );
      const out = [...spatial, layer.filters];
      const parameters = product(kernel) * last * layer.filters + (layer.useBias ? layer.filters : 0);
      return estimate(out, parameters, 16 * product(out) + 4 * size, 2);
    }
    case 'maxPooling1d':
    case 'averagePooling1d':
    case 'maxPooling2d':
    case 'averagePooling2d': {
      const twoD = layer.type.endsWith('2d');
      needRank(twoD ? 3 : 2, twoD ? '[height, width, channels]' : '[steps, channels]');
      const pool = twoD ? pair(layer.poolSize) : [layer.poolSize as number];
      const strides =
        layer.strides === undefined ? pool : twoD ? pair(layer.strides) : [layer.strides as number];
      const spatial = pool.map((p, i) =>
        windowOutput(shape[i] as number, p, strides[i] as number, layer.padding),
      );
      if (spatial.some((d) => d < 1))
        throw new ShapeProblem(
          `${name}: its pool ${show(pool)} is larger than its input ${show(shape)}; use a smaller pool or padding "same"`,
        );
      const out = [...spatial, last];
      return estimate(out, 0, 12 * product(out) + 2 * size);
    }
    case 'flatten':
      if (shape.length < 2)
        throw new ShapeProblem(
          `${name}: flatten needs an input of 2 or more dimensions per row, but receives ${show(shape)}`,
        );
      return estimate([size], 0, size);
    case 'reshape': {
      const unknown = layer.targetShape.indexOf(-1);
      const known = product(layer.targetShape.filter((d) => d !== -1));
      const fits = unknown >= 0 ? size % known === 0 : known === size;
      if (exact && !fits)
        throw new ShapeProblem(
          `${name}: cannot reshape ${show(shape)} (${size} values a row) to ${show(layer.targetShape)}${unknown >= 0 ? '' : ` (${known} values)`}`,
        );
      const out = layer.targetShape.map((d) => (d === -1 ? Math.max(1, Math.floor(size / known)) : d));
      return estimate(out, 0, size);
    }
    case 'lstm':
    case 'gru': {
      needRank(2, '[steps, features]');
      const gates = layer.type === 'lstm' ? 4 : 3;
      const [steps, features] = shape as [number, number];
      const u = layer.units;
      const parameters = gates * (features * u + u * u + (layer.useBias ? u : 0));
      const out = layer.returnSequences ? [steps, u] : [u];
      // tfjs unrolls the sequence: every step keeps ~75 (LSTM) or ~70 (GRU) floats a unit for each
      // sample, and copies the kernels 4 (LSTM) or 5 (GRU) times, whatever the batch.
      const perStep = (gates === 4 ? 84 : 80) * u + 4 * features;
      return estimate(out, parameters, steps * perStep + 2 * product(out), steps * (gates === 4 ? 4 : 5));
    }
    case 'embedding': {
      const out = [...shape, layer.outputDim];
      return estimate(out, layer.inputDim * layer.outputDim, 12 * product(out), 1);
    }
  }
}

/**
 * Walks the model a spec declares over `input`: each hidden layer, then (after a flatten when the
 * shape has more than one dimension, as the trainer builds it) a dense output of `outputUnits`.
 */
export function walkModel(layers: readonly HiddenLayer[], input: ModelInput, outputUnits: number): ShapeWalk {
  const out: LayerEstimate[] = [];
  let shape: readonly number[] = input.shape;
  try {
    layers.forEach((layer, i) => {
      const estimate = hiddenLayer(layer, `layer ${i + 1} (${layer.type})`, shape, input.exact);
      out.push(estimate);
      shape = estimate.outputShape;
    });
  } catch (error) {
    if (error instanceof ShapeProblem) return { ok: false, problem: error.message };
    throw error;
  }
  const width = product(shape);
  out.push({
    name: 'the output layer',
    outputShape: [outputUnits],
    parameters: width * outputUnits + outputUnits,
    // The flatten before it (a view or a copy), the dense, the activation and the loss's terms.
    trainBytesPerSample: (16 * outputUnits + 2 * width) * FLOAT,
    forwardBytesPerSample: (8 * outputUnits + width) * FLOAT,
    stepBytes: 0,
  });
  return { ok: true, layers: out };
}

/** Tensors of the optimizer's state per parameter (its "slots"), kept between steps. */
export function optimizerSlots(o: OptimizerSpec): number {
  switch (o.type) {
    case 'gd':
    case 'sgd':
      return 0;
    case 'momentum':
    case 'adagrad':
      return 1;
    case 'adam':
    case 'adamax':
    case 'adadelta':
      return 2;
    case 'rmsprop':
      return 2 + (o.centered ? 1 : 0);
  }
}

/**
 * Copies of the parameters one training step holds at its peak: the weights, their gradients, the
 * optimizer's slots and the temporaries of its update (TensorFlow.js keeps every variable's until the
 * whole update ends). Measured with `tf.profile` on tfjs 4.22, the same on the cpu and wasm backends:
 * Adam's first step peaks at 18 times the weights.
 */
export function stepCopies(o: OptimizerSpec): number {
  switch (o.type) {
    case 'gd':
    case 'sgd':
      return 3;
    case 'momentum':
      return o.useNesterov ? 6 : 5;
    case 'adagrad':
      return 7;
    case 'adam':
      return 18;
    case 'adamax':
      return 16;
    case 'adadelta':
      return 12;
    case 'rmsprop':
      return o.centered ? 13 : 12;
  }
}

export interface ResourceEstimate {
  readonly parameters: number;
  /** Bytes, by what holds them; `total` is their sum. */
  readonly bytes: {
    readonly model: number;
    readonly activations: number;
    readonly data: number;
    /**
     * The training rows again, in the compiled engine's graph (a worker on TensorFlow native holds
     * them there as well as in its tensors); counted wherever the job may run.
     */
    readonly graphData: number;
    readonly table: number;
    readonly total: number;
  };
  /** Bytes that live in tensors (the wasm backend's memory): model, activations and the input tensors. */
  readonly tensorBytes: number;
  /** Rows per training step and per evaluation slice the activation figure assumes. */
  readonly batchRows: number;
  readonly evalSliceRows: number;
  /** Which of the two the activation figure is (the larger). */
  readonly activationsFor: 'training' | 'evaluation';
  /** Copies of the parameters the model figure counts (the peak of a step, or of saving a checkpoint). */
  readonly parameterCopies: number;
}

export interface EstimateInput {
  readonly spec: {
    readonly training: Pick<
      JobSpec['training'],
      'batchSize' | 'earlyStopping' | 'optimizer' | 'gradientClipping'
    >;
  };
  readonly input: ModelInput;
  /** Units of the output layer: the number of classes (1 for two with binaryCrossentropy), 1 for regression. */
  readonly outputUnits: number;
  /** Rows the job trains, validates and tests on, in all. */
  readonly rows: number;
  /** Rows of the training set (for a full batch). */
  readonly trainRows: number;
  /** Bytes of the parsed table, when counted (at submit: rows × columns × 8, at least). */
  readonly tableBytes?: number;
}

/** The estimate for a model that builds; `walk` is `walkModel`'s answer for the same spec and input. */
export function estimateResources(
  request: EstimateInput,
  walk: Extract<ShapeWalk, { ok: true }>,
): ResourceEstimate {
  const { spec, rows } = request;
  const parameters = walk.layers.reduce((a, l) => a + l.parameters, 0);
  const best = spec.training.earlyStopping?.restoreBestWeights ? 1 : 0;
  const clipping = spec.training.gradientClipping ? 1 : 0;
  const { optimizer } = spec.training;
  // The peak of a step, or between steps: weights + slots + a saved copy (checkpoint, publish); both
  // with early stopping's best weights.
  const parameterCopies = Math.max(stepCopies(optimizer) + clipping, 2 + optimizerSlots(optimizer)) + best;
  const model = parameters * FLOAT * parameterCopies;
  const batchRows = Math.max(
    1,
    spec.training.batchSize === 'full'
      ? request.trainRows
      : Math.min(spec.training.batchSize, request.trainRows),
  );
  const trainPerSample =
    walk.layers.reduce((a, l) => a + l.trainBytesPerSample, 0) + product(request.input.shape) * FLOAT;
  const forwardPerSample =
    walk.layers.reduce((a, l) => a + l.forwardBytesPerSample, 0) + product(request.input.shape) * FLOAT;
  const trainActivations = batchRows * trainPerSample + walk.layers.reduce((a, l) => a + l.stepBytes, 0);
  const evalBudget = Math.max(trainActivations, EVAL_ACTIVATION_FLOOR_BYTES);
  const evalSliceRows = Math.max(
    1,
    Math.min(MAX_EVAL_SLICE_ROWS, Math.floor(evalBudget / Math.max(1, forwardPerSample))),
  );
  const evalActivations = evalSliceRows * forwardPerSample;
  const activations = Math.max(trainActivations, evalActivations);
  const inputTensor = rows * product(request.input.shape) * FLOAT;
  const data = 2 * inputTensor + rows * (request.outputUnits + 2) * FLOAT;
  const graphData = request.trainRows * (product(request.input.shape) + request.outputUnits + 2) * FLOAT;
  const table = request.tableBytes ?? 0;
  return {
    parameters,
    bytes: {
      model,
      activations,
      data,
      graphData,
      table,
      total: model + activations + data + graphData + table,
    },
    tensorBytes: model + activations + inputTensor,
    batchRows,
    evalSliceRows,
    activationsFor: evalActivations > trainActivations ? 'evaluation' : 'training',
    parameterCopies,
  };
}

/** Bytes in words: `1.5 GiB`, `12 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} bytes` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

/** The estimate in words, largest part first, for a message that says what to change. */
export function describeEstimate(e: ResourceEstimate): string {
  const parts: [number, string][] = [
    [
      e.bytes.model,
      `model ${formatBytes(e.bytes.model)} (${e.parameters.toLocaleString('en-US')} parameters × 4 bytes × ${e.parameterCopies}: weights, gradients, the optimizer's state and its update)`,
    ],
    [
      e.bytes.activations,
      `activations ${formatBytes(e.bytes.activations)} (${e.activationsFor === 'training' ? `a batch of ${e.batchRows} rows` : `predicting ${e.evalSliceRows} rows at a time`})`,
    ],
    [e.bytes.data, `encoded data ${formatBytes(e.bytes.data)}`],
    [e.bytes.graphData, `the training rows in the compiled engine's graph ${formatBytes(e.bytes.graphData)}`],
    [e.bytes.table, `parsed table ${formatBytes(e.bytes.table)}`],
  ];
  return parts
    .filter(([bytes]) => bytes > 0)
    .sort((a, b) => b[0] - a[0])
    .map(([, text]) => text)
    .join('; ');
}
