/**
 * Chooses the TensorFlow.js backend at start, best first: TensorFlow native on a GPU → TensorFlow
 * native on the CPU → wasm → cpu. A backend counts only once a tiny op ran on it, and what was
 * chosen is reported truthfully: the tfjs backend name (`tensorflow`, `wasm`, `cpu`), the package,
 * and the device (`gpu` only when TensorFlow placed ops on a GPU).
 *
 * Without a preference the native packages' absence is normal (they are optional; `npm run
 * setup:native` provides them) and only moves on to the next candidate. A named backend
 * (`DESCENT_BACKEND`) is strict: if it cannot start, `selectBackend` throws a
 * `BackendUnavailableError` that says why, and the trainer's entry turns that into an exit at boot
 * (code 78: `EXIT_BACKEND_UNAVAILABLE`).
 */
import { registerGradientFixes } from './gradient-fixes.ts';
import { loadNativeTensorFlow, NativeUnavailableError, TFJS_NODE_GPU } from './native-tensorflow.ts';
import { registerFastWasmKernels } from './wasm-fast-kernels.ts';
import { registerMissingWasmKernels } from './wasm-kernels.ts';

export type TF = typeof import('@tensorflow/tfjs');

/** What `DESCENT_BACKEND` may name, best first; without one the first that starts is chosen. */
export const BACKEND_CHOICES = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface SelectedBackend {
  tf: TF;
  /** The backend name tfjs reports and the job record keeps: `tensorflow`, `wasm` or `cpu`. */
  name: string;
  /** Which choice started (`tensorflow-gpu`, `tensorflow`, `wasm`, `cpu`). */
  choice: BackendChoice;
  /** Which package provided it. */
  package: string;
  /** What the backend computes on: `gpu` only for TensorFlow with a GPU it placed ops on. */
  device: 'gpu' | 'cpu';
  /** TensorFlow native only: the library's version and its thread pools. */
  tensorflow?: { version: string; intraOpThreads: number; interOpThreads: number };
  /** Why better candidates were skipped. */
  skipped: { backend: BackendChoice; reason: string }[];
}

/** A named backend (or, without one, every backend) could not start; the message says why and what to do. */
export class BackendUnavailableError extends Error {
  readonly backend: string | undefined;
  readonly skipped: SelectedBackend['skipped'];
  constructor(message: string, backend: string | undefined, skipped: SelectedBackend['skipped']) {
    super(message);
    this.name = 'BackendUnavailableError';
    this.backend = backend;
    this.skipped = skipped;
  }
}

type Started = Omit<SelectedBackend, 'choice' | 'skipped'>;

const SETUP_HINT = {
  tensorflow: 'Run `npm run setup:native` (docs/native.md) to build it against TensorFlow 2.21.',
  'tensorflow-gpu':
    'The GPU image builds it with `npm run setup:native -- --gpu` (docs/native.md); the host needs the NVIDIA driver.',
} as const;

async function startNative(requireGpu: boolean): Promise<Started> {
  const runtime = await loadNativeTensorFlow();
  if (requireGpu && runtime.device !== 'gpu') {
    const gpuFailure = runtime.skipped.find((f) => f.package === TFJS_NODE_GPU);
    throw new Error(
      gpuFailure?.reason === 'not installed'
        ? `${TFJS_NODE_GPU} is not installed (only the CPU build ${runtime.package} is)`
        : gpuFailure
          ? `${TFJS_NODE_GPU} could not load: ${gpuFailure.reason}`
          : `TensorFlow ${runtime.tensorflowVersion} (${runtime.package}) sees no GPU: check the NVIDIA driver, NVIDIA_VISIBLE_DEVICES and the CUDA libraries on LD_LIBRARY_PATH (TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow's own reason)`,
    );
  }
  // Another backend may have been set since the package loaded (tests and bench switch).
  if (!(await runtime.tf.setBackend('tensorflow')))
    throw new Error('the tensorflow backend failed to initialise');
  return {
    tf: runtime.tf,
    name: 'tensorflow',
    package: runtime.package,
    device: runtime.device,
    tensorflow: {
      version: runtime.tensorflowVersion,
      intraOpThreads: runtime.threads.intraOp,
      interOpThreads: runtime.threads.interOp,
    },
  };
}

async function works(tf: TF, backend: string): Promise<boolean> {
  if (!(await tf.setBackend(backend))) return false;
  await tf.ready();
  const value = tf.tidy(() => tf.tensor1d([1, 2, 3]).square().sum().dataSync()[0]);
  return value === 14;
}

const START: Record<BackendChoice, () => Promise<Started>> = {
  'tensorflow-gpu': () => startNative(true),
  tensorflow: () => startNative(false),
  wasm: async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    const tf = await import('@tensorflow/tfjs');
    // wasm lacks the gradients of convolutions and embeddings: supply them so every layer trains.
    registerMissingWasmKernels(tf);
    // Five stock kernels are slow paths that training spends most of its time in: replace them.
    registerFastWasmKernels(tf);
    if (!(await works(tf, 'wasm'))) throw new Error('failed to initialise');
    return { tf, name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', device: 'cpu' };
  },
  cpu: async () => {
    const tf = await import('@tensorflow/tfjs');
    if (!(await works(tf, 'cpu'))) throw new Error('failed to initialise');
    return { tf, name: 'cpu', package: '@tensorflow/tfjs', device: 'cpu' };
  },
};

function reasonOf(error: unknown): string {
  if (error instanceof NativeUnavailableError) {
    // A package that is there but fails says more than one that is absent.
    const present = error.failures.filter((f) => f.reason !== 'not installed');
    if (present.length === 0)
      return `neither ${error.failures.map((f) => f.package).join(' nor ')} is installed`;
    return present.map((f) => `${f.package} could not load: ${f.reason}`).join('; ');
  }
  return String((error as Error)?.message ?? error).split('\n')[0] ?? 'unavailable';
}

/** Parses a `DESCENT_BACKEND` value: empty means "best available"; anything unknown throws. */
export function parseBackendChoice(value: string | undefined): BackendChoice | undefined {
  if (value === undefined || value === '') return undefined;
  if ((BACKEND_CHOICES as readonly string[]).includes(value)) return value as BackendChoice;
  throw new BackendUnavailableError(
    `DESCENT_BACKEND=${value} is not a backend: use ${BACKEND_CHOICES.join(', ')}, or leave it unset for the best available.`,
    value,
    [],
  );
}

/**
 * Starts `preferred` (strict: throws `BackendUnavailableError` naming it and why when it cannot
 * start) or, without one, the best backend that starts. tfjs's own console notices are silenced.
 */
export async function selectBackend(preferred?: string): Promise<SelectedBackend> {
  const choice = parseBackendChoice(preferred);
  const candidates = choice ? [choice] : BACKEND_CHOICES;
  const skipped: SelectedBackend['skipped'] = [];
  // Before any backend writes its first tensor (the cpu backend's banner comes with it).
  quietTfjs(await import('@tensorflow/tfjs'));
  for (const candidate of candidates) {
    try {
      const started = await START[candidate]();
      registerGradientFixes(started.tf); // tfjs gradients found wrong by the gradient check (test/gradients/)
      return { ...started, choice: candidate, skipped };
    } catch (error) {
      skipped.push({ backend: candidate, reason: reasonOf(error) });
    }
  }
  const reason = skipped.map((s) => s.reason).join('; ');
  if (choice) {
    // The setup hint helps when a package is missing or broken, not when TensorFlow runs but sees no GPU.
    const hint =
      (choice === 'tensorflow' || choice === 'tensorflow-gpu') && !reason.includes('sees no GPU')
        ? ` ${SETUP_HINT[choice]}`
        : '';
    throw new BackendUnavailableError(`DESCENT_BACKEND=${choice} but ${reason}.${hint}`, choice, skipped);
  }
  throw new BackendUnavailableError(
    `No TensorFlow.js backend could start: ${skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ')}`,
    undefined,
    skipped,
  );
}

/** Messages tfjs writes straight to the console that are notices, not problems of a job. */
const TFJS_NOTICES = [
  // tfjs-layers, every time an LSTM/GRU builds its recurrent kernel (units ≥ 23): an orthogonal
  // initialiser over 2,000 elements "may be slow"; it takes milliseconds at these sizes.
  'Orthogonal initializer is being called on a matrix with more than',
];

let consoleFiltered = false;

/** Whether a `console.warn` argument is one of tfjs's notices. */
export function isTfjsNotice(first: unknown): boolean {
  return typeof first === 'string' && TFJS_NOTICES.some((notice) => first.startsWith(notice));
}

/**
 * Keeps tfjs's notices out of the worker's JSON log: production mode turns off its `warn`/`log`
 * helpers (the cpu backend's "Hi, looks like you are running TensorFlow.js in Node.js" banner,
 * "backend was already registered"; failures of a backend are reported by `selectBackend` instead),
 * and the few notices it prints with `console.warn` directly are dropped. Idempotent.
 */
export function quietTfjs(tf: TF): void {
  tf.enableProdMode();
  if (consoleFiltered) return;
  consoleFiltered = true;
  const warn = console.warn.bind(console);
  console.warn = (...args: unknown[]) => {
    if (!isTfjsNotice(args[0])) warn(...args);
  };
}

/** The backend's identity for logs and the `ready` message. */
export function describeBackend(backend: SelectedBackend): Record<string, unknown> {
  return {
    backend: backend.name,
    device: backend.device,
    package: backend.package,
    ...(backend.tensorflow
      ? {
          tensorflow: backend.tensorflow.version,
          intraOpThreads: backend.tensorflow.intraOpThreads,
          interOpThreads: backend.tensorflow.interOpThreads,
        }
      : {}),
    ...(backend.skipped.length ? { skipped: backend.skipped } : {}),
  };
}
