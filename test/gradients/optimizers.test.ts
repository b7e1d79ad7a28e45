/** Each optimizer the job spec offers, as the trainer builds it, against a float64 reference of its update. */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { TF } from '../../trainer/backend.ts';
import { availableBackends, tfjsBackendOf } from '../helpers/available-backends.ts';
import { OPTIMIZER_CASES, runOptimizerCase } from '../helpers/gradcheck/optimizers.ts';

describe('optimizer updates match the reference for a few steps', () => {
  let tf: TF;
  let names: string[];
  before(async () => {
    const found = await availableBackends();
    tf = found.tf;
    names = found.backends.filter((b) => b.available).map((b) => b.name);
  });

  for (const c of OPTIMIZER_CASES) {
    it(c.id, async () => {
      for (const backend of names) {
        assert.ok(await tf.setBackend(tfjsBackendOf(backend)));
        const r = runOptimizerCase(tf, c, backend);
        assert.ok(
          r.pass,
          `${c.id} on ${backend}: error ${r.error.toExponential(2)}${r.nan ? ' (NaN weights)' : ''}`,
        );
      }
    });
  }
});
