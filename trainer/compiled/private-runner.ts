/**
 * A private run's steps on the compiled engine: each step is one run of the job's graph
 * (private-step-graph.ts) fed the rows and the noise that `drawStep` drew from the run's keyed stream,
 * the very draws the eager engine would use, and, when the model has dropout, a seed drawn from the
 * job's generator (as the compiled engine's ordinary steps draw it).
 */
import type { Rng } from '../../core/platform/random.ts';
import { medianSeconds, type PrivateSteps, type StepDraws } from '../private-step.ts';
import type { CompiledProgram } from './program.ts';

export class CompiledPrivateSteps implements PrivateSteps {
  readonly engine = 'compiled' as const;
  readonly method = 'vectorized' as const;
  readonly sizes: number[];
  readonly #program: CompiledProgram;
  readonly #seed = new Int32Array(2);

  constructor(program: CompiledProgram) {
    this.#program = program;
    this.sizes = program.noiseSizes;
  }

  step(draws: StepDraws, rng: Rng): void {
    if (this.#program.hasDropout) {
      this.#seed[0] = Math.floor(rng() * 2 ** 31);
      this.#seed[1] = Math.floor(rng() * 2 ** 31);
    }
    this.#program.privateStep(draws.sample, draws.noise, this.#seed);
  }

  async takeSums(): Promise<{ loss: number; metric: number }> {
    return this.#program.takeSums();
  }

  referenceSeconds(rows: number): number {
    const indices = Int32Array.from({ length: rows }, (_, i) => i);
    return medianSeconds(() => this.#program.referenceStep(indices, this.#seed));
  }

  /** The program is the runner's (CompiledRunner closes it). */
  dispose(): void {}
}
