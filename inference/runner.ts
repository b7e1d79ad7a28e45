/**
 * Runs published models with TensorFlow.js: the `ModelRunner` of core/predictions. A model is loaded
 * from its `model.json` + `weights.bin` once and kept, keyed by tenant, job and the weights' ETag
 * (a job's artifacts never change once it SUCCEEDED; the ETag guards against a job deleted and an id
 * reused anyway), the least recently used dropped past `maxModels`. No AWS here; the caller gives
 * the store and the TensorFlow.js functions (the CPU backend in the Lambda, the worker's on a worker).
 */
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { jobKeys } from '../core/platform/keys.ts';
import type { ObjectStore } from '../core/platform/ports.ts';
import type { ExplainTarget, ModelRef, ModelRunner } from '../core/predictions/model-runner.ts';

/** What running and explaining a model needs from TensorFlow.js (tfjs-core + tfjs-layers suffice). */
export type InferenceTf = Pick<
  typeof import('@tensorflow/tfjs'),
  'tensor' | 'tidy' | 'grad' | 'io' | 'loadLayersModel' | 'dispose' | 'ready' | 'mul' | 'sum'
>;

interface Cached {
  readonly etag: string;
  readonly model: Promise<LayersModel>;
}

/** Rows × steps per gradient call of integrated gradients (bounds the memory of one call). */
const IG_BATCH_ROWS = 8192;
/** Rows per forward call. */
const PREDICT_BATCH_ROWS = 4096;

export interface TfjsRunnerOptions {
  /** Models kept loaded at once. @default 16 */
  readonly maxModels?: number;
}

export class TfjsModelRunner implements ModelRunner {
  readonly #tf: InferenceTf;
  readonly #store: ObjectStore;
  readonly #cache = new Map<string, Cached>();
  readonly #maxModels: number;
  /** Loads from storage since start (for tests and logs). */
  loads = 0;

  constructor(tf: InferenceTf, store: ObjectStore, options: TfjsRunnerOptions = {}) {
    this.#tf = tf;
    this.#store = store;
    this.#maxModels = options.maxModels ?? 16;
  }

  /** The model of a SUCCEEDED job, loaded once per weights ETag. */
  async model(ref: ModelRef): Promise<LayersModel> {
    const keys = jobKeys(ref.tenant, ref.jobId);
    const head = await this.#store.head(keys.weights);
    if (!head) throw new Error(`job ${ref.jobId} has no model weights`);
    const id = `${ref.tenant}/${ref.jobId}`;
    const cached = this.#cache.get(id);
    if (cached && cached.etag === head.etag) {
      this.#cache.delete(id); // most recently used goes last
      this.#cache.set(id, cached);
      return cached.model;
    }
    if (cached) void cached.model.then((m) => m.dispose()).catch(() => {});
    const model = this.#load(keys.modelJson, keys.weights);
    this.#cache.set(id, { etag: head.etag, model });
    model.catch(() => this.#cache.delete(id));
    while (this.#cache.size > this.#maxModels) {
      const [oldest, entry] = this.#cache.entries().next().value as [string, Cached];
      this.#cache.delete(oldest);
      void entry.model.then((m) => m.dispose()).catch(() => {});
    }
    return model;
  }

  async #load(modelKey: string, weightsKey: string): Promise<LayersModel> {
    const [json, weights] = await Promise.all([this.#store.get(modelKey), this.#store.get(weightsKey)]);
    if (!json || !weights) throw new Error(`model files missing: ${modelKey}`);
    this.loads++;
    const modelJson = JSON.parse(new TextDecoder().decode(json.body)) as {
      modelTopology: object;
      weightsManifest: { weights: unknown[] }[];
    };
    const body = weights.body;
    const weightData = body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer;
    await this.#tf.ready();
    return this.#tf.loadLayersModel(
      this.#tf.io.fromMemory({
        modelTopology: modelJson.modelTopology,
        weightSpecs: (modelJson.weightsManifest[0]?.weights ?? []) as never,
        weightData,
      }),
    );
  }

  async run(ref: ModelRef, x: Float32Array, n: number): Promise<Float32Array> {
    const model = await this.model(ref);
    const shape = inputShapeOf(model);
    const width = shape.reduce((a, b) => a * b, 1);
    const parts: Float32Array[] = [];
    for (let start = 0; start < n; start += PREDICT_BATCH_ROWS) {
      const size = Math.min(PREDICT_BATCH_ROWS, n - start);
      const out = this.#tf.tidy(
        () =>
          model.predict(
            this.#tf.tensor(x.subarray(start * width, (start + size) * width), [size, ...shape]),
          ) as Tensor,
      );
      parts.push((await out.data()) as Float32Array);
      out.dispose();
    }
    return concat(parts);
  }

  /**
   * Integrated gradients: for each row, the gradient of its target output at `steps + 1` points on
   * the straight path from the baseline to the row, averaged by the trapezoid rule and multiplied by
   * (row − baseline).
   */
  async integratedGradients(
    ref: ModelRef,
    x: Float32Array,
    n: number,
    baseline: Float32Array,
    targets: readonly ExplainTarget[],
    steps: number,
  ): Promise<Float32Array> {
    const tf = this.#tf;
    const model = await this.model(ref);
    const shape = inputShapeOf(model);
    const width = baseline.length;
    const points = steps + 1;
    const rowsPerCall = Math.max(1, Math.floor(IG_BATCH_ROWS / points));
    const out = new Float32Array(n * width);
    for (let first = 0; first < n; first += rowsPerCall) {
      const rows = Math.min(rowsPerCall, n - first);
      // Path points, row-major [rows · points × width], and the one-hot mask of each row's target.
      const path = new Float32Array(rows * points * width);
      const units = (model.outputs[0]?.shape.at(-1) as number | undefined) ?? 1;
      const mask = new Float32Array(rows * points * units);
      for (let r = 0; r < rows; r++) {
        const target = targets[first + r] as ExplainTarget;
        for (let k = 0; k < points; k++) {
          const alpha = k / steps;
          const base = (r * points + k) * width;
          for (let j = 0; j < width; j++) {
            const b = baseline[j] as number;
            path[base + j] = b + alpha * ((x[(first + r) * width + j] as number) - b);
          }
          mask[(r * points + k) * units + target.unit] = target.sign;
        }
      }
      const grads = tf.tidy(() => {
        const inputs = tf.tensor(path, [rows * points, ...shape]);
        const weights = tf.tensor(mask, [rows * points, units]);
        const f = (input: Tensor) =>
          tf.sum(tf.mul(model.apply(input, { training: false }) as Tensor, weights));
        return tf.grad(f)(inputs);
      });
      const g = (await grads.data()) as Float32Array;
      grads.dispose();
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < width; j++) {
          let sum = 0;
          for (let k = 0; k < points; k++) {
            const w = k === 0 || k === steps ? 0.5 : 1;
            sum += w * (g[(r * points + k) * width + j] as number);
          }
          const row = first + r;
          out[row * width + j] = ((x[row * width + j] as number) - (baseline[j] as number)) * (sum / steps);
        }
      }
    }
    return out;
  }
}

function inputShapeOf(model: LayersModel): number[] {
  const shape = model.inputs[0]?.shape ?? [];
  return shape.slice(1).map((d) => d ?? 1);
}

function concat(parts: Float32Array[]): Float32Array {
  const all = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.length;
  }
  return all;
}
