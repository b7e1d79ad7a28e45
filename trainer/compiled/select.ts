/**
 * Which engine trains a run, decided per run and recorded with the reason: the compiled engine
 * whenever the backend is TensorFlow native, the graph addon is built and the model compiles; the
 * eager engine otherwise (and always when the worker is told `DESCENT_ENGINE=eager`). A private run
 * compiles when its per-example gradients are vectorised (a chain of dense layers); one that needs
 * microbatches (convolutions, recurrent layers, embeddings, base models) trains eager. A run resuming
 * a checkpoint stays on the checkpoint's engine, whose optimizer state it holds.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { EnginePreference } from '../../core/platform/runtime-config.ts';
import type { TF } from '../backend.ts';
import { EagerRunner } from '../eager-runner.ts';
import type { EngineName, RunnerRequest, SelectRunner } from '../engine.ts';
import { perExampleMethodOf } from '../private-step.ts';
import type { LstmKernel } from './forward-context.ts';
import { unsupportedModel } from './layers.ts';
import { type GraphAddon, loadGraphAddon } from './native.ts';
import { CompiledProgram } from './program.ts';
import { CompiledRunner, tensorValue } from './runner.ts';

/** What a worker can offer the compiled engine, settled at start. */
export interface CompiledSetup {
  preference: EnginePreference;
  /** The addon, or why there is none here (the reason eager runs). */
  addon?: GraphAddon;
  unavailable?: string;
  /** TensorFlow's thread pools (the worker's settings for TensorFlow native). */
  threads: { intraOp: number; interOp: number };
  /**
   * The fused LSTM's kernel: descent's own on a CPU (1.6× TensorFlow's `BlockLSTMV2` here),
   * `BlockLSTMV2` on a GPU, where it has a kernel and descent's op has none.
   */
  lstmKernel: LstmKernel;
}

/** The compiled engine's setup for a worker on `backend` (the addon loads only on TensorFlow native). */
export function compiledSetup(
  backend: {
    name: string;
    device?: 'cpu' | 'gpu';
    tensorflow?: { intraOpThreads: number; interOpThreads: number };
  },
  preference: EnginePreference = 'auto',
): CompiledSetup {
  const base = {
    preference,
    threads: {
      intraOp: backend.tensorflow?.intraOpThreads ?? 1,
      interOp: backend.tensorflow?.interOpThreads ?? 1,
    },
    lstmKernel: backend.device === 'gpu' ? ('tensorflow' as const) : ('descent' as const),
  };
  if (preference === 'eager') return { ...base, unavailable: 'DESCENT_ENGINE=eager' };
  if (backend.name !== 'tensorflow')
    return {
      ...base,
      unavailable: `the backend is ${backend.name}; the compiled engine runs on TensorFlow native (npm run setup:native)`,
    };
  const loaded = loadGraphAddon();
  return loaded.addon
    ? { ...base, addon: loaded.addon }
    : { ...base, unavailable: loaded.error ?? 'the graph addon did not load' };
}

const COMPILED_REASON =
  'the whole step (forward, loss, gradients, optimizer update) runs as one TensorFlow graph';

const PRIVATE_COMPILED_REASON =
  'private training with vectorised per-example gradients: the whole step (forward, per-example clipping, noise, optimizer update) runs as one TensorFlow graph';

/**
 * Why a private run must train on the eager engine whatever the worker offers (its per-example
 * gradients need microbatches), or `undefined`.
 */
export function privateOnEager(request: RunnerRequest): string | undefined {
  if (!request.privacy) return undefined;
  if (request.perExample === 'microbatch')
    return 'private training with microbatched per-example gradients (as asked) runs on the eager engine';
  const method = perExampleMethodOf(request.model);
  return method.method === 'microbatch'
    ? `private training of a model with ${method.because} runs per example on the eager engine`
    : undefined;
}

/** Chooses compiled when it can; see the module comment. */
export function selectRunner(setup: CompiledSetup): SelectRunner {
  return (tf, request) => {
    if (request.resumeEngine === 'eager')
      return { runner: new EagerRunner(tf, request), reason: 'it resumes a checkpoint of the eager engine' };
    const perExample = privateOnEager(request);
    if (perExample) return fallback(tf, request, perExample);
    const why = setup.unavailable ?? unsupportedModel(request.model);
    if (why === undefined && setup.addon) {
      try {
        const reason = request.privacy ? PRIVATE_COMPILED_REASON : COMPILED_REASON;
        return { runner: compiledRunner(tf, setup.addon, setup, request), reason };
      } catch (error) {
        return fallback(tf, request, `the step graph could not be built: ${(error as Error).message}`);
      }
    }
    return fallback(tf, request, why ?? 'the graph addon did not load');
  };
}

/** Eager, unless the run resumes a compiled checkpoint (then it must wait for a worker that compiles). */
function fallback(tf: TF, request: RunnerRequest, why: string) {
  if (request.resumeEngine === ('compiled' satisfies EngineName)) {
    throw new Error(
      `its checkpoint was written by the compiled engine, which cannot run on this worker (${why}); another attempt will resume it`,
    );
  }
  return { runner: new EagerRunner(tf, request), reason: why };
}

/**
 * How many slices of each batch run concurrently: one per thread for a model with a recurrent layer
 * (its time steps are a serial chain of products too small to split across threads: on bench:train's
 * LSTM two towers of 32 rows ran 1.4–1.7× as fast as one of 64 on two free cores), with at least 32
 * rows each; one otherwise (dense and convolutional products use the threads themselves), and always
 * one with batch normalization (whose statistics are the whole batch's).
 */
export function towersFor(model: LayersModel, threads: number, batchSize: number): number {
  const classes = model.layers.map((l) => l.getClassName());
  if (!classes.some((c) => c === 'LSTM' || c === 'GRU') || classes.includes('BatchNormalization')) return 1;
  return Math.max(1, Math.min(threads, Math.floor(batchSize / 32)));
}

function compiledRunner(
  tf: TF,
  addon: GraphAddon,
  setup: CompiledSetup,
  request: RunnerRequest,
): CompiledRunner {
  const { model, trainSet } = request;
  const program = new CompiledProgram({
    addon,
    model,
    loss: request.loss,
    optimizer: request.spec.training.optimizer,
    clipping: request.spec.training.gradientClipping,
    data: {
      x: tensorValue(trainSet.x),
      y: tensorValue(trainSet.y),
      ...(trainSet.labels ? { labels: tensorValue(trainSet.labels) } : {}),
      ...(trainSet.weights ? { rowWeights: tensorValue(trainSet.weights) } : {}),
    },
    threads: setup.threads,
    towers: request.privacy ? 1 : towersFor(model, setup.threads.intraOp, request.batchSize),
    lstmKernel: setup.lstmKernel,
    ...(request.privacy
      ? {
          privacy: {
            clipNorm: request.privacy.clipNorm,
            noiseMultiplier: request.privacy.noiseMultiplier,
            expectedBatchSize: request.privacy.expectedBatchSize,
          },
        }
      : {}),
  });
  try {
    program.setWeights(model.getWeights().map(tensorValue));
  } catch (error) {
    program.close();
    throw error;
  }
  return new CompiledRunner(tf, program, model, request.batchSize, program.hasDropout);
}
