/**
 * The gradient check: a case is a small model built by trainer/model-builder.ts from job-spec
 * layers (or a single tfjs op), with seeded random shapes, inputs, weights and targets. On each
 * backend, tfjs's analytic gradients of the training loss (trainer/losses.ts, plus the layers'
 * regularisation penalties) with respect to the input and every trainable weight are compared
 * with float64 central finite differences of the plain-JS reference (reference.ts), evaluated on
 * the very same float32 values. The forward pass is compared too, so that the reference is known
 * to be the function tfjs computes. Tolerances: finite-differences.ts.
 *
 * `compiled` runs like a backend: the same model and weights through the compiled engine's step
 * graph (trainer/compiled/probe.ts). It draws its own dropout masks, so a case with dropout gets a
 * reference computed with them.
 */
import type { Tensor, Variable } from '@tensorflow/tfjs';
import type { z } from 'zod';
import { type HiddenLayer, hiddenLayer, type LossName } from '../../../core/jobs/job-spec.ts';
import { seededRng } from '../../../core/platform/random.ts';
import type { TF } from '../../../trainer/backend.ts';
import { DT, loadGraphAddon, type TensorValue } from '../../../trainer/compiled/native.ts';
import { gradientProbe } from '../../../trainer/compiled/probe.ts';
import { meanLoss as tfMeanLoss } from '../../../trainer/losses.ts';
import { buildModel } from '../../../trainer/model-builder.ts';
import { tfjsBackendOf } from '../available-backends.ts';
import { specOf } from '../specs.ts';
import {
  centralDifferences,
  compareGradient,
  type Estimate,
  relativeError,
  type TensorComparison,
  TOLERANCE,
} from './finite-differences.ts';
import { forward, layerName, penalties, type Weights } from './model-reference.ts';
import { type Arr, arr, meanLoss, sizeOf } from './reference.ts';

export type HiddenLayerInput = z.input<typeof hiddenLayer>;

/** Seeded draws for a case's shapes and values. */
export interface Draw {
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** Integer in [lo, hi], both included. */
  int(lo: number, hi: number): number;
}

export function draw(seed: number): Draw {
  const rng = seededRng(seed);
  return {
    uniform: (lo, hi) => lo + (hi - lo) * rng(),
    int: (lo, hi) => lo + Math.floor(rng() * (hi - lo + 1)),
  };
}

/** A model of job-spec hidden layers, then (flatten and) the dense output layer. */
export interface ModelCase {
  kind: 'model';
  /** `layer/option…`, unique; the table prints it split at the first slash. */
  id: string;
  layers: HiddenLayerInput[];
  /** The shape of one row of input. */
  input: (d: Draw) => number[];
  /** Inputs are integer ids in [0, ids) (embedding): no input gradient. */
  ids?: number;
  /** Rows in the batch (default: 2 or 3). */
  rows?: number;
  /** Default: 3 linear units. */
  output?: { units: number; activation: string };
  /** Default: meanSquaredError. */
  loss?: LossName;
  /** Per-row loss weights (class weights). */
  rowWeights?: boolean;
}

/** One tfjs op on random inputs, reduced to a scalar with fixed random weights. */
export interface OpCase {
  kind: 'op';
  id: string;
  shapes: (d: Draw) => number[][];
  run: (tf: TF, inputs: Tensor[]) => Tensor;
  reference: (inputs: Arr[]) => Arr;
  /** Backends that do not have this op at all (no job-spec layer reaches it there), and why. */
  notOn?: { backends: readonly string[]; why: string };
}

export type GradientCase = ModelCase | OpCase;

export interface BackendResult {
  backend: string;
  /** Relative error of the tfjs forward pass against the reference. */
  forwardError: number;
  tensors: TensorComparison[];
  /** The largest relative gradient error over the tensors. */
  error: number;
  /** The largest finite-difference error bound, relative. */
  fdError: number;
  pass: boolean;
  /** An exception tfjs threw (a gradient it refuses, say). */
  failure?: string;
}

export interface CaseResult {
  id: string;
  seed: number;
  results: BackendResult[];
}

/** A stable seed per case id (FNV-1a), shifted by `base` (GRADCHECK_SEED) to explore others. */
export function seedOf(id: string, base = 0): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return (h + base) >>> 0;
}

const f32 = (v: number) => Math.fround(v);

/** Runs one case on each named backend (already started: see available-backends.ts). */
export async function runCase(tf: TF, c: GradientCase, backends: string[], base = 0): Promise<CaseResult> {
  const seed = seedOf(c.id, base);
  const results =
    c.kind === 'op' ? await runOpCase(tf, c, backends, seed) : await runModelCase(tf, c, backends, seed);
  return { id: c.id, seed, results };
}

interface Prepared {
  layers: HiddenLayer[];
  rows: number;
  inputShape: number[];
  x: Float32Array;
  y: Float32Array;
  rowWeights?: Float32Array;
  output: { units: number; activation: string };
  loss: LossName;
  randomValue: number;
  d: Draw;
}

function prepare(c: ModelCase, seed: number): Prepared {
  const d = draw(seed);
  const layers = c.layers.map((l) => hiddenLayer.parse(l));
  const rows = c.rows ?? d.int(2, 3);
  const inputShape = c.input(d);
  const size = rows * sizeOf(inputShape);
  const x = new Float32Array(size);
  const vocabulary = c.ids;
  for (let i = 0; i < size; i++) x[i] = vocabulary ? d.int(0, vocabulary - 1) : f32(d.uniform(-1, 1));
  // An id used twice, so that the embedding gradient has to add up.
  if (vocabulary && size > 1) x[size - 1] = x[0] as number;
  const output = c.output ?? { units: 3, activation: 'linear' };
  const loss = c.loss ?? 'meanSquaredError';
  const y = new Float32Array(rows * output.units);
  for (let r = 0; r < rows; r++) {
    if (loss === 'categoricalCrossentropy' || loss === 'sparseCategoricalCrossentropy') {
      y[r * output.units + d.int(0, output.units - 1)] = 1;
    } else if (loss === 'binaryCrossentropy') {
      for (let j = 0; j < output.units; j++) y[r * output.units + j] = d.int(0, 1);
    } else {
      for (let j = 0; j < output.units; j++) y[r * output.units + j] = f32(d.uniform(-1, 1));
    }
  }
  const rowWeights = c.rowWeights
    ? Float32Array.from({ length: rows }, () => f32(d.uniform(0.5, 2)))
    : undefined;
  return {
    layers,
    rows,
    inputShape,
    x,
    y,
    ...(rowWeights ? { rowWeights } : {}),
    output,
    loss,
    randomValue: d.uniform(0, 1),
    d,
  };
}

/** Seeded weight values that keep activations in the range where every function has slope. */
function weightValues(d: Draw, name: string, shape: number[]): Float32Array {
  const suffix = name.slice(name.lastIndexOf('/') + 1);
  const n = sizeOf(shape);
  const fanIn = shape.length > 1 ? sizeOf(shape.slice(0, -1)) : 1;
  const uniform = (lo: number, hi: number) => Float32Array.from({ length: n }, () => f32(d.uniform(lo, hi)));
  switch (suffix) {
    case 'gamma':
      return uniform(0.5, 1.5);
    case 'moving_mean':
      return new Float32Array(n);
    case 'moving_variance':
      return new Float32Array(n).fill(1);
    case 'bias':
    case 'beta':
      return uniform(-0.5, 0.5);
    case 'embeddings':
      return uniform(-1, 1);
    default: {
      const s = 1.5 / Math.sqrt(fanIn);
      return uniform(-s, s);
    }
  }
}

/** Runs `fn` with Math.random pinned, so that every dropout mask tfjs draws is the same. */
function withPinnedRandom<T>(value: number, fn: () => T): T {
  const original = Math.random;
  Math.random = () => value;
  try {
    return fn();
  } finally {
    Math.random = original;
  }
}

interface Observed {
  pred: Float32Array;
  grads: Map<string, Float32Array>;
  masks: Map<string, Arr>;
  weights: { name: string; shape: number[]; trainable: boolean }[];
}

type LayerInternals = { name: string; cell?: { dropoutMask?: Tensor | Tensor[] | null } };

function observeModel(
  tf: TF,
  p: Prepared,
  values: Map<string, Float32Array> | undefined,
  d: Draw,
): Observed & {
  values: Map<string, Float32Array>;
} {
  const spec = specOf({ task: 'regression', model: { layers: p.layers } });
  const model = buildModel(tf, spec, p.inputShape, p.output);
  const tensors: Tensor[] = [];
  const track = <T extends Tensor>(t: T): T => {
    tensors.push(t);
    return t;
  };
  try {
    const weights = model.weights.map((w) => ({
      name: w.originalName,
      shape: w.shape as number[],
      trainable: w.trainable,
    }));
    const chosen = values ?? new Map(weights.map((w) => [w.name, weightValues(d, w.name, w.shape)]));
    model.setWeights(weights.map((w) => track(tf.tensor(chosen.get(w.name) as Float32Array, w.shape))));
    const xShape = [p.rows, ...p.inputShape];
    const x =
      p.layers[0]?.type === 'embedding'
        ? track(tf.tensor(p.x, xShape))
        : track(tf.variable(tf.tensor(p.x, xShape)));
    const y = track(tf.tensor(p.y, [p.rows, p.output.units]));
    const rowWeights = p.rowWeights ? track(tf.tensor(p.rowWeights, [p.rows])) : undefined;
    const vars = model.trainableWeights.map((w) => w.read() as Variable);
    const varList = x instanceof tf.Variable ? [x, ...vars] : vars;
    let pred: Tensor | undefined;
    const { value, grads } = withPinnedRandom(p.randomValue, () =>
      tf.variableGrads(() => {
        const out = model.apply(x, { training: true }) as Tensor;
        pred = tf.keep(out);
        const dataLoss = tfMeanLoss(tf, p.loss, y, out, rowWeights);
        const extra = model.calculateLosses();
        return (extra.length ? tf.addN([dataLoss, ...extra]) : dataLoss) as ReturnType<typeof tfMeanLoss>;
      }, varList),
    );
    track(value);
    const byName = new Map<string, Float32Array>();
    if (x instanceof tf.Variable) byName.set('input', (grads[x.name] as Tensor).dataSync() as Float32Array);
    model.trainableWeights.forEach((w, i) => {
      byName.set(w.originalName, (grads[(vars[i] as Variable).name] as Tensor).dataSync() as Float32Array);
    });
    tf.dispose(Object.values(grads));
    const masks = new Map<string, Arr>();
    for (const layer of model.layers as unknown as LayerInternals[]) {
      const kind = p.layers.find((l, i) => layerName(l, i + 1) === layer.name);
      if (kind?.type === 'dropout' && kind.rate > 0) {
        const inShape = (model.getLayer(layer.name).input as { shape: (number | null)[] }).shape;
        const ones = track(tf.ones([p.rows, ...inShape.slice(1).map((v) => v as number)]));
        const mask = withPinnedRandom(p.randomValue, () =>
          model.getLayer(layer.name).apply(ones, { training: true }),
        ) as Tensor;
        masks.set(layer.name, arr(mask.shape, track(mask).dataSync()));
      }
      const cellMask = layer.cell?.dropoutMask;
      if (cellMask) {
        const first = (Array.isArray(cellMask) ? cellMask[0] : cellMask) as Tensor;
        masks.set(layer.name, arr(first.shape, first.dataSync()));
      }
    }
    const predValues = (pred as Tensor).dataSync() as Float32Array;
    track(pred as Tensor);
    return { pred: predValues, grads: byName, masks, weights, values: chosen };
  } finally {
    tf.dispose(tensors);
    model.dispose();
  }
}

async function runModelCase(
  tf: TF,
  c: ModelCase,
  backends: string[],
  seed: number,
): Promise<BackendResult[]> {
  const p = prepare(c, seed);
  let values: Map<string, Float32Array> | undefined;
  let reference: { pred: Arr; estimates: Map<string, Estimate>; masks: Map<string, Arr> } | undefined;
  const results: BackendResult[] = [];
  for (const backend of backends) {
    if (!(await tf.setBackend(tfjsBackendOf(backend)))) throw new Error(`backend ${backend} did not start`);
    let observed: ReturnType<typeof observeModel>;
    try {
      observed =
        backend === 'compiled' ? observeCompiled(tf, p, values, p.d, seed) : observeModel(tf, p, values, p.d);
    } catch (error) {
      results.push(failed(backend, error));
      continue;
    }
    values ??= observed.values;
    // The compiled path draws its own dropout masks (stateless, seeded): it gets a reference with them.
    if (backend === 'compiled' && observed.masks.size > 0) {
      results.push(judge(backend, observed, differentiate(p, observed)));
      continue;
    }
    reference ??= differentiate(p, observed);
    results.push(judge(backend, observed, reference));
  }
  return results;
}

/**
 * The compiled engine's predictions and gradients (trainer/compiled/probe.ts): the same model and
 * weights, its step graph instead of tfjs's ops, its own dropout masks.
 */
function observeCompiled(
  tf: TF,
  p: Prepared,
  values: Map<string, Float32Array> | undefined,
  d: Draw,
  seed: number,
): Observed & { values: Map<string, Float32Array> } {
  const { addon, error } = loadGraphAddon();
  if (!addon) throw new Error(error);
  const spec = specOf({ task: 'regression', model: { layers: p.layers } });
  const model = buildModel(tf, spec, p.inputShape, p.output);
  try {
    const weights = model.weights.map((w) => ({
      name: w.originalName,
      shape: w.shape as number[],
      trainable: w.trainable,
    }));
    const chosen = values ?? new Map(weights.map((w) => [w.name, weightValues(d, w.name, w.shape)]));
    const f32 = (shape: number[], data: Float32Array): TensorValue => ({ dtype: DT.float32, shape, data });
    const embedding = p.layers[0]?.type === 'embedding';
    const out = gradientProbe(addon, model, {
      weights: weights.map((w) => f32(w.shape, chosen.get(w.name) as Float32Array)),
      x: f32([p.rows, ...p.inputShape], p.x),
      y: f32([p.rows, p.output.units], p.y),
      ...(p.rowWeights ? { rowWeights: f32([p.rows], p.rowWeights) } : {}),
      loss: p.loss,
      seed: [seed & 0x7fffffff, 17],
      inputGradient: !embedding,
    });
    const grads = new Map<string, Float32Array>();
    if (out.input) grads.set('input', out.input.data as Float32Array);
    for (const [name, g] of out.grads) grads.set(name, g.data as Float32Array);
    const masks = new Map<string, Arr>(
      [...out.masks].map(([name, m]) => [name, arr(m.shape, m.data as Float32Array)]),
    );
    return { pred: out.pred.data as Float32Array, grads, masks, weights, values: chosen };
  } finally {
    model.dispose();
  }
}

/** The reference forward pass and finite differences, on the values the first backend ran. */
function differentiate(p: Prepared, observed: Observed & { values: Map<string, Float32Array> }) {
  const weights: Weights = new Map();
  for (const w of observed.weights)
    weights.set(w.name, arr(w.shape, observed.values.get(w.name) as Float32Array));
  const input = arr([p.rows, ...p.inputShape], p.x);
  const yTrue = arr([p.rows, p.output.units], p.y);
  const rowWeights = p.rowWeights ? arr([p.rows], p.rowWeights) : undefined;
  const run = () => forward(p.layers, weights, observed.masks, input, p.output.activation);
  const loss = () => meanLoss(p.loss, yTrue, run(), rowWeights) + penalties(p.layers, weights);
  const estimates = new Map<string, Estimate>();
  if (p.layers[0]?.type !== 'embedding') estimates.set('input', centralDifferences(loss, input.data));
  for (const w of observed.weights) {
    if (w.trainable) estimates.set(w.name, centralDifferences(loss, (weights.get(w.name) as Arr).data));
  }
  return { pred: run(), estimates, masks: observed.masks };
}

function judge(
  backend: string,
  observed: Observed,
  reference: { pred: Arr; estimates: Map<string, Estimate>; masks: Map<string, Arr> },
): BackendResult {
  for (const [name, mask] of reference.masks) {
    const mine = observed.masks.get(name);
    if (!mine || relativeError(mine.data, mask.data) !== 0) {
      return failed(backend, new Error(`dropout mask of ${name} differs from the first backend's`));
    }
  }
  const forwardError = relativeError(observed.pred, reference.pred.data);
  let globalScale = 0;
  for (const e of reference.estimates.values())
    for (const v of e.grad) globalScale = Math.max(globalScale, Math.abs(v));
  const tensors = [...reference.estimates].map(([name, estimate]) =>
    compareGradient(name, observed.grads.get(name) ?? new Float32Array(0), estimate, globalScale),
  );
  return summarise(backend, forwardError, tensors);
}

function summarise(backend: string, forwardError: number, tensors: TensorComparison[]): BackendResult {
  const error = Math.max(0, ...tensors.map((t) => t.error));
  const fdError = Math.max(0, ...tensors.map((t) => t.fdError));
  const pass = forwardError <= TOLERANCE && tensors.every((t) => t.pass);
  return { backend, forwardError, tensors, error, fdError, pass };
}

function failed(backend: string, error: unknown): BackendResult {
  const message = String((error as Error)?.message ?? error).split('\n')[0] ?? 'failed';
  return {
    backend,
    forwardError: Number.NaN,
    tensors: [],
    error: Number.POSITIVE_INFINITY,
    fdError: 0,
    pass: false,
    failure: message,
  };
}

async function runOpCase(tf: TF, c: OpCase, all: string[], seed: number): Promise<BackendResult[]> {
  // A tfjs op on its own has no compiled counterpart: the compiled path runs whole steps.
  const backends = all.filter((b) => !c.notOn?.backends.includes(b) && b !== 'compiled');
  const d = draw(seed);
  const shapes = c.shapes(d);
  const inputs = shapes.map((s) =>
    arr(
      s,
      Float32Array.from({ length: sizeOf(s) }, () => f32(d.uniform(-1, 1))),
    ),
  );
  const out = c.reference(inputs);
  const weights = arr(
    out.shape,
    Float32Array.from({ length: out.data.length }, () => f32(d.uniform(-1, 1))),
  );
  const loss = () => {
    const y = c.reference(inputs);
    let s = 0;
    for (let i = 0; i < y.data.length; i++) s += (y.data[i] as number) * (weights.data[i] as number);
    return s;
  };
  const estimates = inputs.map((a) => centralDifferences(loss, a.data));
  let globalScale = 0;
  for (const e of estimates) for (const v of e.grad) globalScale = Math.max(globalScale, Math.abs(v));
  const results: BackendResult[] = [];
  for (const backend of backends) {
    if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not start`);
    try {
      const [value, grads] = tf.tidy(() => {
        const xs = inputs.map((a) => tf.tensor(Float32Array.from(a.data), a.shape));
        const w = tf.tensor(Float32Array.from(weights.data), weights.shape);
        const y = c.run(tf, xs);
        const g = tf.grads((...args: Tensor[]) => tf.sum(tf.mul(c.run(tf, args), w)))(xs);
        return [y, g] as const;
      });
      const forwardError = relativeError(value.dataSync(), out.data);
      const tensors = grads.map((g, i) =>
        compareGradient(`input ${i}`, g.dataSync(), estimates[i] as Estimate, globalScale),
      );
      tf.dispose([value, ...grads]);
      results.push(summarise(backend, forwardError, tensors));
    } catch (error) {
      results.push(failed(backend, error));
    }
  }
  return results;
}

/** A failure message naming the worst tensor and element, for assertion output. */
export function describe(result: CaseResult): string {
  return result.results
    .filter((r) => !r.pass)
    .map((r) => {
      if (r.failure) return `${r.backend}: threw "${r.failure}"`;
      const worst = r.tensors
        .filter((t) => !t.pass)
        .map(
          (t) =>
            `${t.name} error ${t.error.toExponential(2)} (element ${t.worst.index}: tfjs ${t.worst.analytic.toPrecision(6)}, finite differences ${t.worst.fd.toPrecision(6)})`,
        );
      return `${r.backend}: forward error ${r.forwardError.toExponential(2)}; ${worst.join('; ') || 'gradients within tolerance'}`;
    })
    .join('\n');
}
