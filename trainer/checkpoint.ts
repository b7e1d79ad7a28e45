/**
 * Checkpoints: the model's weights, the optimizer's state (in the form of the engine that trained,
 * which the run resumes on) and the training state (epoch, history,
 * RNG, schedule, early stopping) saved under `checkpoints/`, so a redelivered job resumes where the
 * last one stopped. Files are written first, then the `latest.json` pointer by compare-and-swap: a
 * crash mid-write leaves the previous checkpoint intact, and an attempt that lost the job to another
 * one is refused (fenced) instead of overwriting it.
 */
import type { Tensor } from '@tensorflow/tfjs';
import { z } from 'zod';
import { epochMetrics } from '../core/jobs/job-record.ts';
import { FencedError } from '../core/jobs/lifecycle.ts';
import type { ObjectStore } from '../core/platform/ports.ts';
import { VersionedDocuments } from '../core/platform/versioned-document.ts';
import type { TF } from './backend.ts';
import type { EngineName, EpochContext } from './engine.ts';
import { faultPoint } from './faults.ts';
import type { OptimizerState } from './optimizer-state.ts';

const weightSpec = z.object({ name: z.string(), shape: z.array(z.int()), dtype: z.string() });
type WeightSpec = z.infer<typeof weightSpec>;
/** JSON writes a non-finite number as null: read it back as "none". */
const optionalNumber = z
  .number()
  .nullish()
  .transform((v) => v ?? undefined);

/** `latest.json`: which files hold the latest checkpoint, and the training state to resume with. */
export const checkpointPointer = z.object({
  version: z.literal(1),
  attempt: z.int(),
  /** The fold being trained (0-based), or `final` for the delivered model. */
  phase: z.union([z.int().min(0), z.literal('final')]),
  epoch: z.int(),
  savedAt: z.string(),
  state: z.object({
    epoch: z.int(),
    history: z.array(epochMetrics),
    rngState: z.number(),
    schedule: z.object({ rate: z.number(), best: optionalNumber, wait: z.number() }),
    earlyStopping: z.object({ best: optionalNumber, bestEpoch: z.int(), wait: z.number() }).optional(),
    /** Private training: steps taken (the accountant's count), σ, and the keyed stream's key and position. */
    privacy: z
      .object({
        steps: z.int().min(0),
        noiseMultiplier: z.number().positive(),
        random: z.object({ key: z.string(), block: z.int().min(0) }),
      })
      .optional(),
  }),
  /** Completed folds' reports (k-fold), so a resume skips them. */
  folds: z.array(z.record(z.string(), z.unknown())),
  files: z.object({ weights: z.string(), optimizer: z.string(), best: z.string().optional() }),
  specs: z.object({
    weights: z.array(weightSpec),
    optimizer: z.array(weightSpec),
    best: z.array(weightSpec).optional(),
  }),
  /** Optimizer state that is not a tensor (Adam's running β powers, Adamax's iteration). */
  optimizerScalars: z.record(z.string(), z.number()),
  /**
   * The engine that wrote it: its optimizer state is in that engine's form, and the run resumes on
   * it. Absent in checkpoints from before the compiled engine: eager.
   */
  engine: z.enum(['eager', 'compiled']).optional(),
});
export type CheckpointPointer = z.infer<typeof checkpointPointer>;

export interface LoadedCheckpoint {
  pointer: CheckpointPointer;
  weights: Tensor[];
  optimizer: OptimizerState;
  /** The best epoch's weights, kept for early stopping's `restoreBestWeights`. */
  bestWeights?: Tensor[];
  engine: EngineName;
}

const toArrayBuffer = (bytes: Uint8Array) =>
  bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;

export class Checkpoints {
  readonly #store: ObjectStore;
  readonly #pointers: VersionedDocuments<typeof checkpointPointer>;
  readonly #prefix: string;
  readonly #attempt: number;
  readonly #now: () => Date;
  /** ETag of the pointer this attempt last read or wrote (`null`: none existed). */
  #etag: string | null | undefined;
  readonly #owns: () => Promise<boolean>;

  /** `owns` tells whether this attempt still owns the job (the record is the judge when the pointer moved). */
  constructor(
    store: ObjectStore,
    prefix: string,
    attempt: number,
    owns: () => Promise<boolean> = async () => false,
    now: () => Date = () => new Date(),
  ) {
    this.#store = store;
    this.#pointers = new VersionedDocuments(store, checkpointPointer, { what: 'checkpoint pointer' });
    this.#prefix = prefix;
    this.#attempt = attempt;
    this.#owns = owns;
    this.#now = now;
  }

  get pointerKey(): string {
    return `${this.#prefix}latest.json`;
  }

  /** The latest checkpoint, or `undefined`; remembers its ETag for the next save. */
  async load(tf: TF): Promise<LoadedCheckpoint | undefined> {
    const found = await this.#pointers.read(this.pointerKey);
    this.#etag = found?.etag ?? null;
    if (!found) return undefined;
    const pointer = found.value;
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
        scalars: pointer.optimizerScalars,
      },
      ...(best && pointer.specs.best
        ? { bestWeights: decode(best.body, pointer.specs.best).map((w) => w.tensor) }
        : {}),
      engine: pointer.engine ?? 'eager',
    };
  }

  async save(
    tf: TF,
    { model, engine, captureOptimizer, state, bestWeights }: EpochContext,
    phase: number | 'final',
    folds: Record<string, unknown>[],
  ): Promise<z.input<typeof checkpointPointer>> {
    if (this.#etag === undefined) this.#etag = (await this.#store.head(this.pointerKey))?.etag ?? null;
    const encode = (tensors: Tensor[]) =>
      tf.io.encodeWeights(tensors.map((tensor, i) => ({ name: `w${i}`, tensor })));
    const modelWeights = await encode(model.getWeights());
    const best = bestWeights ? await encode(bestWeights) : undefined;
    const optimizerState = await captureOptimizer();
    let optimizerWeights: Awaited<ReturnType<typeof tf.io.encodeWeights>>;
    try {
      optimizerWeights = await tf.io.encodeWeights(optimizerState.tensors);
    } finally {
      if (optimizerState.owned) tf.dispose(optimizerState.tensors.map((t) => t.tensor));
    }
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
    const pointer: z.input<typeof checkpointPointer> = {
      version: 1,
      attempt: this.#attempt,
      phase,
      epoch: state.epoch,
      savedAt: this.#now().toISOString(),
      state,
      folds,
      files,
      specs: {
        weights: modelWeights.specs as WeightSpec[],
        optimizer: optimizerWeights.specs as WeightSpec[],
        ...(best ? { best: best.specs as WeightSpec[] } : {}),
      },
      optimizerScalars: optimizerState.scalars,
      engine,
    };
    let previous = this.#etag ? (await this.#pointers.read(this.pointerKey))?.value : undefined;
    this.#etag = await this.#pointers.overwrite(this.pointerKey, pointer, this.#etag, async () => {
      // The pointer moved: a stale attempt wrote it (we still own the job: take it back) or the new owner did.
      if (!(await this.#owns()))
        throw new FencedError(`attempt ${this.#attempt} lost the checkpoint to another attempt`);
      previous = (await this.#pointers.read(this.pointerKey))?.value;
    });
    // The previous checkpoint's files are no longer pointed at.
    for (const file of Object.values(previous?.files ?? {}) as string[]) {
      if (!Object.values(files).includes(file))
        await this.#store.delete(`${this.#prefix}${file}`).catch(() => {});
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
