/**
 * `npm run gradcheck`: runs the gradient check and the optimizer check on every backend the
 * machine has and prints the results as markdown tables (case × backend → max relative error).
 * Exits 1 when anything fails. GRADCHECK_SEED=n draws other shapes and values.
 */
import { availableBackends, tfjsBackendOf } from '../helpers/available-backends.ts';
import { GRADIENT_CASES } from '../helpers/gradcheck/cases.ts';
import { type CaseResult, describe, runCase } from '../helpers/gradcheck/harness.ts';
import { OPTIMIZER_CASES, type OptimizerResult, runOptimizerCase } from '../helpers/gradcheck/optimizers.ts';
import { footnotes, gradientTable, optimizerTable } from '../helpers/gradcheck/table.ts';

const seed = Number(process.env.GRADCHECK_SEED ?? 0);
const started = performance.now();
const { tf, backends } = await availableBackends();
const names = backends.filter((b) => b.available).map((b) => b.name);

const cases: CaseResult[] = [];
for (const c of GRADIENT_CASES) cases.push(await runCase(tf, c, names, seed));
const optimizers: OptimizerResult[] = [];
for (const backend of names) {
  await tf.setBackend(tfjsBackendOf(backend));
  for (const c of OPTIMIZER_CASES) optimizers.push(runOptimizerCase(tf, c, backend));
}
const seconds = (performance.now() - started) / 1000;

const failures = cases.filter((r) => r.results.some((x) => !x.pass));
const badOptimizers = optimizers.filter((r) => !r.pass);
console.log(`## Gradient check (seed ${seed}, ${GRADIENT_CASES.length} cases, ${seconds.toFixed(1)} s)\n`);
console.log(gradientTable(cases, backends));
console.log('\n## Optimizer updates against the reference\n');
console.log(optimizerTable(optimizers, backends));
console.log(`\n${footnotes(backends)}`);
for (const f of failures) console.error(`\nFAIL ${f.id} (seed ${f.seed}):\n${describe(f)}`);
for (const o of badOptimizers) console.error(`\nFAIL optimizer ${o.id} on ${o.backend}: error ${o.error}`);
process.exitCode = failures.length || badOptimizers.length ? 1 : 0;
