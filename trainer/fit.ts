/**
 * One fit: preprocessing fitted on the training rows, the resource estimate checked against this
 * worker's memory with the real input shape, tensors for each set of rows (encoded in slices that
 * give the event loop a turn, and checked: finite values, an embedding's ids), a model (new or from
 * a base model), and the training loop. k-fold runs call it once per fold and once for the
 * delivered model.
 */
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import type { JobSpec } from '../core/jobs/job-spec.ts';
import { UnrecoverableError } from '../core/platform/errors.ts';
import type { PreparedData } from '../core/training/dataset-prep.ts';
import { encodeRows, type FittedPreprocessing, fitPreprocessing } from '../core/training/preprocess.ts';
import {
  describeEstimate,
  estimateResources,
  formatBytes,
  type LayerEstimate,
  type ResourceEstimate,
  walkModel,
} from '../core/training/resources.ts';
import type { TF } from './backend.ts';
import {
  type DataSet,
  type EngineName,
  type SelectRunner,
  type TrainHooks,
  type TrainOutcome,
  type TrainState,
  train,
} from './engine.ts';
import { defaultLoss } from './losses.ts';
import { buildModel, outputFor } from './model-builder.ts';
import { checkEmbeddingIds, checkFinite } from './numeric-checks.ts';
import type { OptimizerState } from './optimizer-state.ts';

/** Gives the event loop a turn and applies a cancel, the maximum runtime or a shutdown (`TrainingSession.pace`). */
export type Pace = (phase: string) => Promise<void>;
const noPace: Pace = async () => {};
/** Values encoded per slice between two turns of the event loop. */
const ENCODE_SLICE_VALUES = 1 << 22;

export interface EncodedSet extends DataSet {
  rows: Int32Array;
  /** The encoded inputs, row-major, kept for evaluation and importance. */
  xData: Float32Array;
  /** Class index or target per row. */
  actual: Float32Array;
}

/** Per-class loss weights: `balanced` = n / (k · count of the class) over the training rows. */
export function classWeightsFor(
  spec: JobSpec,
  data: PreparedData,
  rows: Int32Array,
): Float32Array | undefined {
  const cw = spec.training.classWeights;
  const classes = data.classes;
  if (!cw || !classes) return undefined;
  const k = classes.length;
  if (cw === 'balanced') {
    const counts = new Array<number>(k).fill(0);
    for (const r of rows) counts[data.y[r] as number] = (counts[data.y[r] as number] as number) + 1;
    return Float32Array.from(counts, (c) => (c > 0 ? rows.length / (k * c) : 0));
  }
  const names = classes.map(String);
  const unknown = Object.keys(cw).filter((name) => !names.includes(name));
  if (unknown.length) {
    throw new UnrecoverableError(
      'INVALID_SPEC',
      `training.classWeights names ${unknown.map((u) => `"${u}"`).join(', ')}, which the label does not have; its classes are ${names.join(', ')}.`,
    );
  }
  return Float32Array.from(names, (name) => cw[name] ?? 1);
}

/** Encodes `rows` a slice at a time (pacing between slices), then checks what training will see. */
async function encodeInSlices(
  spec: JobSpec,
  data: PreparedData,
  fitted: FittedPreprocessing,
  rows: Int32Array,
  pace: Pace,
): Promise<Float32Array> {
  const width = fitted.inputShape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(rows.length * width);
  const slice = Math.max(1, Math.floor(ENCODE_SLICE_VALUES / Math.max(1, width)));
  for (let start = 0; start < rows.length; start += slice) {
    await pace('encoding the data');
    const part = rows.subarray(start, Math.min(rows.length, start + slice));
    out.set(encodeRows(data.table, data.features, fitted, part), start * width);
  }
  checkEmbeddingIds(spec, fitted, out, rows);
  return out;
}

export async function encodeSet(
  tf: TF,
  spec: JobSpec,
  data: PreparedData,
  fitted: FittedPreprocessing,
  rows: Int32Array,
  classWeights?: Float32Array,
  pace: Pace = noPace,
): Promise<EncodedSet> {
  const xData = await encodeInSlices(spec, data, fitted, rows, pace);
  const actual = Float32Array.from(rows, (r) => data.y[r] as number);
  checkFinite(fitted, xData, rows, actual, spec.dataset.label);
  const n = rows.length;
  const x = tf.tensor(xData, [n, ...fitted.inputShape]);
  const loss = defaultLoss(spec);
  let y: Tensor;
  let labels: Tensor | undefined;
  let weights: Tensor | undefined;
  if (data.classes) {
    labels = tf.tensor1d(actual, 'float32');
    y =
      loss === 'binaryCrossentropy'
        ? tf.tensor2d(actual, [n, 1])
        : tf.tidy(() =>
            tf.oneHot(tf.tensor1d(actual, 'int32'), (data.classes as unknown[]).length).toFloat(),
          );
    if (classWeights) weights = tf.tensor1d(Float32Array.from(actual, (c) => classWeights[c] as number));
  } else {
    y = tf.tensor2d(actual, [n, 1]);
  }
  return { rows, xData, actual, x, y, ...(labels ? { labels } : {}), ...(weights ? { weights } : {}) };
}

export const disposeSet = (tf: TF, set: EncodedSet | undefined): void => {
  if (set)
    tf.dispose([set.x, set.y, ...(set.labels ? [set.labels] : []), ...(set.weights ? [set.weights] : [])]);
};

export interface FitResult {
  outcome: TrainOutcome;
  fitted: FittedPreprocessing;
  train: EncodedSet;
  validation?: EncodedSet;
  /** The resource estimate the fit was checked against (its evaluation slice sizes predictions). */
  estimate: ResourceEstimate;
}

/** The memory this worker gives a job, and whether tensors live in wasm's limited memory. */
export interface MemoryBudget {
  /** The smaller of the deployment's `jobMemoryBytes` and the worker's real memory. */
  readonly bytes: number;
  /** What the budget is, in words, for messages. */
  readonly source: string;
  /** wasm: tensors share its memory, which tops out near 3.9 GiB and corrupts tensors past it. */
  readonly tensorBytes?: number;
}

export interface FitOptions {
  trainRows: Int32Array;
  validationRows?: Int32Array;
  hooks?: TrainHooks;
  /** Makes the model: a fresh one from the spec, or one derived from a base model. */
  makeModel?: (inputShape: number[]) => LayersModel | Promise<LayersModel>;
  resume?: {
    state: TrainState;
    optimizer: OptimizerState;
    weights: Tensor[];
    bestWeights?: Tensor[];
    engine?: EngineName;
  };
  /** What a job may use; without it, nothing is checked. */
  memory?: MemoryBudget;
  pace?: Pace;
  /** Private training: the key of its sampling and noise stream (tests; default fresh random bytes). */
  privacyKey?: Uint8Array;
  /** Which engine runs the steps (trainer/compiled/select.ts). @default eager */
  selectRunner?: SelectRunner;
}

/**
 * wasm memory tops out near 3.9 GiB and corrupts tensors past it before any error appears: refuse a
 * job whose tensors would need more than this there.
 */
export const WASM_TENSOR_BUDGET_BYTES = 3 * 1024 ** 3;

/** Estimate and check (walk: the spec's layers, or the layers of a built base model). */
function checkResources(
  spec: JobSpec,
  data: PreparedData,
  rows: number,
  trainRows: number,
  fitted: FittedPreprocessing,
  units: number,
  layers: readonly LayerEstimate[],
  memory: MemoryBudget | undefined,
): ResourceEstimate {
  const estimate = estimateResources(
    {
      spec,
      input: { shape: fitted.inputShape, exact: true },
      outputUnits: units,
      rows,
      trainRows,
      ...(data.table.bytes !== undefined ? { tableBytes: data.table.bytes } : {}),
    },
    { ok: true, layers },
  );
  if (!memory) return estimate;
  const overTensors = memory.tensorBytes !== undefined && estimate.tensorBytes > memory.tensorBytes;
  if (estimate.bytes.total > memory.bytes || overTensors) {
    const [need, limit, what] = overTensors
      ? [
          estimate.tensorBytes,
          memory.tensorBytes as number,
          'the wasm backend holds safely (use a worker with tfjs-node)',
        ]
      : [estimate.bytes.total, memory.bytes, memory.source];
    throw new UnrecoverableError(
      'RESOURCE_LIMIT',
      `With its data encoded (input shape [${fitted.inputShape.join(', ')}]${data.classes ? `, ${data.classes.length} classes` : ''}) this job needs an estimated ${formatBytes(need)}, over the ${formatBytes(limit)} ${what}: ${describeEstimate(estimate)}. Use fewer or narrower layers, a smaller batch, index instead of one-hot encoding, or fewer rows or features.`,
    );
  }
  return estimate;
}

/** The spec's own layers, walked over the real input shape: `INVALID_MODEL` when a shape cannot work. */
function specLayers(spec: JobSpec, fitted: FittedPreprocessing, units: number): readonly LayerEstimate[] {
  const walk = walkModel(spec.model.layers, { shape: fitted.inputShape, exact: true }, units);
  if (!walk.ok)
    throw new UnrecoverableError(
      'INVALID_MODEL',
      `The model cannot work on this data (each row is encoded as [${fitted.inputShape.join(', ')}]): ${walk.problem}.`,
    );
  return walk.layers;
}

/** A built model's layers as the estimator sees them (a fine-tuned base model has no spec layers). */
function builtLayers(model: LayersModel): LayerEstimate[] {
  return model.layers.map((layer) => {
    const shape = (
      Array.isArray(layer.outputShape[0]) ? layer.outputShape[0] : layer.outputShape
    ) as number[];
    const size = shape.slice(1).reduce((a, b) => a * (b ?? 1), 1);
    return {
      name: layer.name,
      outputShape: shape.slice(1),
      parameters: layer.countParams(),
      trainBytesPerSample: 16 * size * 4,
      forwardBytesPerSample: 8 * size * 4,
      stepBytes: 0,
    };
  });
}

export async function fit(
  tf: TF,
  spec: JobSpec,
  data: PreparedData,
  options: FitOptions,
): Promise<FitResult> {
  const pace = options.pace ?? noPace;
  await pace('preparing the data');
  const fitted = fitPreprocessing(data.table, data.features, options.trainRows, {
    ...(data.source ? { source: data.source } : {}),
    excluded: data.excluded,
  });
  const rows = options.trainRows.length + (options.validationRows?.length ?? 0) + data.testRows.length;
  const units = outputFor(spec, data.classes?.length).units;
  const check = (layers: readonly LayerEstimate[]) =>
    checkResources(spec, data, rows, options.trainRows.length, fitted, units, layers, options.memory);
  let estimate = options.makeModel ? undefined : check(specLayers(spec, fitted, units));
  const weights = classWeightsFor(spec, data, options.trainRows);
  const trainSet = await encodeSet(tf, spec, data, fitted, options.trainRows, weights, pace);
  let validationSet: EncodedSet | undefined;
  try {
    validationSet = options.validationRows?.length
      ? await encodeSet(tf, spec, data, fitted, options.validationRows, undefined, pace)
      : undefined;
    const model = options.makeModel
      ? await options.makeModel(fitted.inputShape)
      : buildModel(tf, spec, fitted.inputShape, outputFor(spec, data.classes?.length));
    try {
      estimate ??= check(builtLayers(model));
    } catch (error) {
      model.dispose();
      throw error;
    }
    if (options.resume) {
      model.setWeights(options.resume.weights);
      tf.dispose(options.resume.weights);
    }
    const outcome = await train(
      tf,
      {
        spec,
        model,
        evalSliceRows: estimate.evalSliceRows,
        ...(data.classes ? { classCount: data.classes.length } : {}),
        ...(options.hooks ? { hooks: options.hooks } : {}),
        ...(options.privacyKey ? { privacyKey: options.privacyKey } : {}),
        ...(options.selectRunner ? { selectRunner: options.selectRunner } : {}),
        ...(options.resume
          ? {
              resume: {
                state: options.resume.state,
                optimizer: options.resume.optimizer,
                ...(options.resume.bestWeights ? { bestWeights: options.resume.bestWeights } : {}),
                ...(options.resume.engine ? { engine: options.resume.engine } : {}),
              },
            }
          : {}),
      },
      trainSet,
      validationSet,
    );
    return {
      outcome,
      fitted,
      train: trainSet,
      ...(validationSet ? { validation: validationSet } : {}),
      estimate,
    };
  } catch (error) {
    disposeSet(tf, trainSet);
    disposeSet(tf, validationSet);
    throw error;
  }
}
