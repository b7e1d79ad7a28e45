/**
 * The compiled engine's epochs: each step is one run of the job's TensorFlow graph (program.ts),
 * fed only the batch's row indices (the same ones, in the same order, as the eager path gathers)
 * and, when the model has dropout, a seed drawn from the job's generator. The tfjs model is brought
 * up to date after every epoch, so validation, early stopping's best weights, checkpoints and the
 * artifacts read it as they do on the eager path.
 */
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import type { seededRng } from '../../core/platform/random.ts';
import type { TF } from '../backend.ts';
import type { EpochRunner, EpochSums, Pause } from '../engine.ts';
import type { OptimizerState } from '../optimizer-state.ts';
import type { PrivateSteps } from '../private-step.ts';
import { DT, type TensorValue } from './native.ts';
import { CompiledPrivateSteps } from './private-runner.ts';
import type { CompiledProgram } from './program.ts';

/** A tfjs tensor's values for the graph (float32 rows). */
export function tensorValue(t: Tensor): TensorValue {
  return { dtype: DT.float32, shape: [...t.shape], data: t.dataSync() as Float32Array };
}

export class CompiledRunner implements EpochRunner {
  readonly engine = 'compiled' as const;
  readonly #tf: TF;
  readonly #program: CompiledProgram;
  readonly #model: LayersModel;
  readonly #batchSize: number;
  readonly #dropout: boolean;
  readonly #seed = new Int32Array(2);
  /** A private program's steps (the engine's DP-SGD loop runs them instead of `runEpoch`). */
  readonly privateSteps?: PrivateSteps;

  constructor(tf: TF, program: CompiledProgram, model: LayersModel, batchSize: number, dropout: boolean) {
    if (program.noiseSizes.length > 0) this.privateSteps = new CompiledPrivateSteps(program);
    this.#tf = tf;
    this.#program = program;
    this.#model = model;
    this.#batchSize = batchSize;
    this.#dropout = dropout;
  }

  setLearningRate(rate: number): void {
    this.#program.setLearningRate(rate);
  }

  async runEpoch(order: Int32Array, rng: ReturnType<typeof seededRng>, pause: Pause): Promise<EpochSums> {
    const n = order.length;
    for (let start = 0; start < n; start += this.#batchSize) {
      if (await pause()) {
        this.#program.takeSums(); // resets the graph's sums; the partial epoch is not recorded
        return { loss: Number.NaN, metric: Number.NaN, interrupted: true };
      }
      if (this.#dropout) {
        this.#seed[0] = Math.floor(rng() * 2 ** 31);
        this.#seed[1] = Math.floor(rng() * 2 ** 31);
      }
      this.#program.step(order.subarray(start, Math.min(n, start + this.#batchSize)), this.#seed);
    }
    return this.#program.takeSums();
  }

  syncModel(): void {
    const tf = this.#tf;
    const tensors = this.#program.readWeights().map((v) => tf.tensor(v.data as Float32Array, v.shape));
    try {
      this.#model.setWeights(tensors);
    } finally {
      tf.dispose(tensors);
    }
  }

  /** Every optimizer variable by name (`slot<i>/<kind>`, `beta1Power`, …); the tensors are the caller's to dispose. */
  async captureOptimizer(): Promise<OptimizerState> {
    const variables = this.#program.optimizerVariables;
    const values = this.#program.read(variables.map((v) => v.variable));
    return {
      tensors: variables.map((v, i) => {
        const value = values[i] as TensorValue;
        return { name: v.name, tensor: this.#tf.tensor(value.data as Float32Array, value.shape) };
      }),
      scalars: {},
      owned: true,
    };
  }

  async restoreOptimizer(state: OptimizerState): Promise<void> {
    const byName = new Map(state.tensors.map((t) => [t.name, t.tensor]));
    const values = new Map(
      this.#program.optimizerVariables.map((v) => {
        const tensor = byName.get(v.name);
        if (!tensor) throw new Error(`the checkpoint's optimizer state has no ${v.name}`);
        return [v.variable, tensorValue(tensor)] as const;
      }),
    );
    this.#program.load(values);
  }

  dispose(): void {
    this.#program.close();
  }
}
