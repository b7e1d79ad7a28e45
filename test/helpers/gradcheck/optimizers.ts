/**
 * Each optimizer of trainer/engine.ts `buildOptimizer`, run for a few steps on fixed gradients
 * and compared with a float64 plain-JS reference of TensorFlow's update rules (the ApplyXxx
 * training ops; Keras documents the same):
 *
 *   sgd / gd   w ← w − lr·g
 *   momentum   a ← μ·a + g;   w ← w − lr·a   (Nesterov: w ← w − lr·(g + μ·a))
 *   adam       m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²;
 *              w ← w − lr·(m / (1 − β1^t)) / (√(v / (1 − β2^t)) + ε)
 *   adamax     m ← β1·m + (1 − β1)·g;  u ← max(β2·u, |g|);  w ← w − lr / (1 − β1^t) · m / (u + ε)
 *   rmsprop    ms ← ρ·ms + (1 − ρ)·g²;  (centered: mg ← ρ·mg + (1 − ρ)·g, ms − mg² in place of ms)
 *              mom ← μ·mom + lr·g / √(ms + ε);  w ← w − mom
 *   adagrad    acc ← acc + g² (from initialAccumulatorValue);  w ← w − lr·g / √acc
 *   adadelta   acc ← ρ·acc + (1 − ρ)·g²;  Δ ← √(accΔ + ε) / √(acc + ε) · g;
 *              accΔ ← ρ·accΔ + (1 − ρ)·Δ²;  w ← w − lr·Δ
 *
 * (tfjs adds its backend ε, 1e-7, under adagrad's root: 5e-7 of an update at most, well inside
 * the tolerance.) Tolerance, per element after `steps` steps:
 *     |w_tfjs − w_ref| ≤ 2^10·ε32·max|w_ref − w0| + steps·ε32·max|w|
 * the first term as for gradients (float32 arithmetic of the update), the second the float32
 * rounding of the weights themselves at each step.
 */
import type { Variable } from '@tensorflow/tfjs';
import type { z } from 'zod';
import { type OptimizerSpec, optimizer } from '../../../core/jobs/job-spec.ts';
import type { TF } from '../../../trainer/backend.ts';
import { DT, loadGraphAddon } from '../../../trainer/compiled/native.ts';
import { optimizerProbe } from '../../../trainer/compiled/probe.ts';
import { buildOptimizer } from '../../../trainer/engine.ts';
import { EPS32, TOLERANCE } from './finite-differences.ts';
import { draw, seedOf } from './harness.ts';

export type OptimizerInput = z.input<typeof optimizer>;

export interface OptimizerCase {
  id: string;
  spec: OptimizerInput;
  /** Gradient per step: seeded uniform in [−1, 1) (default), or one small gradient (±1e-3) every step. */
  gradients?: 'random' | 'steady';
  steps?: number;
}

/** Every optimizer, with each of its options away from the default at least once. */
export const OPTIMIZER_CASES: readonly OptimizerCase[] = [
  { id: 'gd', spec: { type: 'gd', learningRate: 0.1 } },
  { id: 'sgd', spec: { type: 'sgd', learningRate: 0.05 } },
  { id: 'momentum', spec: { type: 'momentum', learningRate: 0.05, momentum: 0.8 } },
  {
    id: 'momentum, nesterov',
    spec: { type: 'momentum', learningRate: 0.05, momentum: 0.7, useNesterov: true },
  },
  { id: 'adam (defaults)', spec: { type: 'adam' } },
  { id: 'adam', spec: { type: 'adam', learningRate: 0.01, beta1: 0.8, beta2: 0.95, epsilon: 1e-3 } },
  { id: 'adamax', spec: { type: 'adamax', learningRate: 0.02, beta1: 0.85, beta2: 0.9, epsilon: 1e-3 } },
  { id: 'rmsprop', spec: { type: 'rmsprop', learningRate: 0.01, rho: 0.8, epsilon: 1e-3 } },
  {
    id: 'rmsprop, momentum',
    spec: { type: 'rmsprop', learningRate: 0.01, rho: 0.8, momentum: 0.6, epsilon: 1e-3 },
  },
  {
    id: 'rmsprop, centered',
    spec: { type: 'rmsprop', learningRate: 0.01, rho: 0.8, epsilon: 1e-3, centered: true },
  },
  {
    id: 'rmsprop, centered, momentum',
    spec: { type: 'rmsprop', learningRate: 0.01, rho: 0.85, momentum: 0.5, epsilon: 1e-3, centered: true },
  },
  {
    id: 'rmsprop, centered, steady gradient',
    spec: { type: 'rmsprop', learningRate: 0.01, centered: true },
    gradients: 'steady',
    steps: 30,
  },
  { id: 'adagrad', spec: { type: 'adagrad', learningRate: 0.1, initialAccumulatorValue: 0.2 } },
  { id: 'adadelta (defaults)', spec: { type: 'adadelta' } },
  { id: 'adadelta', spec: { type: 'adadelta', learningRate: 0.5, rho: 0.9, epsilon: 1e-4 } },
];

type State = Record<string, Float64Array>;
let variables = 0;

/** One step of the reference update, in place. `t` counts from 1. */
export function referenceStep(o: OptimizerSpec, w: Float64Array, g: Float64Array, s: State, t: number): void {
  const slot = (name: string, init = 0) => {
    s[name] ??= new Float64Array(w.length).fill(init);
    return s[name];
  };
  for (let i = 0; i < w.length; i++) {
    const gi = g[i] as number;
    switch (o.type) {
      case 'gd':
      case 'sgd':
        w[i] = (w[i] as number) - o.learningRate * gi;
        break;
      case 'momentum': {
        const a = slot('a');
        a[i] = o.momentum * (a[i] as number) + gi;
        w[i] =
          (w[i] as number) -
          o.learningRate * (o.useNesterov ? gi + o.momentum * (a[i] as number) : (a[i] as number));
        break;
      }
      case 'adam': {
        const m = slot('m');
        const v = slot('v');
        m[i] = o.beta1 * (m[i] as number) + (1 - o.beta1) * gi;
        v[i] = o.beta2 * (v[i] as number) + (1 - o.beta2) * gi * gi;
        const mHat = (m[i] as number) / (1 - o.beta1 ** t);
        const vHat = (v[i] as number) / (1 - o.beta2 ** t);
        w[i] = (w[i] as number) - (o.learningRate * mHat) / (Math.sqrt(vHat) + o.epsilon);
        break;
      }
      case 'adamax': {
        const m = slot('m');
        const u = slot('u');
        m[i] = o.beta1 * (m[i] as number) + (1 - o.beta1) * gi;
        u[i] = Math.max(o.beta2 * (u[i] as number), Math.abs(gi));
        w[i] =
          (w[i] as number) -
          (o.learningRate / (1 - o.beta1 ** t)) * ((m[i] as number) / ((u[i] as number) + o.epsilon));
        break;
      }
      case 'rmsprop': {
        const ms = slot('ms');
        const mg = slot('mg');
        const mom = slot('mom');
        ms[i] = o.rho * (ms[i] as number) + (1 - o.rho) * gi * gi;
        mg[i] = o.rho * (mg[i] as number) + (1 - o.rho) * gi;
        const second = o.centered ? (ms[i] as number) - (mg[i] as number) ** 2 : (ms[i] as number);
        mom[i] = o.momentum * (mom[i] as number) + (o.learningRate * gi) / Math.sqrt(second + o.epsilon);
        w[i] = (w[i] as number) - (mom[i] as number);
        break;
      }
      case 'adagrad': {
        const acc = slot('acc', o.initialAccumulatorValue);
        acc[i] = (acc[i] as number) + gi * gi;
        w[i] = (w[i] as number) - (o.learningRate * gi) / Math.sqrt(acc[i] as number);
        break;
      }
      case 'adadelta': {
        const acc = slot('acc');
        const accDelta = slot('accDelta');
        acc[i] = o.rho * (acc[i] as number) + (1 - o.rho) * gi * gi;
        const delta =
          (Math.sqrt((accDelta[i] as number) + o.epsilon) / Math.sqrt((acc[i] as number) + o.epsilon)) * gi;
        accDelta[i] = o.rho * (accDelta[i] as number) + (1 - o.rho) * delta * delta;
        w[i] = (w[i] as number) - o.learningRate * delta;
        break;
      }
    }
  }
}

export interface OptimizerResult {
  id: string;
  backend: string;
  /** max |w_tfjs − w_ref| / max |w_ref − w0|. */
  error: number;
  pass: boolean;
  /** The tfjs weights hold NaN. */
  nan: boolean;
}

/**
 * Runs a case on the current backend (`compiled`: through the compiled engine's update ops). `make`
 * builds the tfjs optimizer (default: the trainer's buildOptimizer), so that a test can run a stock
 * tfjs optimizer through the same check.
 */
export function runOptimizerCase(
  tf: TF,
  c: OptimizerCase,
  backend: string,
  make: (spec: OptimizerSpec) => ReturnType<typeof buildOptimizer> = (spec) => buildOptimizer(tf, spec),
): OptimizerResult {
  const spec = optimizer.parse(c.spec);
  const d = draw(seedOf(`optimizer/${c.id}`));
  const steps = c.steps ?? 5;
  const shapes = [[3, 4], [4]];
  const w0 = shapes.map((s) =>
    Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => Math.fround(d.uniform(-1, 1))),
  );
  const steady = w0.map((w) => Float32Array.from(w, () => Math.fround(1e-3 * d.uniform(-1, 1))));
  const grads = Array.from({ length: steps }, () =>
    w0.map((w, k) =>
      c.gradients === 'steady'
        ? (steady[k] as Float32Array)
        : Float32Array.from(w, () => Math.fround(d.uniform(-1, 1))),
    ),
  );
  // Reference.
  const ref = w0.map((w) => Float64Array.from(w));
  const states: State[] = w0.map(() => ({}));
  grads.forEach((step, t) => {
    step.forEach((g, k) => {
      referenceStep(spec, ref[k] as Float64Array, Float64Array.from(g), states[k] as State, t + 1);
    });
  });
  const got =
    backend === 'compiled'
      ? compiledWeights(spec, w0, shapes, grads)
      : tfjsWeights(tf, make(spec), w0, shapes, grads);
  let moved = 0;
  let weight = 0;
  let diff = 0;
  let nan = false;
  ref.forEach((r, k) => {
    r.forEach((v, i) => {
      const a = (got[k] as Float32Array)[i] as number;
      if (Number.isNaN(a)) nan = true;
      moved = Math.max(moved, Math.abs(v - ((w0[k] as Float32Array)[i] as number)));
      weight = Math.max(weight, Math.abs(v));
      diff = Math.max(diff, Number.isNaN(a) ? Number.POSITIVE_INFINITY : Math.abs(a - v));
    });
  });
  const allowed = TOLERANCE * moved + steps * EPS32 * weight;
  return { id: c.id, backend, error: diff / Math.max(moved, 1e-30), pass: !nan && diff <= allowed, nan };
}

/** The weights after tfjs's optimizer `o` applied each step's gradients. */
function tfjsWeights(
  tf: TF,
  o: ReturnType<typeof buildOptimizer>,
  w0: Float32Array[],
  shapes: number[][],
  grads: Float32Array[][],
): Float32Array[] {
  const vars = w0.map((w, k) =>
    tf.variable(tf.tensor(w, shapes[k]), true, `optimizer_check_${++variables}_${k}`),
  );
  try {
    for (const step of grads) {
      const named = tf.tidy(() =>
        Object.fromEntries(step.map((g, k) => [(vars[k] as Variable).name, tf.tensor(g, shapes[k])])),
      );
      o.applyGradients(named);
      tf.dispose(Object.values(named));
    }
    return vars.map((v) => v.dataSync() as Float32Array);
  } finally {
    o.dispose();
    tf.dispose(vars);
  }
}

/** The same through the compiled engine's update ops (trainer/compiled/optimizers.ts). */
function compiledWeights(
  spec: OptimizerSpec,
  w0: Float32Array[],
  shapes: number[][],
  grads: Float32Array[][],
): Float32Array[] {
  const { addon, error } = loadGraphAddon();
  if (!addon) throw new Error(error);
  const value = (data: Float32Array, k: number) => ({
    dtype: DT.float32,
    shape: shapes[k] as number[],
    data,
  });
  const out = optimizerProbe(
    addon,
    spec,
    w0.map(value),
    grads.map((step) => step.map(value)),
  );
  return out.map((t) => t.data as Float32Array);
}
