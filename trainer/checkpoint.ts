/**
 * Checkpoints: the model's weights, the optimizer's state and the training state (epoch, history,
 * RNG, schedule, early stopping) saved under `checkpoints/`, so a redelivered job resumes where the
 * last one stopped. Files are written first, then the `latest.json` pointer by compare-and-swap: a
 * crash mid-write leaves the previous checkpoint intact, and an attempt that lost the job to another
 * one is refused (fenced) instead of overwriting it.
 */
import type { Tensor } from '@tensorflow/tfjs';
import { fromJson, toJson } from '../core/jobs/job-store.ts';
import { PreconditionFailedError } from '../core/platform/errors.ts';
import type { ObjectStore } from '../core/platform/ports.ts';
import type { TF } from './backend.ts';
import type { EpochContext, TrainState } from './engine.ts';
import { faultPoint } from './faults.ts';
import { captureOptimizer, type OptimizerState } from './optimizer-state.ts';

type WeightSpec = { name: string; shape: number[]; dtype: string };

export interface CheckpointPointer {
  version: 1;
  attempt: number;
  /** The fold being trained (0-based), or `final` for the delivered model. */
  phase: number | 'final';
  epoch: number;
  savedAt: string;
  state: TrainState;
  /** Completed folds' reports (k-fold), so a resume skips them. */
  folds: Record<string, unknown>[];
  files: { weights: string; optimizer: string; best?: string };
  specs: { weights: WeightSpec[]; optimizer: WeightSpec[]; best?: WeightSpec[] };
  /** Optimizer state that is not a tensor (Adam's running β powers, Adamax's iteration). */
  optimizerScalars: Record<string, number>;
}

export interface LoadedCheckpoint {
  pointer: CheckpointPointer;
  weights: Tensor[];
  optimizer: OptimizerState;
  /** The best epoch's weights, kept for early stopping's `restoreBestWeights`. */
  bestWeights?: Tensor[];
}

/** This attempt no longer owns the job (another attempt claimed it, or it ended meanwhile). */
export class FencedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FencedError';
  }
}

const toArrayBuffer = (bytes: Uint8Array) =>
  bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;

export class Checkpoints {
  readonly #store: ObjectStore;
  readonly #prefix: string;
  readonly #attempt: number;
  /** ETag of the pointer this attempt last read or wrote (`null`: none existed). */
  #etag: string | null | undefined;

  readonly #owns: () => Promise<boolean>;

  /** `owns` tells whether this attempt still owns the job (the record is the judge when the pointer moved). */
  constructor(
    store: ObjectStore,
    prefix: string,
    attempt: number,
    owns: () => Promise<boolean> = async () => false,
  ) {
    this.#store = store;
    this.#prefix = prefix;
    this.#attempt = attempt;
    this.#owns = owns;
  }

  get pointerKey(): string {
    return `${this.#prefix}latest.json`;
  }

  /** The latest checkpoint, or `undefined`; remembers its ETag for the next save. */
  async load(tf: TF): Promise<LoadedCheckpoint | undefined> {
    const object = await this.#store.get(this.pointerKey);
    this.#etag = object?.etag ?? null;
    if (!object) return undefined;
    const pointer = fromJson(object.body) as CheckpointPointer;
    const [weights, optimizer, best] = await Promise.all([
      this.#store.get(`${this.#prefix}${pointer.files.weights}`),
      this.#store.get(`${this.#prefix}${pointer.files.optimizer}`),
      pointer.files.best ? this.#store.get(`${this.#prefix}${pointer.files.best}`) : undefined,
    ]);
    if (!weights || !optimizer || (pointer.files.best && !best)) return undefined;
    const decode = (bytes: Uint8Array, specs: WeightSpec[]) => {
      const map = tf.io.decodeWeights(
        toArrayBuffer(bytes),
        specs as Parameters<typeof tf.io.decodeWeights>[1],
      );
      return specs.map((s) => ({ name: s.name, tensor: map[s.name] as Tensor }));
    };
    return {
      pointer,
      weights: decode(weights.body, pointer.specs.weights).map((w) => w.tensor),
      optimizer: {
        tensors: decode(optimizer.body, pointer.specs.optimizer),
        scalars: pointer.optimizerScalars ?? {},
      },
      ...(best && pointer.specs.best
        ? { bestWeights: decode(best.body, pointer.specs.best).map((w) => w.tensor) }
        : {}),
    };
  }

  async save(
    tf: TF,
    { model, optimizer, state, bestWeights }: EpochContext,
    phase: number | 'final',
    folds: Record<string, unknown>[],
  ): Promise<CheckpointPointer> {
    if (this.#etag === undefined) this.#etag = (await this.#store.head(this.pointerKey))?.etag ?? null;
    const encode = (tensors: Tensor[]) =>
      tf.io.encodeWeights(tensors.map((tensor, i) => ({ name: `w${i}`, tensor })));
    const modelWeights = await encode(model.getWeights());
    const best = bestWeights ? await encode(bestWeights) : undefined;
    const optimizerState = await captureOptimizer(optimizer);
    const optimizerWeights = await tf.io.encodeWeights(optimizerState.tensors);
    const stem = `${phase === 'final' ? 'final' : `fold${phase}`}-e${state.epoch}-a${this.#attempt}`;
    const files = {
      weights: `${stem}.weights.bin`,
      optimizer: `${stem}.optimizer.bin`,
      ...(best ? { best: `${stem}.best.bin` } : {}),
    };
    const concat = (data: ArrayBuffer | ArrayBuffer[]) =>
      new Uint8Array(Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data);
    await this.#store.put(`${this.#prefix}${files.weights}`, concat(modelWeights.data));
    await this.#store.put(`${this.#prefix}${files.optimizer}`, concat(optimizerWeights.data));
    if (best && files.best) await this.#store.put(`${this.#prefix}${files.best}`, concat(best.data));
    faultPoint('kill-during-checkpoint');
    const pointer: CheckpointPointer = {
      version: 1,
      attempt: this.#attempt,
      phase,
      epoch: state.epoch,
      savedAt: new Date().toISOString(),
      state,
      folds,
      files,
      specs: {
        weights: modelWeights.specs as WeightSpec[],
        optimizer: optimizerWeights.specs as WeightSpec[],
        ...(best ? { best: best.specs as WeightSpec[] } : {}),
      },
      optimizerScalars: optimizerState.scalars,
    };
    let previous = this.#etag ? await this.#store.get(this.pointerKey) : undefined;
    for (;;) {
      try {
        const { etag } = await this.#store.put(
          this.pointerKey,
          toJson(pointer),
          this.#etag
            ? { ifMatch: this.#etag, contentType: 'application/json' }
            : { ifNoneMatch: '*', contentType: 'application/json' },
        );
        this.#etag = etag;
        break;
      } catch (error) {
        if (!(error instanceof PreconditionFailedError)) throw error;
        // The pointer moved: a stale attempt wrote it (we still own the job: take it back) or the new owner did.
        if (!(await this.#owns()))
          throw new FencedError(`attempt ${this.#attempt} lost the checkpoint to another attempt`);
        previous = await this.#store.get(this.pointerKey);
        this.#etag = previous?.etag ?? null;
      }
    }
    // The previous checkpoint's files are no longer pointed at.
    if (previous) {
      const old = fromJson(previous.body) as CheckpointPointer;
      for (const file of Object.values(old.files)) {
        if (!Object.values(files).includes(file))
          await this.#store.delete(`${this.#prefix}${file}`).catch(() => {});
      }
    }
    return pointer;
  }

  /** Removes every checkpoint object (after success: the model is the result). */
  async clear(): Promise<void> {
    let cursor: string | undefined;
    do {
      const page = await this.#store.list(this.#prefix, cursor ? { cursor } : {});
      await Promise.all(page.objects.map((o) => this.#store.delete(o.key)));
      cursor = page.nextCursor;
    } while (cursor);
  }
}
