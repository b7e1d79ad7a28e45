/**
 * What happens between epochs for one attempt of one job: progress written to the record (at most
 * every `progressIntervalMs`), the history to `metrics.json`, checkpoints (every N epochs or seconds,
 * and whenever training is about to stop), the job's maximum runtime, a cancel seen in the record, the
 * worker's stop signal and a sweep's stopping rule. Everything is timed by the injected clock, and
 * nothing here touches a tensor (the checkpointer does), so the cadence is tested without TensorFlow.
 */
import { type EpochMetrics, isTerminal, type JobRecord } from '../core/jobs/job-record.ts';
import type { JobStore } from '../core/jobs/job-store.ts';
import { type Fence, FencedError, type JobLifecycle } from '../core/jobs/lifecycle.ts';
import type { StopRule } from '../core/sweeps/sweep-controller.ts';
import type { TrainHooks, TrainState } from './engine.ts';

/** A training phase: a k-fold's fold (0-based) or the delivered model. */
export type Phase = number | 'final';

/** Saves a checkpoint of the model and optimizer in `context` (the real one writes tensors). */
export interface Checkpointer<Context> {
  save(
    context: Context,
    phase: Phase,
    folds: Record<string, unknown>[],
  ): Promise<{ epoch: number; savedAt: string }>;
}

/** Why the session asked training to stop early. */
export type StopCause = 'shutdown' | 'timeout' | 'cancel' | 'stop-rule';

export interface SessionDeps<Context> {
  readonly lifecycle: JobLifecycle;
  readonly now: () => Date;
  readonly checkpoints: Checkpointer<Context>;
  /** The worker is stopping: checkpoint and hand the job back. */
  readonly signal: AbortSignal;
  /** @default 1000 */
  readonly progressIntervalMs?: number;
  /** A sweep's stopping rule for this trial, checked on the delivered model's epochs. */
  readonly stopRule?: StopRule;
  /** Called after every epoch (the peak of tensor memory is sampled there). */
  readonly onEpoch?: () => void;
}

export class TrainingSession<Context extends { state: TrainState }> {
  /** The delivered model's per-epoch history (resumed ones included). */
  readonly history: EpochMetrics[] = [];
  /** Completed folds' reports (k-fold). */
  readonly folds: Record<string, unknown>[] = [];
  /** Set once a cancel was seen in the record. */
  cancelRequested = false;
  timedOut = false;
  /** Why a sweep's stopping rule ended this trial. */
  ruledOut: string | undefined;

  readonly #deps: SessionDeps<Context>;
  readonly #tenant: string;
  readonly #job: JobRecord;
  readonly #fence: Fence;
  readonly #jobs: JobStore;
  readonly #startedAt: number;
  #lastFlush = Number.NEGATIVE_INFINITY;
  #lastCheckpoint: number;
  #metricsEtag: string | null = null;

  constructor(deps: SessionDeps<Context>, tenant: string, job: JobRecord) {
    this.#deps = deps;
    this.#tenant = tenant;
    this.#job = job;
    this.#fence = { attempt: job.attempt };
    this.#jobs = deps.lifecycle.jobs;
    this.#startedAt = Date.parse(job.startedAt ?? job.updatedAt);
    this.#lastCheckpoint = deps.now().getTime();
  }

  /** Reads where `metrics.json` stands, so the first write is fenced against another attempt's. */
  async begin(): Promise<void> {
    this.#metricsEtag = (await this.#jobs.readMetrics(this.#tenant, this.#job.id))?.etag ?? null;
  }

  /** Whether the record still names this attempt as the owner of a live job. */
  readonly owns = async (): Promise<boolean> => {
    const found = await this.#jobs.find(this.#tenant, this.#job.id);
    return (
      found !== undefined && found.record.attempt === this.#fence.attempt && !isTerminal(found.record.status)
    );
  };

  /** Why training should stop now, if it should. */
  get stopCause(): StopCause | undefined {
    if (this.#deps.signal.aborted) return 'shutdown';
    if (this.cancelRequested) return 'cancel';
    if (this.timedOut) return 'timeout';
    if (this.ruledOut) return 'stop-rule';
    return undefined;
  }

  /** The hooks of one phase's training loop; `label` names the phase in the record (`fold 2/5`). */
  hooks(phase: Phase, label: string | undefined, onInfo: (text: string) => void): TrainHooks<Context> {
    const epochs = this.#job.spec.training.epochs;
    const { everyEpochs, everySeconds } = this.#job.spec.training.checkpoint;
    return {
      onEpoch: async (metrics, context) => {
        const final = phase === 'final';
        if (final) this.history.push(metrics);
        this.#deps.onEpoch?.();
        const now = this.#deps.now().getTime();
        if (now - this.#startedAt > this.#job.spec.resources.maxRuntimeSeconds * 1000) this.timedOut = true;
        const stopping = this.#deps.signal.aborted || this.timedOut;
        if (now - this.#lastFlush >= (this.#deps.progressIntervalMs ?? 1000) || stopping) {
          this.#lastFlush = now;
          await this.progress(metrics, label, final);
        }
        const due =
          (everyEpochs !== undefined && metrics.epoch % everyEpochs === 0) ||
          now - this.#lastCheckpoint >= everySeconds * 1000 ||
          stopping ||
          this.cancelRequested;
        if (due && metrics.epoch < epochs) await this.checkpoint(context, phase);
        if (final && this.#deps.stopRule && !stopping && !this.cancelRequested)
          this.ruledOut = await this.#deps.stopRule(this.history);
        // Stop on what was seen before this epoch's checkpoint decision, so a stop always has its checkpoint
        // (a signal that arrives during the writes above is acted on after the next epoch).
        return stopping || this.cancelRequested || this.ruledOut ? 'stop' : undefined;
      },
      onInfo,
    };
  }

  /** Writes the latest epoch to the record (and, for the delivered model, the history to metrics.json). */
  async progress(metrics: EpochMetrics, phase: string | undefined, final: boolean): Promise<void> {
    const record = await this.#deps.lifecycle.record(this.#tenant, this.#job.id, this.#fence, () => ({
      progress: {
        epoch: metrics.epoch,
        epochs: this.#job.spec.training.epochs,
        loss: metrics.loss,
        ...(metrics.valLoss !== undefined ? { valLoss: metrics.valLoss } : {}),
        ...(phase ? { phase } : {}),
      },
    }));
    if (record.status === 'CANCELLING') this.cancelRequested = true;
    if (final) await this.writeMetrics();
  }

  /** `metrics.json` is written by compare-and-swap too, so two attempts never interleave their epochs. */
  async writeMetrics(): Promise<void> {
    this.#metricsEtag = await this.#jobs.writeMetrics(
      this.#tenant,
      this.#job.id,
      this.history,
      this.#metricsEtag,
      async () => {
        // Someone else wrote it: a stale attempt (we still own the record: take it back) or the new owner.
        if (!(await this.owns()))
          throw new FencedError(`attempt ${this.#fence.attempt} lost metrics.json to another attempt`);
      },
    );
  }

  async checkpoint(context: Context, phase: Phase): Promise<void> {
    const pointer = await this.#deps.checkpoints.save(context, phase, this.folds);
    this.#lastCheckpoint = this.#deps.now().getTime();
    await this.#deps.lifecycle.record(this.#tenant, this.#job.id, this.#fence, () => ({
      checkpoint: {
        epoch: pointer.epoch,
        phase: String(phase),
        savedAt: pointer.savedAt,
        attempt: this.#fence.attempt,
      },
    }));
  }
}
