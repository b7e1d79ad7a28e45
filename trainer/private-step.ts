/**
 * DP-SGD (Abadi et al. 2016) on the eager tfjs path: each step takes a Poisson sample of the training
 * rows (every row with probability q), computes every sampled row's own gradient, scales it down to
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
 */
import type { LayersModel, Optimizer, Scalar, Tensor, Variable } from '@tensorflow/tfjs';
import type { LossName } from '../core/jobs/job-spec.ts';
import { UnrecoverableError } from '../core/platform/errors.ts';
import type { Rng } from '../core/platform/random.ts';
import { batchCoupledLayer, type PrivacyPlan } from '../core/training/privacy.ts';
import type { TF } from './backend.ts';
import type { DataSet, Pause } from './engine.ts';
import { KeyedRandom, type KeyedRandomState } from './keyed-random.ts';
import { meanLoss, rowLosses } from './losses.ts';

/**
 * Where a private job trains, and why: per-example gradients need the eager tfjs loop (the one place
 * that says so; the job's resources carry it).
 */
export const PRIVATE_TRAINING_ENGINE = { engine: 'eager', engineReason: 'private training' } as const;

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

/**
 * The vectorised plan of a Sequential model whose trainable layers are all dense on rank-2 inputs,
 * or `undefined` when per-example gradients need microbatches.
 */
function denseChain(model: LayersModel): Stage[] | undefined {
  if (model.getClassName() !== 'Sequential') return undefined;
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
      input: { shape: unknown[] };
    };
    if (layer.getClassName() !== 'Dense' || dense.input.shape.length !== 2) return undefined;
    stages.push({
      kind: 'dense',
      kernel: dense.kernel.read(),
      ...(dense.bias ? { bias: dense.bias.read() } : {}),
      activation: dense.activation,
    });
  }
  return stages;
}

export interface PrivateTrainingOptions {
  model: LayersModel;
  optimizer: Optimizer;
  loss: LossName;
  trainSet: DataSet;
  plan: PrivacyPlan;
  variables: () => Variable[];
  sideMetric: SideMetric;
  /** Runs a step with `Math.random` drawn from the job's generator (dropout masks). */
  withRandom: <T>(rng: Rng, fn: () => T) => T;
  /** Continue a checkpointed run. */
  resume?: PrivateState;
  /** The keyed stream's key (default: 32 fresh bytes from the operating system). */
  key?: Uint8Array;
  /** Force a per-example method (tests and benchmarks); default: vectorised where the model allows. */
  perExample?: PerExampleMethod;
}

export class PrivateTraining {
  readonly plan: PrivacyPlan;
  readonly method: PerExampleMethod;
  readonly #tf: TF;
  readonly #o: PrivateTrainingOptions;
  readonly #random: KeyedRandom;
  readonly #stages: Stage[] | undefined;
  readonly #rows: number;
  #steps: number;
  #seconds = 0;
  #timedSteps = 0;
  #reference: number | undefined;

  constructor(tf: TF, options: PrivateTrainingOptions) {
    const coupled = batchCoupledLayer(options.model.layers.map((l) => l.getClassName()));
    if (coupled) {
      throw new UnrecoverableError(
        'INVALID_SPEC',
        `The model has a ${coupled} layer, which cannot be trained with training.privacy: it normalises each row with statistics of the whole batch, so one row's gradient depends on the other rows.`,
      );
    }
    this.#tf = tf;
    this.#o = options;
    this.#rows = options.trainSet.x.shape[0] as number;
    this.plan = options.resume
      ? { ...options.plan, noiseMultiplier: options.resume.noiseMultiplier }
      : options.plan;
    this.#steps = options.resume?.steps ?? 0;
    this.#random = options.resume ? new KeyedRandom(options.resume.random) : KeyedRandom.create(options.key);
    this.#stages = options.perExample === 'microbatch' ? undefined : denseChain(options.model);
    if (options.perExample === 'vectorized' && !this.#stages)
      throw new Error('vectorised per-example gradients need a Sequential chain of dense layers');
    this.method = this.#stages ? 'vectorized' : 'microbatch';
  }

  /** Whether the budget ends training before `epoch` (1-based). */
  exhausted(epoch: number): boolean {
    return epoch > this.plan.epochs;
  }

  state(): PrivateState {
    return { steps: this.#steps, noiseMultiplier: this.plan.noiseMultiplier, random: this.#random.state() };
  }

  outcome(): PrivateOutcome {
    const secondsPerStep = this.#timedSteps ? this.#seconds / this.#timedSteps : 0;
    const nonPrivateSecondsPerStep = this.#reference ?? 0;
    return {
      plan: this.plan,
      steps: this.#steps,
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
    const tf = this.#tf;
    this.#reference ??= this.#measureReference();
    let sums: Sums = { loss: tf.scalar(0), metric: tf.scalar(0) };
    let rows = 0;
    const started = performance.now();
    let paused = 0;
    for (let s = 0; s < this.plan.stepsPerEpoch; s++) {
      const before = performance.now();
      const stop = await pause();
      paused += performance.now() - before;
      if (stop) {
        // Stopped inside the epoch (cancel, maximum runtime): its steps are counted, its sums dropped.
        tf.dispose([sums.loss, sums.metric]);
        return { loss: Number.NaN, metric: Number.NaN, rows, interrupted: true };
      }
      const sample = this.#random.poissonSample(this.#rows, this.plan.sampleRate);
      rows += sample.length;
      const step = this.#o.withRandom(rng, () => this.#step(sample));
      const next = { loss: tf.add(sums.loss, step.loss), metric: tf.add(sums.metric, step.metric) };
      tf.dispose([sums.loss, sums.metric, step.loss, step.metric]);
      sums = next;
      this.#steps++;
    }
    const out = {
      loss: (await sums.loss.data())[0] as number,
      metric: (await sums.metric.data())[0] as number,
      rows,
    };
    tf.dispose([sums.loss, sums.metric]);
    this.#seconds += (performance.now() - started - paused) / 1000;
    this.#timedSteps += this.plan.stepsPerEpoch;
    return out;
  }

  /** One private step on the sampled rows: the update is applied; returns the sums of loss and metric. */
  #step(sample: Int32Array): Sums {
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
      for (const v of vars) {
        const noise = tf.tensor(this.#random.normals(v.size), v.shape, 'float32');
        const sum = clipped.get(v.name) ?? tf.zerosLike(v);
        grads[v.name] = tf.div(tf.add(sum, tf.mul(noise, scale)), plan.expectedBatchSize);
      }
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

  /**
   * Seconds of one ordinary (non-private) gradient of the model on a batch of the expected size,
   * measured here on the same backend: the reference of the private step's cost. Nothing is applied.
   */
  #measureReference(): number {
    const tf = this.#tf;
    const { model, trainSet, loss } = this.#o;
    const size = Math.max(1, Math.round(this.plan.expectedBatchSize));
    const once = () =>
      tf.tidy(() => {
        const x = trainSet.x.slice(0, Math.min(size, this.#rows));
        const y = trainSet.y.slice(0, Math.min(size, this.#rows));
        const { value, grads } = tf.variableGrads(
          () => meanLoss(tf, loss, y, model.apply(x, { training: true }) as Tensor),
          this.#o.variables(),
        );
        Object.values(grads)[0]?.dataSync();
        return value.dataSync()[0];
      });
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
}
