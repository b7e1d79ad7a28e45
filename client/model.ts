/**
 * Runs a downloaded descent model where you are, in Node.js or a browser: `loadModel(source)` reads
 * `model.json` and `weights.bin` (from URLs, such as `getResult`'s presigned `artifacts`, or from
 * bytes you read yourself), and `predict(rows)` applies the model's fitted preprocessing to raw rows
 * with the same transform the service uses (`core/training/transform.ts`, pure) and decodes its
 * outputs into labels with probabilities, or values. TensorFlow.js is yours: pass it as `tf`, or
 * `@tensorflow/tfjs` is imported when first needed.
 */
import {
  decodeOutputs,
  encodeRecords,
  type FittedPreprocessing,
  inputWidth,
  type OutputMeta,
  type Prediction,
} from '../core/training/transform.ts';

/** The TensorFlow.js functions the loader uses (`@tensorflow/tfjs` has them). */
export interface LoaderTf {
  loadLayersModel(handler: unknown): Promise<LoadedLayersModel>;
  io: { fromMemory(artifacts: unknown): unknown };
  tensor(values: Float32Array, shape: number[]): unknown;
  tidy<T>(fn: () => T): T;
}

interface LoadedLayersModel {
  predict(x: unknown): unknown;
  dispose(): void;
}

type Bytes = ArrayBuffer | Uint8Array;

/**
 * Where the model is: a folder URL holding `model.json` and `weights.bin`, a map of file name → URL
 * (the `artifacts` of `GET /jobs/{id}/result`), or the files' contents.
 */
export type ModelSource =
  | string
  | { readonly 'model.json': string | Bytes | object; readonly 'weights.bin': string | Bytes };

export interface LoadModelOptions {
  /** TensorFlow.js. @default `await import('@tensorflow/tfjs')` */
  readonly tf?: LoaderTf;
  /** @default globalThis.fetch */
  readonly fetch?: typeof fetch;
}

/** The `userDefinedMetadata.descent` descent writes into every model.json. */
interface DescentMetadata extends OutputMeta {
  label: string;
  preprocessing: FittedPreprocessing;
}

export interface LoadedModel {
  /** `classification` or `regression`. */
  readonly task: OutputMeta['task'];
  /** The column the model predicts. */
  readonly label: string;
  readonly classes?: (string | number)[];
  /** The fitted preprocessing (`preprocessing.json`). */
  readonly preprocessing: FittedPreprocessing;
  /** Raw rows (column → value, as in the training file) → one prediction per row; a bad row throws a `RowError`. */
  predict(rows: readonly Record<string, unknown>[]): Promise<Prediction[]>;
  dispose(): void;
}

const asBuffer = (b: Bytes): ArrayBuffer =>
  b instanceof ArrayBuffer ? b : (b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);

async function fetchBytes(doFetch: typeof fetch, url: string): Promise<ArrayBuffer> {
  const response = await doFetch(url);
  if (!response.ok) throw new Error(`GET ${url.split('?')[0]}: ${response.status} ${response.statusText}`);
  return response.arrayBuffer();
}

export async function loadModel(source: ModelSource, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const files =
    typeof source === 'string'
      ? {
          'model.json': new URL('model.json', source.endsWith('/') ? source : `${source}/`).href,
          'weights.bin': new URL('weights.bin', source.endsWith('/') ? source : `${source}/`).href,
        }
      : source;
  const jsonSource = files['model.json'];
  const modelJson = (
    typeof jsonSource === 'string'
      ? JSON.parse(new TextDecoder().decode(await fetchBytes(doFetch, jsonSource)))
      : jsonSource instanceof ArrayBuffer || jsonSource instanceof Uint8Array
        ? JSON.parse(new TextDecoder().decode(jsonSource))
        : jsonSource
  ) as {
    modelTopology: unknown;
    weightsManifest: { weights: unknown[] }[];
    userDefinedMetadata?: { descent?: DescentMetadata };
  };
  const meta = modelJson.userDefinedMetadata?.descent;
  if (!meta?.preprocessing)
    throw new Error('model.json has no descent metadata: is it a model descent trained?');
  const weightsSource = files['weights.bin'];
  const weightData =
    typeof weightsSource === 'string' ? await fetchBytes(doFetch, weightsSource) : asBuffer(weightsSource);
  const tf = options.tf ?? ((await import('@tensorflow/tfjs')) as unknown as LoaderTf);
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs: modelJson.weightsManifest[0]?.weights ?? [],
      weightData,
    }),
  );
  const fitted = meta.preprocessing;
  const outputMeta: OutputMeta = { task: meta.task, ...(meta.classes ? { classes: meta.classes } : {}) };
  return {
    task: meta.task,
    label: meta.label,
    ...(meta.classes ? { classes: meta.classes } : {}),
    preprocessing: fitted,
    async predict(rows) {
      const n = rows.length;
      if (n === 0) return [];
      const x = encodeRecords(fitted, rows);
      const shape = [n, ...fitted.inputShape];
      if (x.length !== n * inputWidth(fitted)) throw new Error('encoded rows do not match the model input');
      const output = tf.tidy(() => model.predict(tf.tensor(x, shape))) as {
        data(): Promise<Float32Array>;
        dispose(): void;
      };
      const raw = await output.data();
      output.dispose();
      return decodeOutputs(outputMeta, raw, n);
    },
    dispose: () => model.dispose(),
  };
}
