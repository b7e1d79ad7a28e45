/**
 * The TensorFlow.js backends this machine can run, each started the way the trainer starts it
 * (trainer/backend.ts `selectBackend`, so the project's own kernels are registered): `cpu`,
 * `wasm`, and `tensorflow` when `@tensorflow/tfjs-node` (or -gpu) imports and runs an op — after
 * `npm run setup:native`. A backend that cannot start is listed with the reason, not dropped.
 *
 * `compiled` is the compiled training engine (trainer/compiled/), checked like a backend: it runs
 * where `tensorflow` does and the graph addon (built by the same setup) loads.
 */
import { selectBackend, type TF } from '../../trainer/backend.ts';
import { compiledSetup } from '../../trainer/compiled/select.ts';

export const BACKEND_NAMES = ['cpu', 'wasm', 'tensorflow', 'compiled'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** The tfjs backend a check runs tensors on: the compiled path builds its models on `tensorflow`. */
export const tfjsBackendOf = (name: string): string => (name === 'compiled' ? 'tensorflow' : name);

export interface BackendAvailability {
  name: BackendName;
  available: boolean;
  /** Why it is not available (the first line of each candidate's error). */
  reason?: string;
}

let cached: Promise<{ tf: TF; backends: BackendAvailability[] }> | undefined;

/**
 * Starts every backend once per process (memoised) and leaves `cpu` selected. Returns the tfjs
 * module they share.
 */
export function availableBackends(): Promise<{ tf: TF; backends: BackendAvailability[] }> {
  cached ??= probe();
  return cached;
}

async function probe(): Promise<{ tf: TF; backends: BackendAvailability[] }> {
  const backends: BackendAvailability[] = [];
  let tf: TF | undefined;
  for (const name of BACKEND_NAMES) {
    if (name === 'compiled') {
      backends.push(compiledAvailability(backends));
      continue;
    }
    try {
      const selected = await selectBackend(name);
      tf ??= selected.tf;
      backends.push({ name, available: true });
    } catch (error) {
      backends.push({ name, available: false, reason: reasonOf(error) });
    }
  }
  if (!tf) throw new Error('No TensorFlow.js backend starts on this machine.');
  await tf.setBackend('cpu');
  return { tf, backends };
}

function reasonOf(error: unknown): string {
  const message = String((error as Error)?.message ?? error);
  return message.replace(/^No TensorFlow\.js backend could start: /, '').split('\n')[0] ?? message;
}

/** The compiled engine's availability, after `tensorflow`'s. */
function compiledAvailability(backends: BackendAvailability[]): BackendAvailability {
  const tensorflow = backends.find((b) => b.name === 'tensorflow');
  if (!tensorflow?.available) return { name: 'compiled', available: false, reason: 'no tensorflow backend' };
  const setup = compiledSetup({ name: 'tensorflow' });
  return setup.addon
    ? { name: 'compiled', available: true }
    : { name: 'compiled', available: false, reason: setup.unavailable ?? 'the graph addon did not load' };
}
