/**
 * What happens between epochs for one attempt of one job: progress written to the record (at most
 * every `progressIntervalMs`), the history to `metrics.json`, checkpoints (every N epochs or seconds,
 * and whenever training is about to stop), the job's maximum runtime, a cancel seen in the record, the
 * worker's stop signal and a sweep's stopping rule. Everything is timed by the injected clock, and
 * nothing here touches a tensor (the checkpointer does), so the cadence is tested without TensorFlow.
 *
 * The same session paces the phases that are not epochs (loading the data, encoding it, evaluating
 * the model): `pace` gives the event loop a turn (the queue heartbeat, the stop signal) and applies a
 * cancel, the maximum runtime and a shutdown there too; `interrupted` lets a long epoch stop early
 * for a cancel or the maximum runtime.
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

/** A phase that is not training stopped for a cancel, the maximum runtime or a shutdown. */
export class PhaseStopped extends Error {
  readonly stopCause: Exclude<StopCause, 'stop-rule'>;
  /** What was running, in words (`evaluating the model`). */
  readonly phase: string;
  constructor(cause: Exclude<StopCause, 'stop-rule'>, phase: string) {
    super(`${phase} stopped (${cause})`);
    this.name = 'PhaseStopped';
    this.stopCause = cause;
    this.phase = phase;
  }
}

/** How often `pace` gives the event loop a turn, in ms of the injected clock. */
export const PACE_MS = 100;
/**
 * A cancel or the maximum runtime stops an epoch before its end once it has run this long (a shorter
 * epoch ends first, so that its checkpoint keeps the work, as the docs promise).
 */
export const EPOCH_INTERRUPT_MS = 60_000;

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
  /** @default EPOCH_INTERRUPT_MS */
  readonly epochInterruptMs?: number;
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
  #lastPace = Number.NEGATIVE_INFINITY;
  #lastPoll = Number.NEGATIVE_INFINITY;
  #epochStartedAt: number;

  constructor(deps: SessionDeps<Context>, tenant: string, job: JobRecord) {
    this.#deps = deps;
    this.#tenant = tenant;
    this.#job = job;
    this.#fence = { attempt: job.attempt };
    this.#jobs = deps.lifecycle.jobs;
    this.#startedAt = Date.parse(job.startedAt ?? job.updatedAt);
    this.#lastCheckpoint = deps.now().getTime();
    this.#epochStartedAt = this.#lastCheckpoint;
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

  /**
   * Between steps of a phase that is not an epoch: at most every `PACE_MS` yields to the event loop,
   * then applies the maximum runtime, a cancel seen in the record (read at the progress cadence) and
   * the worker's stop signal by throwing `PhaseStopped`; `FencedError` if the job is no longer this
   * attempt's. `phase` says what was running, for the job's event.
   */
  async pace(phase: string): Promise<void> {
    const now = this.#deps.now().getTime();
    if (now - this.#lastPace < PACE_MS) return;
    this.#lastPace = now;
    await new Promise<void>((resolve) => setImmediate(resolve));
    await this.#poll(now);
    const cause = this.stopCause;
    if (cause && cause !== 'stop-rule') throw new PhaseStopped(cause, phase);
  }

  /**
   * Inside an epoch: whether to stop before its end, for a cancel or the maximum runtime, once the
   * epoch has run `EPOCH_INTERRUPT_MS` (a shorter one ends and checkpoints first; a shutdown always
   * lets the epoch end, so that its checkpoint keeps the work).
   */
  readonly interrupted = async (): Promise<boolean> => {
    const now = this.#deps.now().getTime();
    await this.#poll(now);
    const long = now - this.#epochStartedAt >= (this.#deps.epochInterruptMs ?? EPOCH_INTERRUPT_MS);
    return long && (this.cancelRequested || this.timedOut);
  };

  /** The runtime against the maximum; the record (at the progress cadence) for a cancel or a new owner. */
  async #poll(now: number): Promise<void> {
    if (now - this.#startedAt > this.#job.spec.resources.maxRuntimeSeconds * 1000) this.timedOut = true;
    if (now - this.#lastPoll < (this.#deps.progressIntervalMs ?? 1000)) return;
    this.#lastPoll = now;
    const found = (await this.#jobs.find(this.#tenant, this.#job.id))?.record;
    if (!found || found.attempt !== this.#fence.attempt || isTerminal(found.status))
      throw new FencedError(`attempt ${this.#fence.attempt} no longer owns the job`);
    if (found.status === 'CANCELLING') this.cancelRequested = true;
  }

  /** The hooks of one phase's training loop; `label` names the phase in the record (`fold 2/5`). */
  hooks(phase: Phase, label: string | undefined, onInfo: (text: string) => void): TrainHooks<Context> {
    const epochs = this.#job.spec.training.epochs;
    const { everyEpochs, everySeconds } = this.#job.spec.training.checkpoint;
    this.#epochStartedAt = this.#deps.now().getTime();
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
        const saving = due && metrics.epoch < epochs;
        if (saving) await this.checkpoint(context, phase);
        if (final && this.#deps.stopRule && !stopping && !this.cancelRequested)
          this.ruledOut = await this.#deps.stopRule(this.history);
        // A stop that arrived while this epoch's writes ran (a SIGTERM lands at any await) keeps its
        // work too: the job stops with this epoch checkpointed, not the one before.
        const cause = this.stopCause;
        if (!saving && cause && cause !== 'stop-rule' && metrics.epoch < epochs)
          await this.checkpoint(context, phase);
        this.#epochStartedAt = this.#deps.now().getTime();
        return cause ? 'stop' : undefined;
      },
      onInfo,
      interrupt: this.interrupted,
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
