/**
 * What the trainer checks so that a job ends once with its real outcome: a TensorFlow.js error inside
 * a training step or a prediction is deterministic for the same spec, data and seed (a shape the
 * builder let through, an id outside an embedding's vocabulary, a kernel option the backend refuses),
 * so it fails the job at once instead of being retried as temporary; running out of memory is
 * `RESOURCE_LIMIT`; a device fault (the GPU) stays temporary. Encoded inputs and targets must be
 * finite, an embedding's inputs integer ids in its vocabulary, and a trained model's weights finite.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { JobSpec } from '../core/jobs/job-spec.ts';
import { UnrecoverableError } from '../core/platform/errors.ts';
import type { FittedPreprocessing } from '../core/training/preprocess.ts';
import { widthOf } from '../core/training/preprocess.ts';
import type { TF } from './backend.ts';

const MEMORY =
  /out of memory|allocation failed|array buffer allocation|memory size exceeded|Aborted\(OOM\)|OOM/i;
const DEVICE = /CUDA|cuDNN|cublas|device|GPU/;

/**
 * The error a failed TensorFlow.js computation stands for: `RESOURCE_LIMIT` for memory, the error
 * itself for a device fault (temporary: another attempt may run on a healthy device), and
 * `INVALID_MODEL` for the rest, with `where` (`training step 1 of epoch 1`) in the message.
 */
export function classifyComputeError(error: unknown, where: string): Error {
  if (error instanceof UnrecoverableError) return error;
  const message = String((error as Error)?.message ?? error);
  if (MEMORY.test(message) || (error instanceof RangeError && /length|allocation/i.test(message)))
    return new UnrecoverableError(
      'RESOURCE_LIMIT',
      `The worker ran out of memory at ${where}: ${message}. Use a smaller model or batch, or fewer rows or features.`,
    );
  if (DEVICE.test(message)) return error as Error;
  return new UnrecoverableError(
    'INVALID_MODEL',
    `TensorFlow.js refused this model at ${where}: ${message}. The same spec and data fail the same way on every attempt: change the model.`,
  );
}

/** Runs a synchronous computation; its error is classified (see `classifyComputeError`). */
export function computing<T>(where: () => string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw classifyComputeError(error, where());
  }
}

/** The feature (and the position inside an array feature) an encoded column belongs to. */
function columnAt(fitted: FittedPreprocessing, index: number): string {
  let offset = 0;
  for (const column of fitted.columns) {
    const width = widthOf(column);
    if (index < offset + width)
      return width > 1 ? `"${column.name}" (value ${index - offset + 1} of ${width})` : `"${column.name}"`;
    offset += width;
  }
  return `${index + 1}`;
}

/**
 * Every encoded input and target is a finite float32 (a value the parser let through can still
 * overflow once scaled, or a label read from a text column): `INVALID_DATA` naming the row (1-based,
 * as in the file) and the column.
 */
export function checkFinite(
  fitted: FittedPreprocessing,
  x: Float32Array,
  rows: Int32Array,
  actual: Float32Array,
  label: string,
): void {
  const width = x.length / Math.max(1, rows.length);
  for (let i = 0; i < x.length; i++) {
    if (Number.isFinite(x[i] as number)) continue;
    const row = (rows[Math.floor(i / width)] as number) + 1;
    throw new UnrecoverableError(
      'INVALID_DATA',
      `Row ${row}, column ${columnAt(fitted, i % width)}: the value becomes ${x[i]} once preprocessed, beyond what training's 32-bit floats hold; scale the column or fix the value.`,
    );
  }
  for (let i = 0; i < actual.length; i++) {
    if (Number.isFinite(actual[i] as number)) continue;
    throw new UnrecoverableError(
      'INVALID_DATA',
      `Row ${(rows[i] as number) + 1}, column "${label}": the label is ${actual[i]} as a 32-bit float; training needs finite numbers within ±3.4e38.`,
    );
  }
}

/** The embedding layer the model's inputs go into directly (first, or after reshape or flatten only). */
export function inputEmbedding(spec: JobSpec): { inputDim: number } | undefined {
  for (const layer of spec.model.layers) {
    if (layer.type === 'embedding') return layer;
    if (layer.type !== 'reshape' && layer.type !== 'flatten') return undefined;
  }
  return undefined;
}

/** An embedding looks up its inputs as ids: each must be an integer in [0, inputDim). */
export function checkEmbeddingIds(
  spec: JobSpec,
  fitted: FittedPreprocessing,
  x: Float32Array,
  rows: Int32Array,
): void {
  const embedding = inputEmbedding(spec);
  if (!embedding) return;
  const width = x.length / Math.max(1, rows.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i] as number;
    if (Number.isInteger(v) && v >= 0 && v < embedding.inputDim) continue;
    throw new UnrecoverableError(
      'INVALID_DATA',
      `Row ${(rows[Math.floor(i / width)] as number) + 1}, column ${columnAt(fitted, i % width)}: the embedding layer looks up integer ids from 0 to ${embedding.inputDim - 1} (its inputDim − 1), but receives ${v}${Number.isInteger(v) ? '' : ' (not an integer: set preprocessing.scale to "none" for id columns)'}.`,
    );
  }
}

/** A trained model whose weights hold NaN or infinities never succeeds: `DIVERGED`, naming the layer. */
export function checkFiniteWeights(tf: TF, model: LayersModel, learningRate: number): void {
  for (const weight of model.weights) {
    const finite = tf.tidy(() => tf.all(tf.isFinite(weight.read())).dataSync()[0]);
    if (finite) continue;
    throw new UnrecoverableError(
      'DIVERGED',
      `Training diverged: the trained weights ${weight.name} hold NaN or infinite values. Lower the learning rate (now ${learningRate}), scale the features (preprocessing.scale "standardize"), or clip gradients.`,
    );
  }
}
