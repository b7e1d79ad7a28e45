/**
 * `npm run bench:train [-- OPTIONS]`: training throughput of three shapes through descent's own
 * training path (trainer/model-builder.ts + trainer/engine.ts `train`, the loop every job runs:
 * seeded permutation, gathered batches, Adam, side metrics), on each engine and backend this machine
 * has, and the same shapes in PyTorch 2 and Keras 3 in the same run (bench/anchors.ts installs them
 * once into a venv in the cache), at 1 and 2 threads.
 *
 *   mlp   784-256-128-10 (relu), Adam, batch 128
 *   cnn   conv3x3×16 → maxpool 2 → conv3x3×32 → dense 10 on 28×28×1 (relu), Adam, batch 64
 *   lstm  LSTM(64) on 50 steps of 16 features → dense 10, Adam, batch 64
 *
 * Ours: `wasm-eager` (one thread), `tf-eager-Nt` (tfjs-node op by op, TensorFlow's threads as the
 * trainer sets them), `tf-compiled-1t` / `-2t` (trainer/compiled/: the whole step as one TensorFlow
 * graph, the session's intra-op threads; a fused LSTM on descent's own kernel), and on request
 * `tf-compiled-block-1t` / `-2t` (the same with TensorFlow's `BlockLSTMV2`, the kernel used on a GPU).
 * Anchors: `torch-1t/2t`, `keras-1t/2t` (`fit`).
 *
 * Synthetic data of the right shapes (10 classes). One window = one epoch of `steps` batches; the
 * first is a warm-up, the figure is the median of the others over all rounds (rounds alternate the
 * anchors and ours, so that a change in the machine's load hits both). FLOPs per sample are analytic
 * (a multiply-add = 2; training ≈ 3 × forward), against an fp32 peak of `--peak` GFLOP/s (333: this
 * machine's 2 cores of an AMD EPYC of family 26 (Zen 5) at 2.6 GHz, two 512-bit FMAs per cycle = 64
 * FLOP/cycle; its boost clock can take a figure past it). Each line ends in `ratio=` (its samples/s over the
 * best anchor's); per shape a `best` line gives descent's best over the best anchor. Not run by CI.
 *
 * Options: --shapes mlp,cnn,lstm  --systems (default: all; e.g. tf-compiled-2t,keras-1t)
 *          --backends wasm,tensorflow[,cpu]  --windows N (default 5)  --rounds N (default 2)
 *          --steps N (batches per window; default per shape)  --cpu-steps N  --no-anchors
 *          --profile (per-kernel time of a few wasm steps per shape, and per-op time of traced
 *          compiled steps: TensorFlow's step stats)
 *          --stock (also wasm with tfjs's stock kernels instead of trainer/wasm-fast-kernels.ts)
 */
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { Tensor } from '@tensorflow/tfjs';
import { resolvedJobSpec } from '../core/jobs/job-spec.ts';
import { type SelectedBackend, selectBackend, type TF } from '../trainer/backend.ts';
import { CompiledProgram } from '../trainer/compiled/program.ts';
import { tensorValue } from '../trainer/compiled/runner.ts';
import { compiledSetup, selectRunner, towersFor } from '../trainer/compiled/select.ts';
import { stepStats } from '../trainer/compiled/step-stats.ts';
import { type SelectRunner, train } from '../trainer/engine.ts';
import { buildModel, outputFor } from '../trainer/model-builder.ts';
import { registerFastWasmKernels, restoreStockWasmKernels } from '../trainer/wasm-fast-kernels.ts';
import { type AnchorPython, anchorPython, runAnchor } from './anchors.ts';

const { values: opts } = parseArgs({
  options: {
    shapes: { type: 'string', default: 'mlp,cnn,lstm' },
    backends: { type: 'string', default: 'wasm,tensorflow' },
    systems: { type: 'string' },
    'no-anchors': { type: 'boolean', default: false },
    windows: { type: 'string', default: '5' },
    steps: { type: 'string' },
    'cpu-steps': { type: 'string' },
    peak: { type: 'string', default: '333' },
    profile: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '2' },
    stock: { type: 'boolean', default: false },
  },
});

interface Shape {
  name: string;
  batch: number;
  inputShape: number[];
  layers: unknown[];
  /** Forward FLOPs per sample. */
  forwardFlops: number;
  /** Batches per window on fast backends and on the cpu backend. */
  steps: number;
  cpuSteps: number;
}

const conv = (oh: number, ow: number, k: number, cin: number, cout: number) =>
  2 * oh * ow * k * k * cin * cout;
const SHAPES: Shape[] = [
  {
    name: 'mlp',
    batch: 128,
    inputShape: [784],
    layers: [
      { type: 'dense', units: 256 },
      { type: 'dense', units: 128 },
    ],
    forwardFlops: 2 * (784 * 256 + 256 * 128 + 128 * 10),
    steps: 40,
    cpuSteps: 8,
  },
  {
    name: 'cnn',
    batch: 64,
    inputShape: [28, 28, 1],
    layers: [
      { type: 'conv2d', filters: 16, kernelSize: 3 },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'conv2d', filters: 32, kernelSize: 3 },
    ],
    forwardFlops: conv(26, 26, 3, 1, 16) + conv(11, 11, 3, 16, 32) + 2 * 11 * 11 * 32 * 10,
    steps: 40,
    cpuSteps: 2,
  },
  {
    name: 'lstm',
    batch: 64,
    inputShape: [50, 16],
    layers: [{ type: 'lstm', units: 64 }],
    forwardFlops: 50 * 4 * 2 * (16 + 64) * 64 + 2 * 64 * 10,
    steps: 10,
    cpuSteps: 2,
  },
];

const windows = Math.max(2, Number(opts.windows));
const peak = Number(opts.peak);
const shapes = (opts.shapes as string).split(',').map((name) => {
  const shape = SHAPES.find((s) => s.name === name);
  if (!shape) throw new Error(`unknown shape ${name}: use ${SHAPES.map((s) => s.name).join(', ')}`);
  return shape;
});

/** Seeded synthetic rows: inputs uniform in [0, 1), 10 classes. */
function dataFor(tf: TF, shape: Shape, n: number) {
  return tf.tidy(() => {
    const x = tf.randomUniform([n, ...shape.inputShape], 0, 1, 'float32', 7);
    const classes = tf.randomUniform([n], 0, 10, 'int32', 8);
    return { x, y: tf.oneHot(classes, 10).toFloat(), labels: classes.toFloat() };
  });
}

function specFor(shape: Shape, epochs: number) {
  return resolvedJobSpec.parse({
    name: `bench-${shape.name}`,
    task: 'classification',
    dataset: { id: '01M8JH2TQYPMBNJ50HMGRP3N6M', label: 'label' },
    resources: { maxRuntimeSeconds: 3600 },
    model: { layers: shape.layers },
    training: {
      optimizer: { type: 'adam', learningRate: 0.001 },
      batchSize: shape.batch,
      epochs,
      seed: 1,
      validation: { type: 'none' },
    },
  });
}

/** samples/s of each window (the warm-up window excluded), through the engine's `train`. */
async function measure(
  tf: TF,
  shape: Shape,
  steps: number,
  count: number,
  select?: SelectRunner,
): Promise<number[]> {
  const n = shape.batch * steps;
  const spec = specFor(shape, count + 1);
  const data = dataFor(tf, shape, n);
  const model = buildModel(tf, spec, shape.inputShape, outputFor(spec, 10));
  const marks: number[] = [];
  try {
    await train(
      tf,
      {
        spec,
        model,
        classCount: 10,
        ...(select ? { selectRunner: select } : {}),
        hooks: {
          onEpoch: () => {
            marks.push(performance.now());
            return undefined;
          },
        },
      },
      data,
    );
  } finally {
    model.dispose();
    tf.dispose([data.x, data.y, data.labels] as Tensor[]);
  }
  return marks.slice(1).map((t, i) => (n * 1000) / (t - (marks[i] as number)));
}

/** Per-kernel time of a few training steps (tf.profile; kernels run by supplied kernels count twice). */
async function profile(tf: TF, shape: Shape): Promise<void> {
  await measure(tf, shape, 2, 1); // operators created, weights allocated
  const started = performance.now();
  const info = await tf.profile(() => measure(tf, shape, 10, 1));
  const wall = performance.now() - started;
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
    const entry = byKernel.get(key) ?? { ms: 0, calls: 0 };
    entry.ms += k.kernelTimeMs as number;
    entry.calls++;
    byKernel.set(key, entry);
  }
  const total = [...byKernel.values()].reduce((s, e) => s + e.ms, 0);
  console.log(
    `\nprofile ${shape.name} on ${tf.getBackend()}: 20 steps (2 epochs of 10, after a warm-up), wall ${wall.toFixed(0)} ms, in kernels ${total.toFixed(0)} ms, ${info.kernels.length} kernel calls`,
  );
  const top = [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15);
  for (const [key, e] of top) {
    console.log(
      `  ${e.ms.toFixed(1).padStart(8)} ms ${((100 * e.ms) / total).toFixed(1).padStart(5)}%  ${String(e.calls).padStart(5)}×  ${key}`,
    );
  }
}

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const fmt = (v: number) => Math.round(v).toLocaleString('en');
const THREADS = [1, 2] as const;

/** One table line: a system's median samples/s, its spread, GFLOP/s and ratio to the best anchor. */
function line(
  shape: Shape,
  system: string,
  rates: number[],
  bestAnchor: number | undefined,
  note = '',
): string {
  const rate = median(rates);
  const gflops = (rate * 3 * shape.forwardFlops) / 1e9;
  const spread = `${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))}`;
  const ratio = bestAnchor ? (rate / bestAnchor).toFixed(2) : 'n/a';
  return `${shape.name.padEnd(5)} ${system.padEnd(15)} ${fmt(rate).padStart(7)} samples/s (${spread.padEnd(15)}) ${gflops.toFixed(2).padStart(6)} GFLOP/s ${((100 * gflops) / peak).toFixed(1).padStart(5)}% of peak  ratio=${ratio}${note ? `  [${note}]` : ''}`;
}

const wanted = (system: string) => !opts.systems || (opts.systems as string).split(',').includes(system);

// Backends: each one selected the way a worker selects it; a missing one is reported and skipped.
const backends: SelectedBackend[] = [];
for (const name of (opts.backends as string).split(',')) {
  try {
    backends.push(await selectBackend(name));
  } catch (error) {
    console.log(`backend ${name}: unavailable (${String((error as Error).message).slice(0, 300)})`);
  }
}
const native = backends.find((b) => b.tensorflow);
const compiled = native ? compiledSetup(native) : undefined;
if (native?.tensorflow)
  console.log(
    `backend tensorflow: TensorFlow ${native.tensorflow.version} via ${native.package} on ${native.device}, ${native.tensorflow.intraOpThreads} intra-op / ${native.tensorflow.interOpThreads} inter-op threads (TF_ENABLE_ONEDNN_OPTS=${process.env.TF_ENABLE_ONEDNN_OPTS}); compiled engine: ${compiled?.addon ? `graph addon on TensorFlow ${compiled.addon.version()}` : `unavailable (${compiled?.unavailable})`}`,
  );
const python: AnchorPython | undefined = opts['no-anchors']
  ? undefined
  : await anchorPython((l) => console.log(l));
if (!opts['no-anchors'])
  console.log(
    python
      ? `anchors: ${python.torch ? `PyTorch ${python.torch}` : 'no PyTorch'}, ${python.keras ? `Keras ${python.keras} on TensorFlow ${python.tensorflow}` : 'no Keras'} (${python.note})`
      : 'anchors: none (no Python with torch or keras; see bench/anchors.ts)',
  );
const rounds = Math.max(1, Number(opts.rounds));
console.log(
  `Node ${process.version}, tfjs ${(await import('@tensorflow/tfjs')).version.tfjs}; ${rounds} round(s) of ${windows} windows after a warm-up, median of all; peak ${peak} GFLOP/s; ${availableParallelism()} CPUs, load average ${loadavg()[0]?.toFixed(1)} at start`,
);

/** Our systems for a backend: its eager engine, and the compiled one at 1 and 2 threads on TensorFlow. */
function ours(backend: SelectedBackend): { system: string; select?: SelectRunner }[] {
  if (!backend.tensorflow) return [{ system: `${backend.name}-eager` }];
  const list: { system: string; select?: SelectRunner }[] = [
    { system: `tf-eager-${backend.tensorflow.intraOpThreads}t` },
  ];
  if (compiled?.addon) {
    for (const t of THREADS)
      list.push({
        system: `tf-compiled-${t}t`,
        select: selectRunner({ ...compiled, threads: { intraOp: t, interOp: 1 } }),
      });
    // On request only: the compiled engine with TensorFlow's BlockLSTMV2 (its kernel on a GPU).
    if (opts.systems?.includes('tf-compiled-block'))
      for (const t of THREADS)
        list.push({
          system: `tf-compiled-block-${t}t`,
          select: selectRunner({
            ...compiled,
            threads: { intraOp: t, interOp: 1 },
            lstmKernel: 'tensorflow',
          }),
        });
  }
  return list;
}

async function anchorRound(
  shape: Shape,
  steps: number,
  add: (system: string, rates: number[], note: string) => void,
) {
  if (!python) return;
  for (const system of ['torch', 'keras'] as const) {
    if (!(system === 'torch' ? python.torch : python.keras)) continue;
    for (const t of THREADS) {
      const name = `${system}-${t}t`;
      if (!wanted(name)) continue;
      try {
        const r = await runAnchor(python.python, system, shape, steps, windows, t);
        add(name, r.windows, r.detail);
      } catch (error) {
        console.log(
          `${shape.name.padEnd(5)} ${name.padEnd(15)} failed: ${(error as Error).message.slice(0, 300)}`,
        );
      }
    }
  }
}

async function oursRound(
  shape: Shape,
  steps: number,
  round: number,
  add: (system: string, rates: number[]) => void,
) {
  for (const backend of backends) {
    const tf = backend.tf;
    await tf.setBackend(backend.name);
    const cpu = backend.name === 'cpu';
    if (cpu && round > 0) continue; // slow: one round is enough to see it
    const s = cpu ? Number(opts['cpu-steps'] ?? shape.cpuSteps) : steps;
    for (const { system, select } of ours(backend)) {
      if (!wanted(system)) continue;
      add(system, await measure(tf, shape, s, cpu ? 2 : windows, select));
    }
    if (opts.stock && backend.name === 'wasm' && wanted('wasm-stock')) {
      restoreStockWasmKernels(tf);
      add('wasm-stock', await measure(tf, shape, s, windows));
      registerFastWasmKernels(tf);
    }
  }
}

for (const shape of shapes) {
  const steps = Number(opts.steps ?? shape.steps);
  const anchors = new Map<string, { rates: number[]; note: string }>();
  const mine = new Map<string, number[]>();
  for (let round = 0; round < rounds; round++) {
    await anchorRound(shape, steps, (system, rates, note) =>
      anchors.set(system, { rates: [...(anchors.get(system)?.rates ?? []), ...rates], note }),
    );
    await oursRound(shape, steps, round, (system, rates) =>
      mine.set(system, [...(mine.get(system) ?? []), ...rates]),
    );
  }
  const best = (entries: [string, number[]][]) =>
    entries.map(([system, rates]) => ({ system, rate: median(rates) })).sort((a, b) => b.rate - a.rate)[0];
  const bestAnchor = best([...anchors].map(([system, a]) => [system, a.rates]));
  for (const [system, a] of anchors) console.log(line(shape, system, a.rates, bestAnchor?.rate, a.note));
  for (const [system, rates] of mine) console.log(line(shape, system, rates, bestAnchor?.rate));
  const bestOurs = best([...mine]);
  if (bestOurs && bestAnchor)
    console.log(
      `${shape.name.padEnd(5)} ${'best'.padEnd(15)} descent ${bestOurs.system} ${fmt(bestOurs.rate)} / anchor ${bestAnchor.system} ${fmt(bestAnchor.rate)} samples/s = ${(bestOurs.rate / bestAnchor.rate).toFixed(2)}`,
    );
}

/** Where a compiled step's time goes: TensorFlow's per-op step stats of traced steps, by op type. */
async function profileCompiled(tf: TF, shape: Shape, threads: number): Promise<void> {
  if (!compiled?.addon) return;
  const n = shape.batch * 4;
  const spec = specFor(shape, 1);
  const data = dataFor(tf, shape, n);
  const model = buildModel(tf, spec, shape.inputShape, outputFor(spec, 10));
  const program = new CompiledProgram({
    addon: compiled.addon,
    model,
    loss: 'categoricalCrossentropy',
    optimizer: spec.training.optimizer,
    data: { x: tensorValue(data.x), y: tensorValue(data.y), labels: tensorValue(data.labels) },
    threads: { intraOp: threads, interOp: 1 },
    towers: towersFor(model, threads, shape.batch),
  });
  try {
    program.setWeights(model.getWeights().map(tensorValue));
    const rows = Int32Array.from({ length: shape.batch }, (_, i) => i);
    const seed = new Int32Array(2);
    for (let i = 0; i < 10; i++) program.step(rows, seed);
    const started = performance.now();
    for (let i = 0; i < 20; i++) program.step(rows, seed);
    const untraced = (performance.now() - started) / 20;
    const byOp = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      for (const t of stepStats(program.traceStep(rows, seed)))
        byOp.set(t.op, (byOp.get(t.op) ?? 0) + t.nanos / 20e6);
    }
    const total = [...byOp.values()].reduce((a, b) => a + b, 0);
    console.log(
      `\nprofile ${shape.name} compiled, ${threads} thread(s): ${untraced.toFixed(2)} ms a step untraced; in ops (traced) ${total.toFixed(2)} ms; ${program.operationTypes.length} ops in the graph`,
    );
    for (const [op, ms] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 12))
      console.log(`  ${ms.toFixed(3).padStart(8)} ms ${((100 * ms) / total).toFixed(1).padStart(5)}%  ${op}`);
  } finally {
    program.close();
    model.dispose();
    tf.dispose([data.x, data.y, data.labels] as Tensor[]);
  }
}

if (opts.profile && native) {
  await native.tf.setBackend(native.name);
  for (const shape of shapes) for (const t of THREADS) await profileCompiled(native.tf, shape, t);
}

if (opts.profile) {
  const wasm = backends.find((b) => b.name === 'wasm');
  if (wasm) {
    await wasm.tf.setBackend('wasm');
    for (const shape of shapes) {
      await profile(wasm.tf, shape);
      if (opts.stock) {
        restoreStockWasmKernels(wasm.tf);
        await profile(wasm.tf, shape);
        registerFastWasmKernels(wasm.tf);
      }
    }
  }
}
