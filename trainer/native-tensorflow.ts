/**
 * TensorFlow's native runtime through `@tensorflow/tfjs-node` / `@tensorflow/tfjs-node-gpu` 4.22:
 * what must happen before the package loads (Node ≥ 23 compatibility, thread counts, quiet C++
 * logs), and what the loaded runtime is (TensorFlow version, GPU or CPU). `npm run setup:native`
 * builds the package's addon against TensorFlow 2.21 (docs/native.md); this module only loads it.
 *
 * Loaded with `await import()` inside try/catch, never statically: both packages are optional and
 * usually absent (npm drops them when their install script cannot download libtensorflow).
 */
import { availableParallelism } from 'node:os';
import nodeUtil from 'node:util';
import type { TF } from './backend.ts';

export const TFJS_NODE = '@tensorflow/tfjs-node';
export const TFJS_NODE_GPU = '@tensorflow/tfjs-node-gpu';
export type NativePackage = typeof TFJS_NODE | typeof TFJS_NODE_GPU;

/**
 * Makes Node's `util` what tfjs-node 4.22 expects; returns the names it changed. Node 23 removed
 * `util.isNullOrUndefined`, which tfjs-node calls for every op's inputs (and in TopK): without it
 * nearly every kernel throws "isNullOrUndefined is not a function". `util.isArray`, which it calls
 * on the same path, is deprecated (DEP0044) and prints a warning into the log on first use: it is
 * replaced by `Array.isArray`, which it has always been equal to. Idempotent.
 */
export function patchNodeUtilForTfjsNode(util: object = nodeUtil): string[] {
  const target = util as Record<string, unknown>;
  const changed: string[] = [];
  if (typeof target.isNullOrUndefined !== 'function') {
    Object.defineProperty(target, 'isNullOrUndefined', {
      value: (value: unknown) => value === null || value === undefined,
      writable: true,
      configurable: true,
    });
    changed.push('isNullOrUndefined');
  }
  if (target.isArray !== Array.isArray) {
    Object.defineProperty(target, 'isArray', { value: Array.isArray, writable: true, configurable: true });
    changed.push('isArray');
  }
  return changed;
}

/**
 * Threads of each worker when `workers` processes share `cores`: TensorFlow would give every process
 * a pool of one thread per core, so N workers would oversubscribe the machine N times.
 */
export function threadsPerWorker(cores: number, workers: number): number {
  return Math.max(1, Math.floor(cores / Math.max(1, workers)));
}

export interface NativeThreads {
  /** Threads one op may use (TensorFlow's intra-op pool). */
  readonly intraOp: number;
  /** Ops that may run at once (inter-op pool). */
  readonly interOp: number;
}

const positive = (raw: string | undefined): number | undefined => {
  const value = Number(raw);
  return raw && Number.isInteger(value) && value > 0 ? value : undefined;
};

/**
 * The environment TensorFlow's C library reads when it starts (its first op), each set only when
 * the operator has not set it: `TF_NUM_INTRAOP_THREADS` (default: every core; the local supervisor
 * sets cores ÷ workers), `TF_NUM_INTEROP_THREADS` (default 1: the trainer runs one op at a time),
 * `TF_CPP_MIN_LOG_LEVEL=2` (TensorFlow's INFO and WARNING lines, e.g. the CPU-feature notice, stay
 * out of the worker's JSON log; errors still show) and `TF_ENABLE_ONEDNN_OPTS=1`, TensorFlow's own
 * default: oneDNN's CPU kernels train bench:train's CNN about 3× faster on the compiled engine
 * (and the MLP faster; docs/native.md), at the price of one notice on stderr when the library
 * loads, which no log level hides (`TF_ENABLE_ONEDNN_OPTS=0` for a silent start). Returns the
 * thread counts.
 */
export function prepareNativeEnv(
  env: NodeJS.ProcessEnv = process.env,
  cores: number = availableParallelism(),
): NativeThreads {
  env.TF_NUM_INTRAOP_THREADS = String(positive(env.TF_NUM_INTRAOP_THREADS) ?? cores);
  env.TF_NUM_INTEROP_THREADS = String(positive(env.TF_NUM_INTEROP_THREADS) ?? 1);
  env.TF_CPP_MIN_LOG_LEVEL ||= '2';
  env.TF_ENABLE_ONEDNN_OPTS ||= '1';
  return {
    intraOp: Number(env.TF_NUM_INTRAOP_THREADS),
    interOp: Number(env.TF_NUM_INTEROP_THREADS),
  };
}

export interface NativeRuntime {
  readonly tf: TF;
  readonly package: NativePackage;
  /** TensorFlow's own version (`TF_Version()` of the loaded library), e.g. `2.21.0`. */
  readonly tensorflowVersion: string;
  /** Where ops run: TensorFlow places them on its first GPU when it sees one. */
  readonly device: 'gpu' | 'cpu';
  readonly threads: NativeThreads;
  /** Packages tried first that could not start. */
  readonly skipped: readonly NativeFailure[];
}

/** The parts of tfjs-node's backend object read here. */
interface NodeKernelBackend {
  isUsingGpuDevice?: boolean;
  binding?: { TF_Version?: string };
}

/** Why one native package could not start, in one line. */
export interface NativeFailure {
  readonly package: NativePackage;
  readonly reason: string;
}

export class NativeUnavailableError extends Error {
  readonly failures: readonly NativeFailure[];
  constructor(failures: readonly NativeFailure[]) {
    super(failures.map((f) => `${f.package}: ${f.reason}`).join('; '));
    this.name = 'NativeUnavailableError';
    this.failures = failures;
  }
}

/** The first line of an error, with tfjs-node's hint to `npm rebuild` (which would download 2.9.1) cut. */
export function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/Cannot find (package|module) '@tensorflow\/tfjs-node(-gpu)?'/.test(message)) return 'not installed';
  return (message.split('\n')[0] ?? message)
    .replace(/\s*Please run command .*$/, '')
    .trim()
    .replace(/\.+$/, '');
}

async function loadOne(name: NativePackage): Promise<Omit<NativeRuntime, 'skipped'>> {
  const tf = (await import(name)) as TF;
  // The package made `tensorflow` the default backend when it loaded; prove it runs an op.
  if (!(await tf.setBackend('tensorflow'))) throw new Error('the tensorflow backend failed to initialise');
  const value = tf.tidy(() => tf.tensor1d([1, 2, 3]).square().sum().dataSync()[0]);
  if (value !== 14) throw new Error(`a test op returned ${value} instead of 14`);
  const backend = tf.backend() as unknown as NodeKernelBackend;
  return {
    tf,
    package: name,
    tensorflowVersion: backend.binding?.TF_Version ?? 'unknown',
    device: backend.isUsingGpuDevice ? 'gpu' : 'cpu',
    threads: {
      intraOp: Number(process.env.TF_NUM_INTRAOP_THREADS),
      interOp: Number(process.env.TF_NUM_INTEROP_THREADS),
    },
  };
}

const loaded = new Map<string, Promise<NativeRuntime>>();

/**
 * Loads the first of `packages` that starts and runs an op (the GPU build first: on a machine
 * without a GPU it runs on the CPU, and says so in `device`). Once per process; throws
 * `NativeUnavailableError` with each package's reason.
 */
export function loadNativeTensorFlow(
  packages: readonly NativePackage[] = [TFJS_NODE_GPU, TFJS_NODE],
): Promise<NativeRuntime> {
  const key = packages.join(',');
  let runtime = loaded.get(key);
  if (!runtime) {
    runtime = (async () => {
      patchNodeUtilForTfjsNode();
      prepareNativeEnv();
      const failures: NativeFailure[] = [];
      for (const name of packages) {
        try {
          return { ...(await loadOne(name)), skipped: failures };
        } catch (error) {
          failures.push({ package: name, reason: firstLine(error) });
        }
      }
      throw new NativeUnavailableError(failures);
    })();
    loaded.set(key, runtime);
  }
  return runtime;
}
