/**
 * A job's compiled training program: one TensorFlow graph and session holding the training rows
 * (variables, gathered by each step's row indices, so nothing but the indices is copied per step),
 * the model's weights, the step (step-graph.ts), gradient clipping, the optimizer's update ops
 * (optimizers.ts) and the epoch's loss and metric sums. One `TF_SessionRun` per step.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { JobSpec, LossName, OptimizerSpec } from '../../core/jobs/job-spec.ts';
import type { LstmKernel, WeightRef } from './forward-context.ts';
import { GraphBuilder, type VariableRef } from './graph.ts';
import { DT, type GraphAddon, type NativeSession, type Output, type TensorValue } from './native.ts';
import { buildOptimizer, type CompiledOptimizer, type OptimizerVariable } from './optimizers.ts';
import { buildPrivateStep, type PrivacyConstants } from './private-step-graph.ts';
import { buildStep, type StepInputs, weightVariables } from './step-graph.ts';

/** Training rows, row-major, as the eager path's tensors hold them. */
export interface ProgramData {
  x: TensorValue;
  y: TensorValue;
  labels?: TensorValue;
  rowWeights?: TensorValue;
}

export interface ProgramOptions {
  addon: GraphAddon;
  model: LayersModel;
  loss: LossName;
  optimizer: OptimizerSpec;
  clipping?: JobSpec['training']['gradientClipping'];
  data: ProgramData;
  threads: { intraOp: number; interOp: number };
  /**
   * Slices of each batch computed concurrently (on TensorFlow's inter-op threads), their gradients
   * summed: how a model whose ops are too small to split across threads (a recurrent chain) uses
   * several cores. @default 1
   */
  towers?: number;
  /** TensorFlow's XLA JIT on the step (measured slower here on bench:train's shapes: off by default). */
  xla?: boolean;
  /** The fused LSTM's kernel (forward-context.ts). @default 'descent' */
  lstmKernel?: LstmKernel;
  /**
   * Private training (DP-SGD, private-step-graph.ts): each step is fed its sampled rows and its
   * noise (`privateStep`); one tower, no gradient clipping (the mechanism clips per example).
   */
  privacy?: PrivacyConstants;
}

/** A variable and the placeholder + assign op that loads a value into it. */
interface Loader {
  variable: VariableRef;
  placeholder: Output;
  assign: number;
}

const f32 = (shape: number[], data: Float32Array): TensorValue => ({ dtype: DT.float32, shape, data });
const filled = (shape: number[], value: number): TensorValue =>
  f32(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value));

export class CompiledProgram {
  readonly weights: WeightRef[];
  readonly optimizerVariables: OptimizerVariable[];
  /** The type of each operation in the graph (gradients included), as built. */
  readonly operationTypes: string[];
  /** Whether the model draws dropout masks (each step then takes a seed). */
  readonly hasDropout: boolean;
  readonly #session: NativeSession;
  readonly #indices: Output[];
  readonly #seed: Output;
  readonly #train: number;
  /** Private training: the noise placeholders (one per trainable weight) and the reference gradient's target. */
  readonly #noise: { placeholder: Output; shape: number[] }[];
  readonly #reference: number | undefined;
  readonly #sums: [VariableRef, VariableRef];
  readonly #sumReads: Output[];
  readonly #resetSums: number;
  readonly #lr: VariableRef;
  readonly #loaders = new Map<VariableRef, Loader>();
  /** One read op per variable, made before the session starts (the graph never grows afterwards). */
  readonly #reads = new Map<VariableRef, Output>();
  #closed = false;

  constructor(options: ProgramOptions) {
    const graph = new options.addon.Graph();
    const g = new GraphBuilder(graph);
    const data = (v: TensorValue) => g.variable(v.dtype, v.shape);
    const sets = {
      x: data(options.data.x),
      y: data(options.data.y),
      labels: options.data.labels && data(options.data.labels),
      rowWeights: options.data.rowWeights && data(options.data.rowWeights),
    };
    const towers = Math.max(1, options.towers ?? 1);
    this.#indices = Array.from({ length: towers }, () => g.placeholder(DT.int32, [-1]));
    this.#seed = g.placeholder(DT.int32, [2]);
    const inputs = this.#indices.map((indices) => {
      const batch = (v: VariableRef | undefined) => (v ? g.gatherRows(v, indices) : undefined);
      return {
        x: batch(sets.x) as Output,
        y: batch(sets.y) as Output,
        ...(sets.labels ? { labels: batch(sets.labels) as Output } : {}),
        ...(sets.rowWeights ? { rowWeights: batch(sets.rowWeights) as Output } : {}),
        seed: this.#seed,
      };
    });
    this.weights = weightVariables(g, options.model);
    this.#lr = g.variable(DT.float32, []);
    const ops = options.privacy
      ? privateOps(g, options, this.weights, inputs[0] as StepInputs, options.privacy, this.#lr)
      : trainingOps(g, options, this.weights, inputs, this.#lr);
    this.optimizerVariables = ops.optimizer.variables;
    this.hasDropout = ops.hasDropout;
    this.#noise = ops.noise;
    this.#reference = ops.reference;
    this.#sums = [g.variable(DT.float32, []), g.variable(DT.float32, [])];
    const accumulate = [g.assignAdd(this.#sums[0], ops.lossSum), g.assignAdd(this.#sums[1], ops.metricSum)];
    this.#train = g.group([...ops.optimizer.updates, ...ops.updates, ...accumulate]);
    this.#sumReads = this.#sums.map((s) => g.read(s));
    this.#resetSums = g.group(this.#sums.map((s) => g.assign(s, g.scalar(0))));

    const all: VariableRef[] = [
      ...Object.values(sets).filter((v): v is VariableRef => v !== undefined),
      ...this.weights.map((w) => w.variable),
      ...this.optimizerVariables.map((v) => v.variable),
      this.#lr,
      ...this.#sums,
    ];
    g.scoped('io', () => {
      for (const variable of all) {
        const placeholder = g.placeholder(variable.dtype, variable.shape);
        this.#loaders.set(variable, { variable, placeholder, assign: g.assign(variable, placeholder) });
        this.#reads.set(variable, g.read(variable));
      }
    });
    this.operationTypes = graph.operationTypes();
    this.#session = new options.addon.Session(graph, {
      intraOpThreads: Math.max(1, Math.floor(options.threads.intraOp / towers)),
      interOpThreads: Math.max(options.threads.interOp, towers),
      xla: options.xla ?? false,
    });
    const initial = new Map<VariableRef, TensorValue>([
      [sets.x, options.data.x],
      [sets.y, options.data.y],
      [this.#lr, filled([], options.optimizer.learningRate)],
      [this.#sums[0], filled([], 0)],
      [this.#sums[1], filled([], 0)],
    ]);
    if (sets.labels && options.data.labels) initial.set(sets.labels, options.data.labels);
    if (sets.rowWeights && options.data.rowWeights) initial.set(sets.rowWeights, options.data.rowWeights);
    for (const v of this.optimizerVariables) initial.set(v.variable, filled(v.variable.shape, v.initial));
    this.load(initial);
  }

  /** Assigns values to variables (weights, optimizer state, data). */
  load(values: Map<VariableRef, TensorValue>): void {
    const feeds: [Output, TensorValue][] = [];
    const targets: number[] = [];
    for (const [variable, value] of values) {
      const loader = this.#loaders.get(variable);
      if (!loader) throw new Error('not a variable of this program');
      feeds.push([loader.placeholder, value]);
      targets.push(loader.assign);
    }
    if (targets.length) this.#session.run(feeds, [], targets);
  }

  /** Sets the model's weights (values in `model.weights` order). */
  setWeights(values: TensorValue[]): void {
    this.load(new Map(this.weights.map((w, i) => [w.variable, values[i] as TensorValue])));
  }

  /** The model's weights, in `model.weights` order. */
  readWeights(): TensorValue[] {
    return this.read(this.weights.map((w) => w.variable));
  }

  read(variables: VariableRef[]): TensorValue[] {
    if (variables.length === 0) return [];
    const reads = variables.map((v) => {
      const read = this.#reads.get(v);
      if (!read) throw new Error('not a variable of this program');
      return read;
    });
    return this.#session.run([], reads, []);
  }

  setLearningRate(rate: number): void {
    this.load(new Map([[this.#lr, filled([], rate)]]));
  }

  /** One optimizer step on the rows `indices` (split between the towers), dropout drawn from `seed`. */
  step(indices: Int32Array, seed: Int32Array): void {
    this.#session.run(this.#stepFeeds(indices, seed), [], [this.#train]);
  }

  /** `step`, traced: TensorFlow's serialized RunMetadata with per-op timings (step-stats.ts reads it). */
  traceStep(indices: Int32Array, seed: Int32Array): Uint8Array {
    return this.#session.trace(this.#stepFeeds(indices, seed), [], [this.#train])[0] as Uint8Array;
  }

  /** Private training: the element count of each noise feed (`privateStep`); empty otherwise. */
  get noiseSizes(): number[] {
    return this.#noise.map(({ shape }) => shape.reduce((a, b) => a * b, 1));
  }

  /**
   * One private step on the sampled rows `indices` with `noise` (standard normals, one array per
   * trainable weight in `model.trainableWeights` order), dropout drawn from `seed`.
   */
  privateStep(indices: Int32Array, noise: Float32Array[], seed: Int32Array): void {
    const feeds = this.#stepFeeds(indices, seed);
    this.#noise.forEach(({ placeholder, shape }, i) => {
      feeds.push([placeholder, { dtype: DT.float32, shape, data: noise[i] as Float32Array }]);
    });
    this.#session.run(feeds, [], [this.#train]);
  }

  /** A private program's ordinary gradient (mean loss, no clipping or noise) on `indices`; nothing is applied. */
  referenceStep(indices: Int32Array, seed: Int32Array): void {
    if (this.#reference === undefined) throw new Error('not a private program');
    this.#session.run(this.#stepFeeds(indices, seed), [], [this.#reference]);
  }

  #stepFeeds(indices: Int32Array, seed: Int32Array): [Output, TensorValue][] {
    const towers = this.#indices.length;
    const part = Math.ceil(indices.length / towers);
    const feeds: [Output, TensorValue][] = this.#indices.map((placeholder, k) => {
      const rows = indices.subarray(
        Math.min(indices.length, k * part),
        Math.min(indices.length, (k + 1) * part),
      );
      return [placeholder, { dtype: DT.int32, shape: [rows.length], data: rows }];
    });
    feeds.push([this.#seed, { dtype: DT.int32, shape: [2], data: seed }]);
    return feeds;
  }

  /** The sums of loss·rows and of the metric since the last call; resets them. */
  takeSums(): { loss: number; metric: number } {
    const [loss, metric] = this.#session.run([], this.#sumReads, []);
    this.#session.run([], [], [this.#resetSums]);
    return { loss: (loss?.data[0] as number) ?? 0, metric: (metric?.data[0] as number) ?? 0 };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#session.close();
  }
}

/** What a program's training step adds to its graph. */
interface TrainingOps {
  optimizer: CompiledOptimizer;
  /** State updates besides the optimizer's (batch-norm moving statistics). */
  updates: number[];
  /** What the epoch's sums add per step: Σ row losses (×weights) and Σ of the side metric. */
  lossSum: Output;
  metricSum: Output;
  hasDropout: boolean;
  noise: { placeholder: Output; shape: number[] }[];
  reference?: number;
}

/** The ordinary step: mean loss + penalties over the towers' rows, clipping, the optimizer. */
function trainingOps(
  g: GraphBuilder,
  options: ProgramOptions,
  weights: WeightRef[],
  inputs: StepInputs[],
  lr: VariableRef,
): TrainingOps {
  const step = g.scoped('step', () =>
    buildStep(
      g,
      options.model,
      weights,
      options.loss,
      inputs.length === 1 ? (inputs[0] as StepInputs) : inputs,
      [],
      options.lstmKernel,
    ),
  );
  const grads = clip(
    g,
    step.grads.map((s) => s.grad),
    options.clipping,
  );
  const optimizer = g.scoped('optimizer', () =>
    buildOptimizer(
      g,
      options.optimizer,
      step.grads.map((s) => s.weight.variable),
      grads,
      g.read(lr),
    ),
  );
  const size = g.addN(inputs.map((i) => g.sizeOf(i.y, 0)));
  return {
    optimizer,
    updates: step.updates,
    lossSum: g.mul(step.loss, size),
    metricSum: step.metric,
    hasDropout: step.masks.size > 0,
    noise: [],
  };
}

/**
 * The private step (private-step-graph.ts) and the optimizer, plus the same model's ordinary gradient
 * as a separate target: the reference of the private step's cost on this engine.
 */
function privateOps(
  g: GraphBuilder,
  options: ProgramOptions,
  weights: WeightRef[],
  inputs: StepInputs,
  privacy: PrivacyConstants,
  lr: VariableRef,
): TrainingOps {
  const step = g.scoped('private', () =>
    buildPrivateStep(g, options.model, weights, options.loss, inputs, privacy, options.lstmKernel),
  );
  const optimizer = g.scoped('optimizer', () =>
    buildOptimizer(
      g,
      options.optimizer,
      step.grads.map((s) => s.weight.variable),
      step.grads.map((s) => s.grad),
      g.read(lr),
    ),
  );
  const ordinary = g.scoped('reference', () =>
    buildStep(g, options.model, weights, options.loss, inputs, [], options.lstmKernel),
  );
  return {
    optimizer,
    updates: [],
    lossSum: step.lossSum,
    metricSum: step.metricSum,
    hasDropout: step.masks.size > 0,
    noise: step.noise.map((placeholder, i) => ({
      placeholder,
      shape: (step.grads[i] as { weight: WeightRef }).weight.variable.shape,
    })),
    reference: g.group(ordinary.grads.map((s) => g.identity(s.grad)[0])),
  };
}

/** The eager path's clipping (trainer/engine.ts `clip`): by value, or by the global norm. */
function clip(g: GraphBuilder, grads: Output[], spec: JobSpec['training']['gradientClipping']): Output[] {
  if (!spec || grads.length === 0) return grads;
  if (spec.clipValue !== undefined) {
    const v = spec.clipValue;
    return grads.map((d) => g.clip(d, g.scalar(-v), g.scalar(v)));
  }
  const norm = g.sqrt(g.addN(grads.map((d) => g.sumAll(g.square(d)))));
  const scale = g.minimum(
    g.scalar(1),
    g.div(g.scalar(spec.clipNorm as number), g.maximum(norm, g.scalar(1e-12))),
  );
  return grads.map((d) => g.mul(d, scale));
}
