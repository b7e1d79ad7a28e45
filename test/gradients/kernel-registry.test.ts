/**
 * Every kernel, gradient and layer method the project gives TensorFlow.js is declared in
 * trainer/kernel-registry.ts with gradient-check cases that really run it. Found by diffing what
 * tfjs has registered before and after the backends start the way the trainer starts them.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { SUPPLIED_KERNELS, type SuppliedKernel } from '../../trainer/kernel-registry.ts';
import { availableBackends } from '../helpers/available-backends.ts';
import { GRADIENT_CASES } from '../helpers/gradcheck/cases.ts';
import { runCase } from '../helpers/gradcheck/harness.ts';

const BACKENDS = ['cpu', 'wasm', 'tensorflow'];

interface Snapshot {
  kernels: Map<string, unknown>;
  gradients: Map<string, unknown>;
  layers: Map<string, unknown>;
}

/** kernel@backend → its function; kernel → its gradient function; Class.method → its own value. */
function snapshot(): Snapshot {
  const kernels = new Map<string, unknown>();
  for (const backend of BACKENDS) {
    for (const k of tf.getKernelsForBackend(backend)) kernels.set(`${k.kernelName}@${backend}`, k.kernelFunc);
  }
  const gradients = new Map<string, unknown>();
  const names = new Set([...kernels.keys()].map((k) => k.slice(0, k.lastIndexOf('@'))));
  for (const name of names) gradients.set(name, tf.getGradient(name)?.gradFunc);
  const layers = new Map<string, unknown>();
  for (const [className, entry] of Object.entries(tf.serialization.SerializationMap.getMap().classNameMap)) {
    const proto = (entry[0] as unknown as { prototype?: object }).prototype;
    if (!proto) continue;
    for (const key of Object.getOwnPropertyNames(proto)) {
      const d = Object.getOwnPropertyDescriptor(proto, key);
      layers.set(`${className}.${key}`, d?.value ?? d?.get);
    }
  }
  return { kernels, gradients, layers };
}

const changed = (before: Map<string, unknown>, after: Map<string, unknown>) =>
  [...after].filter(([k, v]) => before.get(k) !== v).map(([k]) => k);

describe('kernel registry: what the project registers with tfjs has gradient-check cases', () => {
  let diff: { kernels: string[]; gradients: string[]; layers: string[]; methods: string[] };
  let available: string[];
  before(async () => {
    // tfjs-node registers its kernels when imported: take them in the "before" picture too.
    await import('@tensorflow/tfjs-node' as string).catch(() => undefined);
    const stock = snapshot();
    const found = await availableBackends(); // starts every backend through trainer/backend.ts
    available = found.backends.filter((b) => b.available).map((b) => b.name);
    const now = snapshot();
    const methods = changed(stock.layers, now.layers);
    diff = {
      kernels: changed(stock.kernels, now.kernels),
      gradients: changed(stock.gradients, now.gradients),
      layers: methods.map((k) => k.slice(0, k.indexOf('.'))),
      methods,
    };
  });

  const declared = (kind: SuppliedKernel['kind'], name: string, backend?: string) =>
    SUPPLIED_KERNELS.some(
      (k) => k.kind === kind && k.name === name && (!backend || k.backends.includes(backend)),
    );

  it('every kernel the project registers or replaces is declared, for that backend', () => {
    assert.ok(diff.kernels.length > 0, 'the project registers kernels at backend start');
    const undeclared = diff.kernels.filter((key) => {
      const at = key.lastIndexOf('@');
      return !declared('kernel', key.slice(0, at), key.slice(at + 1));
    });
    assert.deepEqual(undeclared, [], 'kernels registered without a kernel-registry.ts entry');
  });

  it('every gradient function and layer method the project replaces is declared', () => {
    assert.deepEqual(
      diff.gradients.filter((name) => !declared('gradient', name)),
      [],
      'gradients replaced without an entry',
    );
    assert.deepEqual(
      [...new Set(diff.layers)].filter((name) => !declared('layer', name)),
      [],
      'layer methods replaced without an entry',
    );
  });

  it('every declared entry is really registered at backend start (no stale entries)', () => {
    for (const k of SUPPLIED_KERNELS) {
      if (k.kind === 'path') continue; // registers nothing with tfjs: its cases run it (below)
      if (k.kind === 'kernel') {
        for (const b of k.backends.filter((x) => available.includes(x))) {
          assert.ok(
            diff.kernels.includes(`${k.name}@${b}`),
            `${k.name} is declared for ${b} but not registered`,
          );
        }
      } else {
        const list = k.kind === 'gradient' ? diff.gradients : diff.layers;
        assert.ok(list.includes(k.name), `${k.kind} ${k.name} is declared but not replaced`);
      }
    }
  });

  it('every entry names gradient-check cases that exist', () => {
    const ids = new Set(GRADIENT_CASES.map((c) => c.id));
    for (const k of SUPPLIED_KERNELS) {
      assert.ok(k.checkedBy.length > 0, `${k.kind} ${k.name} has no gradient-check case`);
      for (const id of k.checkedBy) assert.ok(ids.has(id), `${k.kind} ${k.name}: no case "${id}"`);
    }
  });

  for (const k of SUPPLIED_KERNELS.filter((x) => x.kind === 'path')) {
    it(`path ${k.name}: its cases run on it, and pass (where ${k.backends.join(', ')} runs)`, async (t) => {
      if (!available.includes(k.name)) {
        t.skip(`${k.name} is not available here: run \`npm run setup:native\``);
        return;
      }
      for (const id of k.checkedBy) {
        const c = GRADIENT_CASES.find((x) => x.id === id);
        assert.ok(c);
        const result = await runCase(tf, c, [k.name]);
        const mine = result.results.find((r) => r.backend === k.name);
        assert.ok(mine, `case "${id}" does not run on ${k.name}`);
        assert.ok(mine.pass, `case "${id}" fails on ${k.name}: ${mine.failure ?? mine.error}`);
      }
    });
  }

  for (const k of SUPPLIED_KERNELS.filter((x) => x.kind !== 'path')) {
    it(`${k.kind} ${k.name}: its cases run it, and pass, on ${k.kind === 'kernel' ? k.backends.join(', ') : 'every backend'}`, async () => {
      const backends = (
        k.kind === 'kernel' ? k.backends.filter((b) => available.includes(b)) : available
      ).filter((b) => b !== 'compiled');
      for (const backend of backends) {
        for (const id of k.checkedBy) {
          const c = GRADIENT_CASES.find((x) => x.id === id);
          assert.ok(c);
          const methods = diff.methods
            .filter((m) => m.startsWith(`${k.name}.`))
            .map((m) => m.slice(k.name.length + 1));
          const { calls, result } = await counting(k, backend, methods, () => runCase(tf, c, [backend]));
          assert.ok(calls > 0, `case "${id}" never runs ${k.kind} ${k.name} on ${backend}`);
          assert.ok(
            result.results.every((r) => r.pass),
            `case "${id}" fails on ${backend}`,
          );
        }
      }
    });
  }
});

/** Runs `f` with the supplied kernel (gradient, layer method) wrapped to count its calls. */
async function counting<T>(k: SuppliedKernel, backend: string, methods: string[], f: () => Promise<T>) {
  let calls = 0;
  let restore: () => void;
  if (k.kind === 'kernel') {
    const config = tf.getKernel(k.name, backend);
    assert.ok(config, `${k.name} not registered for ${backend}`);
    tf.unregisterKernel(k.name, backend);
    tf.registerKernel({
      ...config,
      kernelFunc: (args) => {
        calls++;
        return config.kernelFunc(args);
      },
    });
    restore = () => {
      tf.unregisterKernel(k.name, backend);
      tf.registerKernel(config);
    };
  } else if (k.kind === 'gradient') {
    const config = tf.getGradient(k.name);
    tf.registerGradient({
      ...config,
      gradFunc: (...args) => {
        calls++;
        return config.gradFunc(...args);
      },
    });
    restore = () => tf.registerGradient(config);
  } else {
    const entry = tf.serialization.SerializationMap.getMap().classNameMap[k.name];
    assert.ok(entry, `no layer class ${k.name}`);
    const proto = (entry[0] as unknown as { prototype: Record<string, unknown> }).prototype;
    const saved = methods.map((m) => [m, proto[m]] as const);
    for (const [m, fn] of saved) {
      proto[m] = function (this: unknown, ...args: unknown[]) {
        calls++;
        return (fn as (...a: unknown[]) => unknown).apply(this, args);
      };
    }
    restore = () => {
      for (const [m, fn] of saved) proto[m] = fn;
    };
  }
  try {
    const result = await f();
    return { calls, result };
  } finally {
    restore();
  }
}
