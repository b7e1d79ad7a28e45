/**
 * One fit: preprocessing fitted on the training rows, tensors for each set of rows, a model (new or
 * from a base model), and the training loop. k-fold runs call it once per fold and once for the
 * delivered model.
 */
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import type { JobSpec } from '../core/jobs/job-spec.ts';
import { UnrecoverableError } from '../core/platform/errors.ts';
import type { PreparedData } from '../core/training/dataset-prep.ts';
import { encodeRows, type FittedPreprocessing, fitPreprocessing } from '../core/training/preprocess.ts';
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
import type { OptimizerState } from './optimizer-state.ts';

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

export function encodeSet(
  tf: TF,
  spec: JobSpec,
  data: PreparedData,
  fitted: FittedPreprocessing,
  rows: Int32Array,
  classWeights?: Float32Array,
): EncodedSet {
  const xData = encodeRows(data.table, data.features, fitted, rows);
  const actual = Float32Array.from(rows, (r) => data.y[r] as number);
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
  /** Which engine runs the steps (trainer/compiled/select.ts). @default eager */
  selectRunner?: SelectRunner;
}

/**
 * wasm memory tops out near 3.9 GiB and corrupts tensors past it before any error appears: refuse a
 * job whose data alone would take more than this there.
 */
export const WASM_DATA_BUDGET_BYTES = 1.5 * 1024 ** 3;

export async function fit(
  tf: TF,
  spec: JobSpec,
  data: PreparedData,
  options: FitOptions,
): Promise<FitResult> {
  const fitted = fitPreprocessing(data.table, data.features, options.trainRows);
  const rows = options.trainRows.length + (options.validationRows?.length ?? 0);
  const width = fitted.inputShape.reduce((a, b) => a * b, 1) + (data.classes?.length ?? 1) + 2;
  const bytes = rows * width * 4;
  if (tf.getBackend() === 'wasm' && bytes > WASM_DATA_BUDGET_BYTES) {
    throw new UnrecoverableError(
      'DATASET_TOO_LARGE',
      `The encoded data needs ${(bytes / 1024 ** 3).toFixed(2)} GiB, more than the ${WASM_DATA_BUDGET_BYTES / 1024 ** 3} GiB the wasm backend can hold safely: use fewer rows or features, index instead of one-hot encoding, or a worker with tfjs-node.`,
    );
  }
  const weights = classWeightsFor(spec, data, options.trainRows);
  const trainSet = encodeSet(tf, spec, data, fitted, options.trainRows, weights);
  const validationSet = options.validationRows?.length
    ? encodeSet(tf, spec, data, fitted, options.validationRows)
    : undefined;
  try {
    const model = options.makeModel
      ? await options.makeModel(fitted.inputShape)
      : buildModel(tf, spec, fitted.inputShape, outputFor(spec, data.classes?.length));
    if (options.resume) {
      model.setWeights(options.resume.weights);
      tf.dispose(options.resume.weights);
    }
    const outcome = await train(
      tf,
      {
        spec,
        model,
        ...(data.classes ? { classCount: data.classes.length } : {}),
        ...(options.hooks ? { hooks: options.hooks } : {}),
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
    return { outcome, fitted, train: trainSet, ...(validationSet ? { validation: validationSet } : {}) };
  } catch (error) {
    disposeSet(tf, trainSet);
    disposeSet(tf, validationSet);
    throw error;
  }
}
