/**
 * DP-SGD (Abadi et al. 2016): the loop both engines share, and its steps on the eager tfjs path.
 * Each step takes a Poisson sample of the training rows (every row with probability q), computes every sampled row's own gradient, scales it down to
 * L2 norm ≤ C, sums, adds N(0, σ²C²) noise to every coordinate, divides by the expected batch size
 * q·n and hands the result to the job's optimizer. Regularisation penalties depend on the weights
 * only, so their gradient is added after the noise. The sampling and the noise come from a keyed
 * stream (`KeyedRandom`) whose state is checkpointed with the number of steps taken.
 *
 * Per-example gradients are computed in one of two ways, chosen from the model:
 * - `vectorized`: a chain of dense layers (and layers without trainable weights: dropout, flatten…).
 *   One backward pass gives each row's gradient at every dense layer's output (a zero "probe" added
 *   there); a row's kernel gradient is the outer product of its input and that gradient, so its
 *   squared norm is ‖a‖²·‖δ‖² and the clipped sum is aᵀ·(c ⊙ δ): one matMul, no per-row loop.
 * - `microbatch`: any other model (convolutions, recurrent layers, embeddings, base models): one
 *   forward and backward pass per sampled row.
 *
 * The loop, the accounting and the random draws (`drawStep`: the sample, then each trainable
 * variable's noise) are the same on both engines; a step runs on a `PrivateSteps`: `EagerPrivateSteps`
 * here (tfjs, op by op), or the compiled engine's graph (trainer/compiled/private-runner.ts) for a
 * vectorised model.
 */
import type { LayersModel, Optimizer, Scalar, Tensor, Variable } from '@tensorflow/tfjs';
import type { LossName } from '../core/jobs/job-spec.ts';
import { UnrecoverableError } from '../core/platform/errors.ts';
import type { Rng } from '../core/platform/random.ts';
import { batchCoupledLayer, type PrivacyPlan } from '../core/training/privacy.ts';
import type { TF } from './backend.ts';
import type { DataSet, EngineName, Pause } from './engine.ts';
import { KeyedRandom, type KeyedRandomState } from './keyed-random.ts';
import { meanLoss, rowLosses } from './losses.ts';

export type PerExampleMethod = 'vectorized' | 'microbatch';

/** What a checkpoint keeps of a private run. */
export interface PrivateState {
  steps: number;
  noiseMultiplier: number;
  random: KeyedRandomState;
}

/** What private training cost, per step, against the same step without privacy. */
export interface PrivateTrainingCost {
  perExampleGradients: PerExampleMethod;
  /** Mean wall time of a private step (sampling, per-example gradients, clipping, noise, update). */
  secondsPerStep: number;
  /** Mean wall time of the same model's ordinary gradient on a batch of the expected size (measured in the job). */
  nonPrivateSecondsPerStep: number;
  /** secondsPerStep / nonPrivateSecondsPerStep. */
  overhead: number;
}

export interface PrivateOutcome {
  plan: PrivacyPlan;
  steps: number;
  cost: PrivateTrainingCost;
}

/** What a step computes besides the update: sums over the sampled rows. */
type Sums = { loss: Tensor; metric: Tensor };
type SideMetric = (pred: Tensor, y: Tensor, labels: Tensor | undefined) => Tensor;

interface DenseStage {
  kind: 'dense';
  kernel: Variable;
  bias?: Variable;
  activation: { apply(x: Tensor): Tensor };
}
type Stage = { kind: 'apply'; layer: LayersModel['layers'][number] } | DenseStage;

/** What a reason says of the layers whose per-example gradients need microbatches. */
const MICROBATCH_LAYERS: Record<string, string> = {
  Conv1D: 'convolutions',
  Conv2D: 'convolutions',
  LSTM: 'recurrent layers',
  GRU: 'recurrent layers',
  SimpleRNN: 'recurrent layers',
  Embedding: 'an embedding',
};

/**
 * How `model`'s per-example gradients are computed: `vectorized` for a Sequential chain of dense
 * layers on rank-2 inputs and layers without trainable weights; else `microbatch`, with what in the
 * model needs it (a noun phrase: "convolutions").
 */
export function perExampleMethodOf(
  model: LayersModel,
): { method: 'vectorized' } | { method: 'microbatch'; because: string } {
  if (model.getClassName() !== 'Sequential')
    return { method: 'microbatch', because: 'a base model (a functional model, not a Sequential chain)' };
  for (const layer of model.layers) {
    const className = layer.getClassName();
    if (className === 'InputLayer' || layer.trainableWeights.length === 0) continue;
    if (className !== 'Dense')
      return { method: 'microbatch', because: MICROBATCH_LAYERS[className] ?? `a ${className} layer` };
    const input = (layer as unknown as { input: { shape: unknown[] } }).input;
    if (input.shape.length !== 2) return { method: 'microbatch', because: 'dense layers on sequences' };
  }
  return { method: 'vectorized' };
}

/**
 * The vectorised plan of a Sequential model whose trainable layers are all dense on rank-2 inputs,
 * or `undefined` when per-example gradients need microbatches.
 */
function denseChain(model: LayersModel): Stage[] | undefined {
  if (perExampleMethodOf(model).method !== 'vectorized') return undefined;
  const stages: Stage[] = [];
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    if (layer.trainableWeights.length === 0) {
      stages.push({ kind: 'apply', layer });
      continue;
    }
    const dense = layer as unknown as {
      kernel: { read(): Variable };
      bias?: { read(): Variable } | null;
      activation: { apply(x: Tensor): Tensor };
    };
    stages.push({
      kind: 'dense',
      kernel: dense.kernel.read(),
      ...(dense.bias ? { bias: dense.bias.read() } : {}),
      activation: dense.activation,
    });
  }
  return stages;
}

/** The random part of one private step. */
export interface StepDraws {
  /** The sampled rows (Poisson sampling), ascending. */
  sample: Int32Array;
  /** Standard normal noise for each trainable variable, in `model.trainableWeights` order. */
  noise: Float32Array[];
}

/**
 * Draws one step's randomness from the run's keyed stream, in the one order both engines use: the
 * Poisson sample of the `rows` rows at rate `sampleRate`, then `sizes[i]` normals for each trainable
 * variable in turn. (The one place that draws: the engines' streams cannot drift apart.)
 */
export function drawStep(random: KeyedRandom, rows: number, sampleRate: number, sizes: number[]): StepDraws {
  const sample = random.poissonSample(rows, sampleRate);
  return { sample, noise: sizes.map((size) => random.normals(size)) };
}

/**
 * Where the steps of a private run execute: applies one step's update (clipped per-example gradient
 * sum + σ·C·noise, ÷ q·n, + penalties' gradients, then the optimizer) and keeps the epoch's sums.
 */
export interface PrivateSteps {
  readonly engine: EngineName;
  readonly method: PerExampleMethod;
  /** Element counts of the trainable variables, in `model.trainableWeights` order (the noise's). */
  readonly sizes: number[];
  /** One step on `draws`; `rng` is the job's generator (dropout). */
  step(draws: StepDraws, rng: Rng): void;
  /** Σ of the sampled rows' (weighted) losses and of the side metric since the last call; resets them. */
  takeSums(): Promise<{ loss: number; metric: number }>;
  /**
   * Seconds of one ordinary (non-private) gradient of the model on `rows` rows, on the same engine:
   * the reference of the private step's cost. Nothing is applied.
   */
  referenceSeconds(rows: number): number;
  dispose(): void;
}

/** The median of 9 timed calls of `once` after 2 warm-ups, in seconds. */
export function medianSeconds(once: () => void): number {
  once();
  once();
  const times: number[] = [];
  for (let i = 0; i < 9; i++) {
    const started = performance.now();
    once();
    times.push((performance.now() - started) / 1000);
  }
  return times.sort((a, b) => a - b)[4] as number;
}

/** What the eager engine's steps need: the tfjs model, its optimizer and variables. */
export interface EagerStepOptions {
  model: LayersModel;
  optimizer: Optimizer;
  loss: LossName;
  trainSet: DataSet;
  plan: PrivacyPlan;
  variables: () => Variable[];
  sideMetric: SideMetric;
  /** Runs a step with `Math.random` drawn from the job's generator (dropout masks). */
  withRandom: <T>(rng: Rng, fn: () => T) => T;
  /** Force a per-example method (tests and benchmarks); default: vectorised where the model allows. */
  perExample?: PerExampleMethod;
}

interface RunOptions {
  /** Continue a checkpointed run. */
  resume?: PrivateState;
  /** The keyed stream's key (default: 32 fresh bytes from the operating system). */
  key?: Uint8Array;
}

/**
 * A private run: the eager engine's options, or (`steps`) the engine that runs its steps with the
 * model, rows and plan they were built for.
 */
export type PrivateTrainingOptions = RunOptions &
  (EagerStepOptions | { model: LayersModel; trainSet: DataSet; plan: PrivacyPlan; steps: PrivateSteps });

/** Refuses a model whose rows' gradients depend on each other (batch normalization). */
function assertPerExample(model: LayersModel): void {
  const coupled = batchCoupledLayer(model.layers.map((l) => l.getClassName()));
  if (coupled) {
    throw new UnrecoverableError(
      'INVALID_SPEC',
      `The model has a ${coupled} layer, which cannot be trained with training.privacy: it normalises each row with statistics of the whole batch, so one row's gradient depends on the other rows.`,
    );
  }
}

export class PrivateTraining {
  readonly plan: PrivacyPlan;
  readonly method: PerExampleMethod;
  readonly engine: EngineName;
  readonly #steps: PrivateSteps;
  readonly #random: KeyedRandom;
  readonly #rows: number;
  #taken: number;
  #seconds = 0;
  #timedSteps = 0;
  #reference: number | undefined;

  constructor(tf: TF, options: PrivateTrainingOptions) {
    assertPerExample(options.model);
    this.#rows = options.trainSet.x.shape[0] as number;
    this.plan = options.resume
      ? { ...options.plan, noiseMultiplier: options.resume.noiseMultiplier }
      : options.plan;
    this.#taken = options.resume?.steps ?? 0;
    this.#random = options.resume ? new KeyedRandom(options.resume.random) : KeyedRandom.create(options.key);
    this.#steps =
      'steps' in options ? options.steps : new EagerPrivateSteps(tf, { ...options, plan: this.plan });
    this.method = this.#steps.method;
    this.engine = this.#steps.engine;
  }

  /** Whether the budget ends training before `epoch` (1-based). */
  exhausted(epoch: number): boolean {
    return epoch > this.plan.epochs;
  }

  state(): PrivateState {
    return { steps: this.#taken, noiseMultiplier: this.plan.noiseMultiplier, random: this.#random.state() };
  }

  outcome(): PrivateOutcome {
    const secondsPerStep = this.#timedSteps ? this.#seconds / this.#timedSteps : 0;
    const nonPrivateSecondsPerStep = this.#reference ?? 0;
    return {
      plan: this.plan,
      steps: this.#taken,
      cost: {
        perExampleGradients: this.method,
        secondsPerStep,
        nonPrivateSecondsPerStep,
        overhead: nonPrivateSecondsPerStep > 0 ? secondsPerStep / nonPrivateSecondsPerStep : 0,
      },
    };
  }

  /** One epoch of `stepsPerEpoch` private steps; sums of the loss and side metric over the sampled rows. */
  async runEpoch(
    rng: Rng,
    pause: Pause,
  ): Promise<{ loss: number; metric: number; rows: number; interrupted?: boolean }> {
    this.#reference ??= this.#steps.referenceSeconds(
      Math.min(this.#rows, Math.max(1, Math.round(this.plan.expectedBatchSize))),
    );
    let rows = 0;
    const started = performance.now();
    let paused = 0;
    for (let s = 0; s < this.plan.stepsPerEpoch; s++) {
      const before = performance.now();
      const stop = await pause();
      paused += performance.now() - before;
      if (stop) {
        // Stopped inside the epoch (cancel, maximum runtime): its steps are counted, its sums dropped.
        await this.#steps.takeSums();
        return { loss: Number.NaN, metric: Number.NaN, rows, interrupted: true };
      }
      const draws = drawStep(this.#random, this.#rows, this.plan.sampleRate, this.#steps.sizes);
      rows += draws.sample.length;
      this.#steps.step(draws, rng);
      this.#taken++;
    }
    const out = { ...(await this.#steps.takeSums()), rows };
    this.#seconds += (performance.now() - started - paused) / 1000;
    this.#timedSteps += this.plan.stepsPerEpoch;
    return out;
  }

  dispose(): void {
    this.#steps.dispose();
  }
}

/** Private steps on the eager engine, op by op through tfjs (the reference). */
export class EagerPrivateSteps implements PrivateSteps {
  readonly engine = 'eager' as const;
  readonly method: PerExampleMethod;
  readonly sizes: number[];
  readonly #tf: TF;
  readonly #o: EagerStepOptions;
  readonly #stages: Stage[] | undefined;
  #sums: Sums | undefined;

  constructor(tf: TF, options: EagerStepOptions) {
    this.#tf = tf;
    this.#o = options;
    this.#stages = options.perExample === 'microbatch' ? undefined : denseChain(options.model);
    if (options.perExample === 'vectorized' && !this.#stages)
      throw new Error('vectorised per-example gradients need a Sequential chain of dense layers');
    this.method = this.#stages ? 'vectorized' : 'microbatch';
    this.sizes = options.variables().map((v) => v.size);
  }

  step(draws: StepDraws, rng: Rng): void {
    const tf = this.#tf;
    const step = this.#o.withRandom(rng, () => this.#step(draws));
    const sums = this.#sums ?? { loss: tf.scalar(0), metric: tf.scalar(0) };
    this.#sums = { loss: tf.add(sums.loss, step.loss), metric: tf.add(sums.metric, step.metric) };
    tf.dispose([sums.loss, sums.metric, step.loss, step.metric]);
  }

  async takeSums(): Promise<{ loss: number; metric: number }> {
    const sums = this.#sums;
    this.#sums = undefined;
    if (!sums) return { loss: 0, metric: 0 };
    const out = {
      loss: (await sums.loss.data())[0] as number,
      metric: (await sums.metric.data())[0] as number,
    };
    this.#tf.dispose([sums.loss, sums.metric]);
    return out;
  }

  dispose(): void {
    if (this.#sums) this.#tf.dispose([this.#sums.loss, this.#sums.metric]);
    this.#sums = undefined;
  }

  /** One private step on the sampled rows: the update is applied; returns the sums of loss and metric. */
  #step({ sample, noise }: StepDraws): Sums {
    const tf = this.#tf;
    const { plan, trainSet } = this.#o;
    return tf.tidy(() => {
      const vars = this.#o.variables();
      let clipped: Map<string, Tensor>;
      let sums: Sums;
      if (sample.length === 0) {
        // The mechanism runs whatever the sample: an empty batch is still a noisy step.
        clipped = new Map(vars.map((v) => [v.name, tf.zerosLike(v)]));
        sums = { loss: tf.scalar(0), metric: tf.scalar(0) };
      } else {
        const idx = tf.tensor1d(sample, 'int32');
        const pick = (t: Tensor | undefined) => (t ? tf.gather(t, idx) : undefined);
        const batch = {
          x: pick(trainSet.x) as Tensor,
          y: pick(trainSet.y) as Tensor,
          weights: pick(trainSet.weights),
          labels: pick(trainSet.labels),
        };
        const result = this.#stages ? this.#vectorized(this.#stages, batch) : this.#microbatch(batch, vars);
        clipped = result.clipped;
        sums = result.sums;
      }
      const scale = plan.noiseMultiplier * plan.clipNorm;
      const grads: Record<string, Tensor> = {};
      vars.forEach((v, j) => {
        const z = tf.tensor(noise[j] as Float32Array, v.shape, 'float32');
        const sum = clipped.get(v.name) ?? tf.zerosLike(v);
        grads[v.name] = tf.div(tf.add(sum, tf.mul(z, scale)), plan.expectedBatchSize);
      });
      this.#addPenalties(grads, vars);
      this.#o.optimizer.applyGradients(grads);
      return sums;
    });
  }

  /** Regularisation penalties: a function of the weights alone, added without clipping or noise. */
  #addPenalties(grads: Record<string, Tensor>, vars: Variable[]): void {
    const tf = this.#tf;
    const { model } = this.#o;
    if (model.calculateLosses().length === 0) return;
    const penalty = tf.variableGrads(() => tf.addN(model.calculateLosses()) as Scalar, vars);
    for (const [name, g] of Object.entries(penalty.grads)) {
      const current = grads[name];
      grads[name] = current ? tf.add(current, g) : g;
    }
  }

  /** Per-example clipping factors min(1, C / ‖g_i‖) from the rows' squared gradient norms. */
  #factors(squaredNorms: Tensor): Tensor {
    const tf = this.#tf;
    return tf.minimum(1, tf.div(this.#o.plan.clipNorm, tf.maximum(tf.sqrt(squaredNorms), 1e-12)));
  }

  #vectorized(
    stages: Stage[],
    batch: { x: Tensor; y: Tensor; weights?: Tensor | undefined; labels?: Tensor | undefined },
  ): { clipped: Map<string, Tensor>; sums: Sums } {
    const tf = this.#tf;
    const m = batch.x.shape[0] as number;
    const dense = stages.filter((s): s is DenseStage => s.kind === 'dense');
    const probes = dense.map((s) => tf.zeros([m, s.kernel.shape[1] as number]));
    const inputs: Tensor[] = [];
    let metric: Tensor | undefined;
    const total = (...probe: Tensor[]) => {
      let a = batch.x;
      let k = 0;
      for (const s of stages) {
        if (s.kind === 'apply') {
          a = s.layer.apply(a, { training: true }) as Tensor;
          continue;
        }
        inputs.push(tf.keep(a));
        let z = tf.matMul(a, s.kernel);
        if (s.bias) z = tf.add(z, s.bias);
        a = s.activation.apply(tf.add(z, probe[k++] as Tensor));
      }
      metric = tf.keep(this.#o.sideMetric(a, batch.y, batch.labels));
      const rows = rowLosses(tf, this.#o.loss, batch.y, a);
      return tf.sum(batch.weights ? tf.mul(rows, batch.weights) : rows) as Scalar;
    };
    const { value, grads: deltas } = tf.valueAndGrads(total)(probes);
    let squared: Tensor = tf.zeros([m]);
    dense.forEach((s, k) => {
      const d = tf.sum(tf.square(deltas[k] as Tensor), 1);
      const a = tf.sum(tf.square(inputs[k] as Tensor), 1);
      squared = tf.add(squared, s.bias ? tf.mul(d, tf.add(a, 1)) : tf.mul(d, a));
    });
    const c = tf.expandDims(this.#factors(squared), 1);
    const clipped = new Map<string, Tensor>();
    dense.forEach((s, k) => {
      const scaled = tf.mul(deltas[k] as Tensor, c);
      // wasm runs matMul with a transpose flag far slower than an explicit transpose first.
      clipped.set(s.kernel.name, tf.matMul(tf.transpose(inputs[k] as Tensor), scaled));
      if (s.bias) clipped.set(s.bias.name, tf.sum(scaled, 0));
    });
    // Kept through the backward pass; batch.x among them, and unused from here on.
    for (const t of inputs) t.dispose();
    return { clipped, sums: { loss: value, metric: metric as Tensor } };
  }

  #microbatch(
    batch: { x: Tensor; y: Tensor; weights?: Tensor | undefined; labels?: Tensor | undefined },
    vars: Variable[],
  ): { clipped: Map<string, Tensor>; sums: Sums } {
    const tf = this.#tf;
    const { model } = this.#o;
    const m = batch.x.shape[0] as number;
    let acc = vars.map((v) => tf.zerosLike(v) as Tensor);
    let loss: Tensor = tf.scalar(0);
    let metric: Tensor = tf.scalar(0);
    for (let i = 0; i < m; i++) {
      const next = tf.tidy(() => {
        const one = (t: Tensor | undefined) => (t ? t.slice(i, 1) : undefined);
        const [x, y, w, l] = [
          one(batch.x) as Tensor,
          one(batch.y) as Tensor,
          one(batch.weights),
          one(batch.labels),
        ];
        let side: Tensor | undefined;
        const { value, grads } = tf.variableGrads(() => {
          const pred = model.apply(x, { training: true }) as Tensor;
          side = tf.keep(this.#o.sideMetric(pred, y, l));
          const rows = rowLosses(tf, this.#o.loss, y, pred);
          return tf.sum(w ? tf.mul(rows, w) : rows) as Scalar;
        }, vars);
        const gs = vars.map((v) => grads[v.name] ?? tf.zerosLike(v));
        const c = this.#factors(tf.addN(gs.map((g) => tf.sum(tf.square(g)))));
        const sums = [tf.add(loss, value), tf.add(metric, side as Tensor)];
        (side as Tensor).dispose(); // kept out of the gradient's scope
        return [...sums, ...gs.map((g, j) => tf.add(acc[j] as Tensor, tf.mul(g, c)))];
      });
      tf.dispose([loss, metric, ...acc]);
      [loss, metric] = next as [Tensor, Tensor];
      acc = next.slice(2);
    }
    return { clipped: new Map(vars.map((v, j) => [v.name, acc[j] as Tensor])), sums: { loss, metric } };
  }

  referenceSeconds(rows: number): number {
    const tf = this.#tf;
    const { model, trainSet, loss } = this.#o;
    return medianSeconds(() =>
      tf.tidy(() => {
        const x = trainSet.x.slice(0, rows);
        const y = trainSet.y.slice(0, rows);
        const { value, grads } = tf.variableGrads(
          () => meanLoss(tf, loss, y, model.apply(x, { training: true }) as Tensor),
          this.#o.variables(),
        );
        Object.values(grads)[0]?.dataSync();
        value.dataSync();
      }),
    );
  }
}
