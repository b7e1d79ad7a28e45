/**
 * `npm run bench:train [-- OPTIONS]`: training throughput of three shapes through descent's own
 * training path (trainer/model-builder.ts + trainer/engine.ts `train`, the loop every job runs:
 * seeded permutation, gathered batches, Adam, side metrics), on each TensorFlow.js backend this
 * machine has, and the same shapes in PyTorch in the same run when `/usr/bin/python3` (or
 * `$DESCENT_BENCH_PYTHON`) has torch. `tensorflow` is TensorFlow native (`npm run setup:native`),
 * with the trainer's thread settings (every core unless TF_NUM_INTRAOP_THREADS says otherwise).
 *
 *   mlp   784-256-128-10 (relu), Adam, batch 128
 *   cnn   conv3x3×16 → maxpool 2 → conv3x3×32 → dense 10 on 28×28×1 (relu), Adam, batch 64
 *   lstm  LSTM(64) on 50 steps of 16 features → dense 10, Adam, batch 64
 *
 * Synthetic data of the right shapes (10 classes). One window = one epoch of `steps` batches; the
 * first is a warm-up, the figure is the median of the others. FLOPs per sample are analytic (a
 * multiply-add = 2; training ≈ 3 × forward), against an fp32 peak of `--peak` GFLOP/s (157: this
 * 2-core Zen 3, 2 × 2.45 GHz × 32 FLOP/cycle). Prints one line per shape and backend ending in
 * `ratio=<ours/PyTorch>` (`ratio=n/a` without PyTorch). Not run by CI.
 *
 * PyTorch runs with `--torch-threads` threads (default 2, the whole machine: `ratio` is against it)
 * and with 1 (`vs 1-thread`: a wasm job uses one core, so this is the per-core comparison); its
 * BLAS library is printed. Rounds alternate PyTorch and ours; medians are over all windows.
 *
 * Options: --shapes mlp,cnn,lstm  --backends wasm,cpu,tensorflow  --windows N (default 5)
 *          --rounds N (default 2)  --steps N (batches per window; default per shape)  --cpu-steps N
 *          --no-torch  --torch-threads N (default 2)
 *          --profile (per-kernel time of a few wasm steps per shape)
 *          --stock (also wasm with tfjs's stock kernels instead of trainer/wasm-fast-kernels.ts: the
 *          before/after of those kernels in the same run; with --profile, profiles both)
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Tensor } from '@tensorflow/tfjs';
import { resolvedJobSpec } from '../core/jobs/job-spec.ts';
import { type SelectedBackend, selectBackend, type TF } from '../trainer/backend.ts';
import { train } from '../trainer/engine.ts';
import { buildModel, outputFor } from '../trainer/model-builder.ts';
import { registerFastWasmKernels, restoreStockWasmKernels } from '../trainer/wasm-fast-kernels.ts';

const { values: opts } = parseArgs({
  options: {
    shapes: { type: 'string', default: 'mlp,cnn,lstm' },
    backends: { type: 'string', default: 'wasm,cpu,tensorflow' },
    windows: { type: 'string', default: '5' },
    steps: { type: 'string' },
    'cpu-steps': { type: 'string' },
    'no-torch': { type: 'boolean', default: false },
    'torch-threads': { type: 'string', default: '2' },
    peak: { type: 'string', default: '157' },
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
async function measure(tf: TF, shape: Shape, steps: number, count: number): Promise<number[]> {
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

interface TorchResult {
  windows: number[];
  torch: string;
  threads: number;
  blas: string;
}

/** The Python with torch: `DESCENT_BENCH_PYTHON` (e.g. a venv's), else the system's. */
const PYTHON = process.env.DESCENT_BENCH_PYTHON || '/usr/bin/python3';
const TORCH_SCRIPT = fileURLToPath(new URL('./train_throughput_torch.py', import.meta.url));

async function hasTorch(): Promise<string | undefined> {
  if (opts['no-torch'] || !existsSync(PYTHON)) return undefined;
  const out = await runPython(['-c', 'import torch; print(torch.__version__)']).catch(() => undefined);
  return out?.trim() || undefined;
}

function runPython(args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`python exited ${code}: ${err}`)),
    );
  });
}

async function torchRun(shape: Shape, steps: number, threads: number): Promise<TorchResult> {
  const t = String(threads);
  const out = await runPython(
    [TORCH_SCRIPT, shape.name, String(shape.batch), String(steps), String(windows), t],
    // torch.set_num_threads sets OpenMP's threads; OpenBLAS keeps its own pool unless told.
    { OMP_NUM_THREADS: t, OPENBLAS_NUM_THREADS: t, MKL_NUM_THREADS: t },
  );
  return JSON.parse(out.trim().split('\n').at(-1) as string) as TorchResult;
}

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const fmt = (v: number) => Math.round(v).toLocaleString('en');

/** One table line; `reference` is PyTorch with `--torch-threads`, `oneThread` PyTorch on one thread. */
function line(
  shape: Shape,
  backend: string,
  rates: number[],
  reference?: number,
  oneThread?: number,
): string {
  const rate = median(rates);
  const gflops = (rate * 3 * shape.forwardFlops) / 1e9;
  const spread = `${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))}`;
  const ratio = reference ? (rate / reference).toFixed(2) : 'n/a';
  const perThread = oneThread ? (rate / oneThread).toFixed(2) : 'n/a';
  return `${shape.name.padEnd(5)} ${backend.padEnd(11)} ${fmt(rate).padStart(7)} samples/s (${spread.padEnd(15)}) ${gflops.toFixed(2).padStart(6)} GFLOP/s ${((100 * gflops) / peak).toFixed(1).padStart(5)}% of peak  vs 1-thread ${perThread.padStart(4)}  ratio=${ratio}`;
}

// Backends: each one selected the way a worker selects it; a missing one is reported and skipped.
const backends: SelectedBackend[] = [];
for (const name of (opts.backends as string).split(',')) {
  try {
    backends.push(await selectBackend(name));
  } catch (error) {
    console.log(`backend ${name}: unavailable (${String((error as Error).message).slice(0, 300)})`);
  }
}
for (const backend of backends) {
  // What "tensorflow" means here: the library, its package and its thread pools.
  if (backend.tensorflow)
    console.log(
      `backend tensorflow: TensorFlow ${backend.tensorflow.version} via ${backend.package} on ${backend.device}, ${backend.tensorflow.intraOpThreads} intra-op / ${backend.tensorflow.interOpThreads} inter-op threads (TF_ENABLE_ONEDNN_OPTS=${process.env.TF_ENABLE_ONEDNN_OPTS})`,
    );
}
const torchVersion = await hasTorch();
const torchThreads = Number(opts['torch-threads']);
const rounds = Math.max(1, Number(opts.rounds));
console.log(
  `Node ${process.version}, tfjs ${(await import('@tensorflow/tfjs')).version.tfjs}; ${torchVersion ? `PyTorch ${torchVersion} (${torchThreads} threads; and 1)` : 'no PyTorch'}; ${rounds} round(s) of ${windows} windows after a warm-up, median of all; peak ${peak} GFLOP/s; ${availableParallelism()} CPUs, load average ${loadavg()[0]?.toFixed(1)} at start`,
);

for (const shape of shapes) {
  const steps = Number(opts.steps ?? shape.steps);
  const torch: Record<'many' | 'one', number[]> = { many: [], one: [] };
  let blas = '';
  const ours = new Map<string, number[]>();
  const add = (name: string, rates: number[]) => ours.set(name, [...(ours.get(name) ?? []), ...rates]);
  // Rounds alternate PyTorch and ours, so that a change in the machine's load hits both.
  for (let round = 0; round < rounds; round++) {
    if (torchVersion) {
      try {
        const many = await torchRun(shape, steps, torchThreads);
        torch.many.push(...many.windows);
        blas = many.blas;
        if (torchThreads !== 1) torch.one.push(...(await torchRun(shape, steps, 1)).windows);
      } catch (error) {
        console.log(`${shape.name.padEnd(5)} pytorch     failed: ${(error as Error).message.slice(0, 300)}`);
      }
    }
    for (const backend of backends) {
      const tf = backend.tf;
      await tf.setBackend(backend.name);
      const cpu = backend.name === 'cpu';
      if (cpu && round > 0) continue; // slow: one round is enough to see it
      const s = cpu ? Number(opts['cpu-steps'] ?? shape.cpuSteps) : steps;
      add(backend.name, await measure(tf, shape, s, cpu ? 2 : windows));
      if (opts.stock && backend.name === 'wasm') {
        restoreStockWasmKernels(tf);
        add('wasm-stock', await measure(tf, shape, s, windows));
        registerFastWasmKernels(tf);
      }
    }
  }
  const reference = torch.many.length ? median(torch.many) : undefined;
  const oneThread = torchThreads === 1 ? reference : torch.one.length ? median(torch.one) : undefined;
  if (reference)
    console.log(`${line(shape, `pytorch-${torchThreads}t`, torch.many, reference, oneThread)}   [${blas}]`);
  if (oneThread && torchThreads !== 1)
    console.log(line(shape, 'pytorch-1t', torch.one, reference, oneThread));
  for (const [name, rates] of ours) console.log(line(shape, name, rates, reference, oneThread));
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
