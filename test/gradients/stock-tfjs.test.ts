/**
 * What the project replaces is wrong in stock TensorFlow.js 4.22 — the gradient check fails it —
 * and the replacement passes the same check: so the check can see these bugs, and the fixes are
 * what makes it pass.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Tensor4D } from '@tensorflow/tfjs';
import type { OptimizerSpec } from '../../core/jobs/job-spec.ts';
import type { TF } from '../../trainer/backend.ts';
import { registerGradientFixes, restoreStockGradients } from '../../trainer/gradient-fixes.ts';
import { SUPPLIED_KERNELS } from '../../trainer/kernel-registry.ts';
import { availableBackends } from '../helpers/available-backends.ts';
import { GRADIENT_CASES } from '../helpers/gradcheck/cases.ts';
import { centralDifferences } from '../helpers/gradcheck/finite-differences.ts';
import { runCase } from '../helpers/gradcheck/harness.ts';
import { OPTIMIZER_CASES, runOptimizerCase } from '../helpers/gradcheck/optimizers.ts';
import { arr, pool2d } from '../helpers/gradcheck/reference.ts';

const STOCK_AND_FIXED = ['cpu', 'wasm'];
const FIXES = SUPPLIED_KERNELS.filter((k) => k.module === 'trainer/gradient-fixes.ts');

describe('stock tfjs fails the gradient check where the project supplies a fix', () => {
  let tf: TF;
  before(async () => {
    ({ tf } = await availableBackends());
  });
  after(() => {
    registerGradientFixes(tf);
  });

  it('average pooling, same padding, 3×3 input, pool 2, stride 1: stock divides the border by 4', async () => {
    // d(Σ outputs)/dx: each output divides by the cells its window covers (4, 2 or 1 here).
    const x = arr([1, 3, 3, 1], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const sum = () => pool2d(x, 'avg', [2, 2], [1, 1], 'same').data.reduce((a, b) => a + b, 0);
    const truth = Array.from(centralDifferences(sum, x.data).grad, (v) => Math.round(v * 1e6) / 1e6);
    assert.deepEqual(truth, [0.25, 0.5, 0.75, 0.5, 1, 1.5, 0.75, 1.5, 2.25]);
    const gradient = () =>
      tf.tidy(() =>
        Array.from(
          tf
            .grad((t) => tf.sum(tf.avgPool(t as Tensor4D, 2, 1, 'same')))(
              tf.tensor4d(Float32Array.from(x.data), [1, 3, 3, 1]),
            )
            .dataSync(),
        ),
      );
    for (const backend of STOCK_AND_FIXED) {
      assert.ok(await tf.setBackend(backend));
      restoreStockGradients(tf);
      assert.deepEqual(gradient(), [0.25, 0.5, 0.5, 0.5, 1, 1, 0.5, 1, 1], `stock ${backend}`);
      registerGradientFixes(tf);
      assert.deepEqual(gradient(), truth, `fixed ${backend}`);
    }
  });

  for (const fix of FIXES) {
    it(`${fix.kind} ${fix.name}: its cases fail on stock tfjs and pass with the fix`, async () => {
      const backends =
        fix.kind === 'kernel' ? fix.backends.filter((b) => STOCK_AND_FIXED.includes(b)) : STOCK_AND_FIXED;
      const keys =
        fix.kind === 'kernel' ? fix.backends.map((b) => `${fix.name}@${b}`) : [`${fix.kind}:${fix.name}`];
      for (const id of fix.checkedBy) {
        const c = GRADIENT_CASES.find((x) => x.id === id);
        assert.ok(c, id);
        // Only this fix undone: each one is needed on its own.
        restoreStockGradients(tf, (key) => keys.includes(key));
        const stock = await runCase(tf, c, backends);
        registerGradientFixes(tf);
        const fixed = await runCase(tf, c, backends);
        for (const r of stock.results) assert.ok(!r.pass, `${id} passes on stock ${r.backend}`);
        for (const r of fixed.results) assert.ok(r.pass, `${id} fails with the fix on ${r.backend}`);
      }
    });
  }

  it('stock adadelta and centered rmsprop fail the optimizer check; the trainer’s pass', async () => {
    const stock = (spec: OptimizerSpec) => {
      if (spec.type === 'adadelta') return tf.train.adadelta(spec.learningRate, spec.rho, spec.epsilon);
      if (spec.type === 'rmsprop')
        return tf.train.rmsprop(spec.learningRate, spec.rho, spec.momentum, spec.epsilon, spec.centered);
      throw new Error(`no stock variant wanted for ${spec.type}`);
    };
    const affected = OPTIMIZER_CASES.filter(
      (c) => c.spec.type === 'adadelta' || (c.spec.type === 'rmsprop' && c.spec.centered),
    );
    assert.ok(affected.length >= 4);
    for (const backend of STOCK_AND_FIXED) {
      assert.ok(await tf.setBackend(backend));
      for (const c of affected) {
        const r = runOptimizerCase(tf, c, backend, stock);
        assert.ok(!r.pass, `stock ${c.id} passes on ${backend}`);
        if (c.gradients === 'steady')
          assert.ok(r.nan, 'stock centered rmsprop: a steady small gradient gives NaN');
        assert.ok(runOptimizerCase(tf, c, backend).pass, `${c.id} fails on ${backend}`);
      }
    }
  });
});
