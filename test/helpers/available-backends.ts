/**
 * The TensorFlow.js backends this machine can run, each started the way the trainer starts it
 * (trainer/backend.ts `selectBackend`, so the project's own kernels are registered): `cpu`,
 * `wasm`, and `tensorflow` when `@tensorflow/tfjs-node` (or -gpu) imports and runs an op — after
 * `npm run setup:native`. A backend that cannot start is listed with the reason, not dropped.
 */
import { selectBackend, type TF } from '../../trainer/backend.ts';

export const BACKEND_NAMES = ['cpu', 'wasm', 'tensorflow'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

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
