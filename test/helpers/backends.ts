/**
 * Running the same computation on several backends and comparing (kernel tests), and the training
 * backends this machine has (tests of the training path run on each).
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { type SelectedBackend, selectBackend, type TF } from '../../trainer/backend.ts';
import { type CompiledSetup, compiledSetup, selectRunner } from '../../trainer/compiled/select.ts';
import type { EngineName, SelectRunner } from '../../trainer/engine.ts';
import { TFJS_NODE, TFJS_NODE_GPU } from '../../trainer/native-tensorflow.ts';

export type Shape4 = [number, number, number, number];
export type Pad =
  | 'valid'
  | 'same'
  | number
  | [[number, number], [number, number], [number, number], [number, number]];

/** Seeded uniform values in [-1, 1) (mulberry32), so both backends get the same inputs. */
export function random(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

export const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

export interface Result {
  shape: number[];
  values: Float32Array | Int32Array | Uint8Array;
}

/** Runs `f` on a backend (which must create its own input tensors) and reads the result out. */
export async function on(
  backend: 'cpu' | 'wasm' | 'tensorflow',
  f: () => tf.Tensor | tf.Tensor[],
): Promise<Result[]> {
  assert.ok(await tf.setBackend(backend));
  const out = tf.tidy(f);
  const list = Array.isArray(out) ? out : [out];
  const results = list.map((t) => ({ shape: t.shape, values: t.dataSync() as Result['values'] }));
  tf.dispose(list);
  return results;
}

/** Max |a − b| relative to max |b|, per tensor, must be under `tol` (0: bitwise equal). */
export function assertClose(actual: Result[], expected: Result[], label: string, tol = 1e-4): void {
  assert.equal(actual.length, expected.length, label);
  actual.forEach((a, k) => {
    const e = expected[k] as Result;
    assert.deepEqual(a.shape, e.shape, `${label} [${k}] shape`);
    if (tol === 0) {
      assert.deepEqual(Array.from(a.values), Array.from(e.values), `${label} [${k}]`);
      return;
    }
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < e.values.length; i++) {
      diff = Math.max(diff, Math.abs((a.values[i] as number) - (e.values[i] as number)));
      scale = Math.max(scale, Math.abs(e.values[i] as number));
    }
    assert.ok(scale > 0, `${label} [${k}]: all zero`);
    assert.ok(diff <= tol * scale, `${label} [${k}]: max diff ${diff} vs scale ${scale}`);
  });
}

/**
 * The training backends of this machine, for tests parameterised over them: wasm always, and
 * `tensorflow` when `@tensorflow/tfjs-node` or `-gpu` is installed (`npm run setup:native`). A
 * native package that is installed but does not start fails the tests instead of being skipped.
 */
export async function trainingBackends(): Promise<SelectedBackend[]> {
  const backends = [await selectBackend('wasm')];
  if (nativeInstalled()) backends.push(await selectBackend('tensorflow'));
  return backends;
}

/** Whether a native package is in node_modules (whether or not it works). */
export function nativeInstalled(): boolean {
  const require = createRequire(import.meta.url);
  return [TFJS_NODE, TFJS_NODE_GPU].some((name) => {
    try {
      require.resolve(`${name}/package.json`);
      return true;
    } catch {
      return false;
    }
  });
}

/** Makes `backend` the one tfjs runs ops on (one process may hold several), and returns its `tf`. */
export async function use(backend: SelectedBackend): Promise<TF> {
  assert.ok(await backend.tf.setBackend(backend.name), `setBackend(${backend.name})`);
  return backend.tf;
}

/** A backend and the engine its training steps run on (tests of the training loop run on each). */
export interface TrainingEngine {
  /** `wasm`, `tensorflow` (eager), `tensorflow compiled`. */
  label: string;
  backend: SelectedBackend;
  engine: EngineName;
  /** The run's engine choice, as a worker makes it (undefined: eager). */
  select?: SelectRunner;
  /** The compiled engine's setup on this backend (runJob deps). */
  compiled?: CompiledSetup;
}

/**
 * The training engines of this machine: eager on each of `trainingBackends()`, and compiled on
 * `tensorflow`, whose graph addon the same `npm run setup:native` builds (installed but not
 * loading fails the tests rather than skipping them).
 */
export async function trainingEngines(): Promise<TrainingEngine[]> {
  const engines: TrainingEngine[] = [];
  for (const backend of await trainingBackends()) {
    engines.push({ label: backend.name, backend, engine: 'eager' });
    if (backend.name !== 'tensorflow') continue;
    const compiled = compiledSetup(backend);
    if (!compiled.addon)
      throw new Error(`tensorflow is installed but the compiled engine is not: ${compiled.unavailable}`);
    engines.push({
      label: 'tensorflow compiled',
      backend,
      engine: 'compiled',
      select: selectRunner(compiled),
      compiled,
    });
  }
  return engines;
}
