/**
 * The gradient check (issue 17): every layer type and option of the job spec, every loss, and the
 * ops behind the kernels the project supplies, on every backend the machine has, and every model
 * case through the compiled engine's step graph (issue 13). See
 * test/helpers/gradcheck/ for how, and `npm run gradcheck` for the table.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { TF } from '../../trainer/backend.ts';
import { availableBackends, BACKEND_NAMES, type BackendAvailability } from '../helpers/available-backends.ts';
import { GRADIENT_CASES } from '../helpers/gradcheck/cases.ts';
import { describe as explain, runCase } from '../helpers/gradcheck/harness.ts';

/** GRADCHECK_SEED shifts every case's seed, to draw other shapes and values. */
const SEED = Number(process.env.GRADCHECK_SEED ?? 0);

describe('gradient check: tfjs analytic gradients against float64 finite differences', () => {
  let tf: TF;
  let backends: BackendAvailability[];
  let names: string[];
  before(async () => {
    ({ tf, backends } = await availableBackends());
    names = backends.filter((b) => b.available).map((b) => b.name);
  });

  const optional: Record<string, string> = {
    tensorflow: ' when tfjs-node loads',
    compiled: ' (the compiled engine) when its graph addon loads',
  };
  for (const name of BACKEND_NAMES) {
    it(`checks the ${name} backend${optional[name] ?? ''}`, (t) => {
      const b = backends.find((x) => x.name === name);
      if (b?.available) return;
      if (optional[name]) t.skip(`${name} not available: ${b?.reason}`);
      else assert.fail(`${name} did not start: ${b?.reason}`);
    });
  }

  for (const c of GRADIENT_CASES) {
    it(c.id, async () => {
      const result = await runCase(tf, c, names, SEED);
      assert.ok(
        result.results.every((r) => r.pass),
        `${c.id} (seed ${result.seed}):\n${explain(result)}`,
      );
    });
  }
});
