/**
 * Chooses the TensorFlow.js backend at start, best first: tfjs-node-gpu → tfjs-node → wasm → cpu.
 * The native packages are optional dependencies: their absence (or a missing native library) is
 * normal and only moves on to the next candidate. A backend counts only once a tiny op ran on it.
 */
import { registerGradientFixes } from './gradient-fixes.ts';
import { registerFastWasmKernels } from './wasm-fast-kernels.ts';
import { registerMissingWasmKernels } from './wasm-kernels.ts';

export type TF = typeof import('@tensorflow/tfjs');

export interface SelectedBackend {
  tf: TF;
  /** The backend name tfjs reports: `tensorflow` (native, GPU or CPU), `wasm` or `cpu`. */
  name: string;
  /** Which package provided it. */
  package: string;
  /** Why better candidates were skipped. */
  skipped: { package: string; reason: string }[];
}

type Candidate = { package: string; backend: string; load: () => Promise<TF> };

const CANDIDATES: Candidate[] = [
  {
    package: '@tensorflow/tfjs-node-gpu',
    backend: 'tensorflow',
    load: () => import('@tensorflow/tfjs-node-gpu' as string) as Promise<TF>,
  },
  {
    package: '@tensorflow/tfjs-node',
    backend: 'tensorflow',
    load: () => import('@tensorflow/tfjs-node' as string) as Promise<TF>,
  },
  {
    package: '@tensorflow/tfjs-backend-wasm',
    backend: 'wasm',
    load: async () => {
      await import('@tensorflow/tfjs-backend-wasm');
      const tf = await import('@tensorflow/tfjs');
      // wasm lacks the gradients of convolutions and embeddings: supply them so every layer trains.
      registerMissingWasmKernels(tf);
      // Five stock kernels are slow paths that training spends most of its time in: replace them.
      registerFastWasmKernels(tf);
      return tf;
    },
  },
  { package: '@tensorflow/tfjs', backend: 'cpu', load: () => import('@tensorflow/tfjs') },
];

async function works(tf: TF, backend: string): Promise<boolean> {
  if (!(await tf.setBackend(backend))) return false;
  await tf.ready();
  const t = tf.tensor1d([1, 2, 3]).square().sum();
  const value = (await t.data())[0];
  t.dispose();
  return value === 14;
}

/** `preferred` (e.g. from DESCENT_BACKEND: `tensorflow`, `wasm`, `cpu`) restricts the candidates. */
export async function selectBackend(preferred?: string): Promise<SelectedBackend> {
  const skipped: SelectedBackend['skipped'] = [];
  const candidates = preferred ? CANDIDATES.filter((c) => c.backend === preferred) : CANDIDATES;
  if (candidates.length === 0)
    throw new Error(`Unknown backend "${preferred}": use tensorflow, wasm or cpu.`);
  for (const candidate of candidates) {
    try {
      const tf = await candidate.load();
      registerGradientFixes(tf); // tfjs gradients found wrong by the gradient check (test/gradients/)
      if (await works(tf, candidate.backend)) {
        return { tf, name: tf.getBackend(), package: candidate.package, skipped };
      }
      skipped.push({ package: candidate.package, reason: 'failed to initialise' });
    } catch (error) {
      skipped.push({
        package: candidate.package,
        reason: String((error as Error).message ?? error).split('\n')[0] ?? 'unavailable',
      });
    }
  }
  throw new Error(
    `No TensorFlow.js backend could start: ${skipped.map((s) => `${s.package}: ${s.reason}`).join('; ')}`,
  );
}
