/**
 * `npm run bench:privacy [-- OPTIONS]`: what differential privacy costs, through descent's own
 * training path (trainer/fit.ts → engine.ts → private-step.ts). Not run by CI.
 *
 * 1. The privacy–utility table (`--table`): the iris example (150 real rows, 3 species) trained
 *    with the spec of docs/privacy.md's worked example (features standardised with ranges supplied
 *    in the spec, dense 16, Adam 0.01, batch 16, 60 epochs, 20% held out) at ε = 0.5, 1, 3, 8 and
 *    without privacy; held-out accuracy as mean ± standard deviation over `--runs` runs (each its
 *    own split seed and noise key), with the noise multiplier each target needed.
 * 2. The cost of a private step (`--cost`): milliseconds per step of ordinary training against
 *    private training (sampling, per-example gradients, clipping, noise, update), vectorised and
 *    microbatched, for a tabular MLP (8 → 64 → 3, batch 32), the MLP of bench:train (784 → 256 →
 *    128 → 10, batch 128) and a small CNN (conv 3×3×8 → maxpool → dense 10 on 28×28×1, batch 32,
 *    microbatches only), on each backend this machine has; on TensorFlow native also on the compiled
 *    engine (ordinary and private vectorised steps, each one TensorFlow graph run).
 *
 * Options: --table --cost (default both)  --runs N (default 10)  --backends wasm,tensorflow
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parseTable } from '../core/datasets/tabular.ts';
import { type JobSpec, resolvedJobSpec } from '../core/jobs/job-spec.ts';
import { prepareData } from '../core/training/dataset-prep.ts';
import { type SelectedBackend, selectBackend, type TF } from '../trainer/backend.ts';
import { compiledSetup, selectRunner } from '../trainer/compiled/select.ts';
import { type DataSet, type SelectRunner, train } from '../trainer/engine.ts';
import { fit } from '../trainer/fit.ts';
import { buildModel, outputFor } from '../trainer/model-builder.ts';
import type { PerExampleMethod } from '../trainer/private-step.ts';

const { values: opts } = parseArgs({
  options: {
    table: { type: 'boolean', default: false },
    cost: { type: 'boolean', default: false },
    runs: { type: 'string', default: '10' },
    backends: { type: 'string', default: 'wasm,tensorflow' },
  },
});
const both = !opts.table && !opts.cost;
const DATASET = '01M8JH2TQYPMBNJ50HMGRP3N6M';

/** The worked example's spec (docs/privacy.md), with `privacy` and the seed of one run. */
function irisSpec(seed: number, targetEpsilon?: number): JobSpec {
  return resolvedJobSpec.parse({
    name: 'iris-private',
    task: 'classification',
    dataset: { id: DATASET, label: 'species' },
    preprocessing: {
      scale: 'standardize',
      columns: {
        sepal_length: { range: [4, 8] },
        sepal_width: { range: [2, 4.5] },
        petal_length: { range: [1, 7] },
        petal_width: { range: [0, 2.5] },
      },
    },
    model: { layers: [{ type: 'dense', units: 16 }] },
    resources: { maxRuntimeSeconds: 3600 },
    training: {
      optimizer: { type: 'adam', learningRate: 0.01 },
      epochs: 60,
      batchSize: 16,
      seed,
      ...(targetEpsilon ? { privacy: { targetEpsilon } } : {}),
    },
  });
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const sd = (v: number[]) => Math.sqrt(mean(v.map((x) => (x - mean(v)) ** 2)));

async function privacyUtilityTable(tf: TF, backend: string): Promise<void> {
  const table = await parseTable(
    await readFile(new URL('../examples/iris/iris.csv', import.meta.url)),
    'csv',
  );
  const runs = Number(opts.runs);
  console.log(
    `\nprivacy–utility on iris (${backend}, ${runs} runs each, δ = 1e-5, 60 epochs of 8 steps, q = 16/120)\n`,
  );
  console.log('| target ε | noise multiplier σ | ε spent | held-out accuracy (mean ± sd) | min–max |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const target of [0.5, 1, 3, 8, undefined]) {
    const accuracies: number[] = [];
    let sigma = Number.NaN;
    let spent = Number.NaN;
    for (let run = 0; run < runs; run++) {
      const spec = irisSpec(1000 + run, target);
      const data = prepareData(table, spec);
      const key = new Uint8Array(32);
      new DataView(key.buffer).setUint32(0, 7919 * (run + 1));
      const result = await fit(tf, spec, data, {
        trainRows: data.trainRows,
        validationRows: data.validationRows,
        privacyKey: key,
      });
      accuracies.push(result.outcome.history.at(-1)?.valAccuracy as number);
      const p = result.outcome.privacy;
      if (p) {
        sigma = p.plan.noiseMultiplier;
        spent = p.plan.plannedEpsilon;
      }
      result.outcome.model.dispose();
      tf.dispose([
        result.train.x,
        result.train.y,
        ...(result.validation ? [result.validation.x, result.validation.y] : []),
      ]);
    }
    console.log(
      `| ${target ?? '∞ (no privacy)'} | ${Number.isNaN(sigma) ? '–' : sigma.toFixed(3)} | ${Number.isNaN(spent) ? '–' : spent.toFixed(3)} | ${mean(accuracies).toFixed(3)} ± ${sd(accuracies).toFixed(3)} | ${Math.min(...accuracies).toFixed(2)}–${Math.max(...accuracies).toFixed(2)} |`,
    );
  }
}

interface CostShape {
  name: string;
  rows: number;
  batch: number;
  inputShape: number[];
  layers: unknown[];
  classes: number;
  epochs: number;
  methods: PerExampleMethod[];
}
const COST_SHAPES: CostShape[] = [
  {
    name: 'tabular 8-64-3',
    rows: 1024,
    batch: 32,
    inputShape: [8],
    layers: [{ type: 'dense', units: 64 }],
    classes: 3,
    epochs: 3,
    methods: ['vectorized', 'microbatch'],
  },
  {
    name: 'mlp 784-256-128-10',
    rows: 1024,
    batch: 128,
    inputShape: [784],
    layers: [
      { type: 'dense', units: 256 },
      { type: 'dense', units: 128 },
    ],
    classes: 10,
    epochs: 4,
    methods: ['vectorized', 'microbatch'],
  },
  {
    name: 'cnn 28x28 conv8',
    rows: 128,
    batch: 32,
    inputShape: [28, 28, 1],
    layers: [
      { type: 'conv2d', filters: 8, kernelSize: 3 },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'flatten' },
    ],
    classes: 10,
    epochs: 3,
    methods: ['microbatch'],
  },
];

/** Seconds per step of one `train` call on synthetic data: the median epoch after the first (a warm-up). */
async function secondsPerStep(
  tf: TF,
  shape: CostShape,
  privacy: boolean,
  perExample?: PerExampleMethod,
  compiled?: SelectRunner,
): Promise<{ seconds: number; engine: string }> {
  const spec = resolvedJobSpec.parse({
    name: 'cost',
    task: 'classification',
    dataset: { id: DATASET, label: 'label' },
    model: { layers: shape.layers },
    resources: { maxRuntimeSeconds: 3600 },
    training: {
      epochs: shape.epochs,
      batchSize: shape.batch,
      seed: 1,
      validation: { type: 'none' },
      ...(privacy ? { privacy: { noiseMultiplier: 1 } } : {}),
    },
  });
  const set: DataSet = {
    x: tf.randomUniform([shape.rows, ...shape.inputShape], 0, 1, 'float32', 1),
    y: tf
      .oneHot(
        tf.tensor1d(
          Array.from({ length: shape.rows }, (_, i) => i % shape.classes),
          'int32',
        ),
        shape.classes,
      )
      .toFloat(),
  };
  const model = buildModel(tf, spec, shape.inputShape, outputFor(spec, shape.classes));
  const times: number[] = [];
  let last = performance.now();
  const outcome = await train(
    tf,
    {
      spec,
      model,
      classCount: shape.classes,
      ...(perExample ? { perExample } : {}),
      ...(compiled ? { selectRunner: compiled } : {}),
      hooks: {
        onEpoch: () => {
          const now = performance.now();
          times.push(now - last);
          last = now;
          return undefined;
        },
      },
    },
    set,
  );
  outcome.model.dispose();
  tf.dispose([set.x, set.y]);
  const steps = Math.ceil(shape.rows / shape.batch);
  const measured = (times.length > 1 ? times.slice(1) : times).sort((a, b) => a - b);
  return {
    seconds: (measured[Math.floor(measured.length / 2)] as number) / 1000 / steps,
    engine: outcome.engine,
  };
}

/** "ms (overhead×)" of a private step against the ordinary one; says so when another engine ran it. */
function costCell(s: { seconds: number; engine: string }, plain: number, engine: string): string {
  if (s.engine !== engine) return `n/a (ran ${s.engine})`;
  return `${(s.seconds * 1000).toFixed(2)} (${(s.seconds / plain).toFixed(1)}×)`;
}

async function stepCost(tf: TF, backend: SelectedBackend): Promise<void> {
  const setup = compiledSetup(backend);
  const compiled = setup.addon ? selectRunner(setup) : undefined;
  console.log(
    `\ncost of a private step (${backend.name}): ms per step, ordinary vs private (overhead × against the same engine's ordinary step)\n`,
  );
  console.log(
    '| model | batch | ordinary | private, vectorised | private, microbatches | ordinary, compiled | private, vectorised, compiled |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const shape of COST_SHAPES) {
    const plain = (await secondsPerStep(tf, shape, false)).seconds;
    const cells: string[] = [];
    for (const method of ['vectorized', 'microbatch'] as const) {
      if (!shape.methods.includes(method)) {
        cells.push('n/a (not a dense chain)');
        continue;
      }
      cells.push(costCell(await secondsPerStep(tf, shape, true, method), plain, 'eager'));
    }
    if (!compiled) cells.push(`n/a (${setup.unavailable})`, 'n/a');
    else {
      const fast = await secondsPerStep(tf, shape, false, undefined, compiled);
      cells.push(costCell(fast, fast.seconds, 'compiled'));
      cells.push(
        shape.methods.includes('vectorized')
          ? costCell(await secondsPerStep(tf, shape, true, undefined, compiled), fast.seconds, 'compiled')
          : 'n/a (microbatches run eager)',
      );
    }
    console.log(`| ${shape.name} | ${shape.batch} | ${(plain * 1000).toFixed(2)} | ${cells.join(' | ')} |`);
  }
}

const backends: SelectedBackend[] = [];
for (const name of opts.backends.split(',')) {
  try {
    backends.push(await selectBackend(name));
  } catch (error) {
    console.log(`${name}: not available here (${(error as Error).message.split('\n')[0]})`);
  }
}
for (const backend of backends) {
  const tf = backend.tf;
  await tf.setBackend(backend.name);
  if (both || opts.table) await privacyUtilityTable(tf, backend.name);
  if (both || opts.cost) await stepCost(tf, backend);
}
