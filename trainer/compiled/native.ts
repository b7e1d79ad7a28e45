/**
 * Loads descent's own TensorFlow graph addon (trainer/compiled/native/graph.cc), which
 * `npm run setup:native` builds against the same libtensorflow as tfjs-node. The addon is generic:
 * graphs of TensorFlow operations, symbolic gradients, sessions, tensors in and out as typed arrays.
 * What a training step is lives in TypeScript (trainer/compiled/).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { prepareNativeEnv } from '../native-tensorflow.ts';

/** TensorFlow's `TF_DataType` numbers of the types the addon moves. */
export const DT = { float32: 1, float64: 2, int32: 3, uint8: 4, int64: 9, bool: 10 } as const;
export type DType = (typeof DT)[keyof typeof DT];

/** An operation's output: [operation id, output index]. */
export type Output = readonly [number, number];

export type AttrValue =
  | ['int', number]
  | ['float', number]
  | ['bool', boolean]
  | ['type', DType]
  | ['string', string]
  | ['ints', number[]]
  | ['floats', number[]]
  | ['types', DType[]]
  | ['shape', number[] | null]
  | ['tensor', TensorValue];

export type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

/** A tensor's value as the addon reads and returns it (always copied). */
export interface TensorValue {
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

export interface OperationSpec {
  type: string;
  name: string;
  /** Each an output, or a list of outputs for a list input. */
  inputs: (Output | Output[])[];
  attrs?: [string, ...AttrValue][];
  /** Operations that must run first. */
  control?: number[];
  device?: string;
}

export interface NativeGraph {
  addOperation(spec: OperationSpec): number;
  /** Gradients of Σ ys with respect to each x (`null` where no path leads to it). */
  addGradients(ys: Output[], xs: Output[], dxs?: Output[] | null, prefix?: string): (Output | null)[];
  outputInfo(output: Output): { dtype: DType; shape: number[] | null };
  numOutputs(op: number): number;
  /** The type of every operation in the graph (gradients included), in the order they were added. */
  operationTypes(): string[];
}

export interface SessionOptions {
  intraOpThreads: number;
  interOpThreads: number;
  /** TensorFlow's XLA JIT (auto-clustering, `global_jit_level: ON_1`). */
  xla: boolean;
}

export interface NativeSession {
  run(feeds: [Output, TensorValue][], fetches: Output[], targets: number[]): TensorValue[];
  /** `run` with TensorFlow's full trace: the fetches, then the serialized RunMetadata (step stats). */
  trace(feeds: [Output, TensorValue][], fetches: Output[], targets: number[]): [...TensorValue[], Uint8Array];
  /** Frees the session (idempotent); the finaliser does it otherwise. */
  close(): void;
}

export interface GraphAddon {
  Graph: new () => NativeGraph;
  Session: new (graph: NativeGraph, options: SessionOptions) => NativeSession;
  /** `TF_Version()` of the library the addon loaded. */
  version(): string;
  /** The instruction set of the addon's fused LSTM kernel on this CPU: avx512, avx2 or portable. */
  lstmIsa: string;
}

/** Where setup:native builds the addon (node-gyp's output folder beside its sources). */
export const ADDON_PATH = fileURLToPath(
  new URL('./native/build/Release/descent_tf_graph.node', import.meta.url),
);

let loaded: { addon?: GraphAddon; error?: string } | undefined;

/**
 * The addon, or why it cannot be used (not built: run `npm run setup:native`; or it failed to load).
 * Once per process. Load tfjs-node first where both are used: either way both resolve the same
 * `libtensorflow_cc.so.2`, which the dynamic loader maps once.
 */
export function loadGraphAddon(): { addon?: GraphAddon; error?: string } {
  if (loaded) return loaded;
  if (!existsSync(ADDON_PATH)) {
    loaded = { error: `the graph addon is not built (${ADDON_PATH}): run \`npm run setup:native\`` };
    return loaded;
  }
  try {
    // TensorFlow reads its thread and log settings when it starts: set them as tfjs-node's loader does.
    prepareNativeEnv();
    const require = createRequire(import.meta.url);
    loaded = { addon: require(ADDON_PATH) as GraphAddon };
  } catch (error) {
    loaded = { error: `the graph addon could not load: ${String((error as Error).message).split('\n')[0]}` };
  }
  return loaded;
}
