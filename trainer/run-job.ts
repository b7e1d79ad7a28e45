/**
 * One delivery of one job, as a pipeline: claim → load data → resume → train (each k-fold fold, then
 * the delivered model) → evaluate → report → publish → finish. Status changes go through the job
 * lifecycle, fenced on this attempt: if another attempt took the job over, this one drops its work.
 * The clock is injected; what happens between epochs lives in `TrainingSession`.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { JobMessage, JobRecord } from '../core/jobs/job-record.ts';
import { type Fence, FencedError, type JobLifecycle } from '../core/jobs/lifecycle.ts';
import { UnrecoverableError } from '../core/platform/errors.ts';
import { jobKeys } from '../core/platform/keys.ts';
import type { Limits } from '../core/platform/limits.ts';
import type { Logger } from '../core/platform/log.ts';
import type { ObjectStore } from '../core/platform/ports.ts';
import { type StopRule, trialStopRule } from '../core/sweeps/sweep-controller.ts';
import type { PreparedData } from '../core/training/dataset-prep.ts';
import { overfittingWarning, plateauWarning } from '../core/training/diagnostics.ts';
import {
  buildReport,
  gapOf,
  headlineMetric,
  kfoldSection,
  resourcesOf,
  validationSummary,
} from '../core/training/report.ts';
import pkg from '../package.json' with { type: 'json' };
import type { TF } from './backend.ts';
import { deriveModel, loadBaseModel } from './base-model.ts';
import { Checkpoints, type LoadedCheckpoint } from './checkpoint.ts';
import { type CompiledSetup, selectRunner } from './compiled/select.ts';
import type { EpochContext } from './engine.ts';
import { evaluateDelivered, scoreFold } from './evaluate-model.ts';
import { faultPoint } from './faults.ts';
import { disposeSet, type EncodedSet, type FitOptions, type FitResult, fit } from './fit.ts';
import { type JobData, loadJobData } from './job-data.ts';
import { defaultLoss } from './losses.ts';
import { hasConvolutions, outputFor } from './model-builder.ts';
import { publishArtifacts } from './publish.ts';
import { type Phase, TrainingSession } from './training-session.ts';

export interface TrainerDeps {
  readonly store: ObjectStore;
  /** The one owner of job status changes (with the deployment's subscribers: sweeps, metrics). */
  readonly lifecycle: JobLifecycle;
  readonly tf: TF;
  readonly backend: string;
  /** `gpu` or `cpu`: what the backend computes on. */
  readonly device?: string;
  /** What the compiled engine has on this worker (trainer/compiled/select.ts); absent: eager only. */
  readonly compiled?: CompiledSetup;
  readonly now: () => Date;
  readonly log: Logger;
  /** How often progress and metrics are written while training (ms). */
  readonly progressIntervalMs?: number;
  /** Most rows a job may hold in memory. */
  readonly maxRows?: number;
  /** The deployment's quotas, enforced again on the data actually read (it may change after submit). */
  readonly limits?: Pick<Limits, 'maxDatasetBytes' | 'maxEpochRows'>;
  /** The price of an hour of this worker, for the record's cost estimate. */
  readonly hourlyPriceUsd?: number;
  /** A sweep trial's stopping rule. @default the median stopping rule of its sweep */
  readonly stopRule?: (tenant: string, job: JobRecord) => StopRule | undefined;
}

/** What the worker should do with the message afterwards. */
export type JobOutcome = 'done' | 'interrupted' | 'fenced';

export async function runJob(
  deps: TrainerDeps,
  message: JobMessage,
  signal: AbortSignal,
): Promise<JobOutcome> {
  const claim = await deps.lifecycle.claim(message.tenant, message.jobId, deps.backend);
  // Ended, deleted or cancelled before it started: nothing to train, drop the message.
  if (claim.kind !== 'running') return 'done';
  return new JobRun(deps, message.tenant, claim.record, signal).run();
}

/** One attempt's state: its fence, its session between epochs, its warnings and what it must dispose. */
class JobRun {
  readonly #deps: TrainerDeps;
  readonly #tenant: string;
  readonly #job: JobRecord;
  readonly #fence: Fence;
  readonly #signal: AbortSignal;
  readonly #log: Logger;
  readonly #session: TrainingSession<EpochContext>;
  readonly #checkpoints: Checkpoints;
  readonly #warnings: string[] = [];
  readonly #models: LayersModel[] = [];
  readonly #sets: (EncodedSet | undefined)[] = [];
  #resume: LoadedCheckpoint | undefined;
  #peakTensorBytes = 0;

  constructor(deps: TrainerDeps, tenant: string, job: JobRecord, signal: AbortSignal) {
    this.#deps = deps;
    this.#tenant = tenant;
    this.#job = job;
    this.#fence = { attempt: job.attempt };
    this.#signal = signal;
    this.#log = deps.log.child({ tenant, jobId: job.id });
    const checkpoints = new Checkpoints(
      deps.store,
      jobKeys(tenant, job.id).checkpoints,
      job.attempt,
      () => this.#session.owns(),
      deps.now,
    );
    this.#checkpoints = checkpoints;
    this.#session = new TrainingSession<EpochContext>(
      {
        lifecycle: deps.lifecycle,
        now: deps.now,
        signal,
        checkpoints: { save: (context, phase, folds) => checkpoints.save(deps.tf, context, phase, folds) },
        ...(deps.progressIntervalMs !== undefined ? { progressIntervalMs: deps.progressIntervalMs } : {}),
        ...this.#stopRule(),
        onEpoch: () => {
          this.#peakTensorBytes = Math.max(this.#peakTensorBytes, deps.tf.memory().numBytes);
        },
      },
      tenant,
      job,
    );
  }

  async run(): Promise<JobOutcome> {
    const { spec, attempt } = this.#job;
    try {
      faultPoint(`crash-on-job:${spec.name}`);
      this.#log.info('job started', { attempt, backend: this.#deps.backend });
      const input = await loadJobData(this.#deps.store, this.#tenant, spec, {
        ...(this.#deps.maxRows !== undefined ? { maxRows: this.#deps.maxRows } : {}),
        ...(this.#deps.limits ? { quotas: this.#deps.limits } : {}),
      });
      if (this.#deps.backend === 'cpu' && hasConvolutions(spec)) {
        await this.#warn(
          'This convolutional model trains on the pure-JavaScript cpu backend, about a hundred times slower than wasm or a GPU: no faster backend could start on this worker.',
        );
      }
      await this.#begin();
      const foldsStopped = await this.#trainFolds(input.data);
      if (foldsStopped) return foldsStopped;
      const final = await this.#fitPhase(input.data, 'final', {
        trainRows: input.data.trainRows,
        validationRows: input.data.validationRows,
      });
      this.#models.push(final.outcome.model);
      this.#sets.push(final.train, final.validation);
      const last = this.#session.history.at(-1);
      if (last) await this.#session.progress(last, input.data.folds ? 'final model' : undefined, true);
      if (final.outcome.stoppedBy === 'cancelled') return await this.#stopped(last?.epoch ?? 0);
      return await this.#complete(input, final);
    } catch (error) {
      return await this.#failed(error);
    } finally {
      for (const model of this.#models) model.dispose();
      for (const set of this.#sets) disposeSet(this.#deps.tf, set);
    }
  }

  #stopRule(): { stopRule?: StopRule } {
    const rule = (this.#deps.stopRule ?? ((tenant, job) => trialStopRule(this.#deps, tenant, job)))(
      this.#tenant,
      this.#job,
    );
    return rule ? { stopRule: rule } : {};
  }

  /** Loads the latest checkpoint (a redelivery resumes from it) and starts the session. */
  async #begin(): Promise<void> {
    await this.#session.begin();
    this.#resume = await this.#checkpoints.load(this.#deps.tf);
    if (!this.#resume) return;
    const { pointer } = this.#resume;
    this.#session.folds.push(...pointer.folds);
    const where = pointer.phase === 'final' ? '' : ` of fold ${pointer.phase + 1}`;
    await this.#event(
      'info',
      `Resuming from the checkpoint at epoch ${pointer.epoch}${where} (saved by attempt ${pointer.attempt}).`,
    );
  }

  /** k-fold: every fold trained independently on its own fitted preprocessing; `undefined` once all are done. */
  async #trainFolds(data: PreparedData): Promise<JobOutcome | undefined> {
    if (!data.folds) return undefined;
    const folds = this.#session.folds;
    const metric = headlineMetric(data.classes);
    for (const [i, rows] of data.folds.entries()) {
      if (i < folds.length) continue; // finished before a restart
      const result = await this.#fitPhase(data, i, {
        trainRows: rows.train,
        validationRows: rows.validation,
      });
      try {
        if (result.outcome.stoppedBy === 'cancelled')
          return await this.#stopped(result.outcome.history.at(-1)?.epoch ?? 0);
        folds.push(scoreFold(this.#deps.tf, data, i + 1, result));
      } finally {
        result.outcome.model.dispose();
        disposeSet(this.#deps.tf, result.train);
        disposeSet(this.#deps.tf, result.validation);
      }
      const value = Number(folds.at(-1)?.[metric]).toFixed(4);
      await this.#event('info', `Fold ${i + 1} of ${data.folds.length}: ${metric} ${value}.`);
    }
    return undefined;
  }

  /** Trains one phase, resuming it from the checkpoint when the checkpoint belongs to it. */
  async #fitPhase(
    data: PreparedData,
    phase: Phase,
    rows: Pick<FitOptions, 'trainRows' | 'validationRows'>,
  ): Promise<FitResult> {
    const { tf } = this.#deps;
    const { spec } = this.#job;
    const label =
      phase === 'final'
        ? data.folds
          ? 'final model'
          : undefined
        : `fold ${phase + 1}/${data.folds?.length}`;
    const hooks = this.#session.hooks(phase, label, (text) => {
      void this.#event('info', text).catch(() => {});
    });
    const output = outputFor(spec, data.classes?.length);
    const makeModel = spec.model.baseModel
      ? async (inputShape: number[]) =>
          deriveModel(
            tf,
            (await loadBaseModel(tf, this.#deps.store, this.#tenant, spec)) as LayersModel,
            spec,
            inputShape,
            output,
          )
      : undefined;
    let resume: FitOptions['resume'];
    if (this.#resume && this.#resume.pointer.phase === phase) {
      const { pointer, weights, optimizer, bestWeights, engine } = this.#resume;
      this.#resume = undefined;
      if (phase === 'final') this.#session.history.push(...pointer.state.history);
      resume = { state: pointer.state, weights, optimizer, engine, ...(bestWeights ? { bestWeights } : {}) };
    }
    const compiled = this.#deps.compiled;
    return fit(tf, spec, data, {
      ...rows,
      hooks,
      ...(compiled ? { selectRunner: selectRunner(compiled) } : {}),
      ...(makeModel ? { makeModel } : {}),
      ...(resume ? { resume } : {}),
    });
  }

  /** Evaluate, report, publish, finish. */
  async #complete(input: JobData, final: FitResult): Promise<JobOutcome> {
    const { tf } = this.#deps;
    const { spec } = this.#job;
    const { data } = input;
    const history = this.#session.history;
    const evaluation = evaluateDelivered(tf, spec, data, final, history.at(-1));
    this.#sets.push(evaluation.testSet);
    const kfold = data.folds ? kfoldSection(this.#session.folds, data.trainRows.length) : undefined;

    const plateau = plateauWarning(history, spec.training.optimizer.learningRate);
    if (plateau) await this.#warn(plateau);
    const summary = validationSummary(evaluation.validation, kfold);
    const overfit = overfittingWarning(history, gapOf(data.classes, evaluation.training, summary));
    if (overfit) await this.#warn(overfit);

    const resources = resourcesOf({
      createdAt: Date.parse(this.#job.createdAt),
      startedAt: Date.parse(this.#job.startedAt ?? this.#job.updatedAt),
      finishedAt: this.#deps.now().getTime(),
      epochsRun: history.length,
      samplesPerSecond: final.outcome.samplesPerSecond,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      peakTensorBytes: this.#peakTensorBytes,
      backend: this.#deps.backend,
      device: this.#deps.device ?? 'cpu',
      engine: final.outcome.engine,
      engineReason: final.outcome.engineReason,
      hourlyPriceUsd: this.#deps.hourlyPriceUsd ?? 0,
      rows: {
        training: data.trainRows.length,
        validation: data.validationRows.length,
        test: data.testRows.length,
      },
      parameters: final.outcome.model.countParams(),
    });
    const lineage = {
      datasetSha256: input.sha256,
      datasetBytes: input.bytes,
      seed: spec.training.seed,
      backend: this.#deps.backend,
      serviceVersion: pkg.version,
      ...(spec.model.baseModel ? { baseModel: spec.model.baseModel } : {}),
    };
    const report = buildReport({
      jobId: this.#job.id,
      spec,
      ...(data.classes ? { classes: data.classes } : {}),
      loss: defaultLoss(spec),
      backend: this.#deps.backend,
      history,
      stoppedBy: final.outcome.stoppedBy,
      ...(final.outcome.bestEpoch !== undefined ? { bestEpoch: final.outcome.bestEpoch } : {}),
      training: evaluation.training,
      ...(evaluation.validation ? { validation: evaluation.validation } : {}),
      ...(kfold ? { kfold } : {}),
      ...(evaluation.test ? { test: evaluation.test } : {}),
      featureImportance: evaluation.featureImportance,
      importance: evaluation.importance,
      warnings: this.#warnings,
      resources,
      lineage,
      preprocessing: final.fitted,
    });
    await publishArtifacts(
      tf,
      this.#deps.store,
      this.#tenant,
      { id: this.#job.id, spec, ...(data.classes ? { classes: data.classes } : {}) },
      { model: final.outcome.model, fitted: final.fitted, report, history },
    );
    const record = await this.#finish(
      'SUCCEEDED',
      {
        checkpoint: undefined,
        ...(data.classes ? { classes: data.classes } : {}),
        resources,
        lineage,
        ...(this.#warnings.length ? { warnings: this.#warnings } : {}),
      },
      (r) =>
        r.status === 'SUCCEEDED'
          ? `Succeeded after ${history.length} epoch${history.length === 1 ? '' : 's'} (stopped by ${final.outcome.stoppedBy}).`
          : 'Cancelled after the last epoch.',
    );
    await this.#clearCheckpoints();
    this.#log.info('job finished', {
      status: record.status,
      epochs: history.length,
      seconds: resources.trainingSeconds,
    });
    return 'done';
  }

  /** Training stopped before its end: a timeout, a sweep's stopping rule, this worker stopping, or a cancel. */
  async #stopped(epoch: number): Promise<JobOutcome> {
    const session = this.#session;
    if (session.timedOut && !session.cancelRequested) {
      throw new UnrecoverableError(
        'TIMEOUT',
        `Training ran past resources.maxRuntimeSeconds (${this.#job.spec.resources.maxRuntimeSeconds} s) at epoch ${epoch}; its last checkpoint is kept.`,
      );
    }
    if (this.#signal.aborted) {
      this.#log.info('job interrupted by shutdown; releasing it for another worker', {
        attempt: this.#fence.attempt,
        epoch,
      });
      await this.#event(
        'warning',
        `Attempt ${this.#fence.attempt} was interrupted at epoch ${epoch} (worker stopping); the job will be retried.`,
      );
      return 'interrupted';
    }
    const ruledOut = session.ruledOut;
    if (ruledOut) {
      await this.#finish('STOPPED_EARLY', { checkpoint: undefined }, (r) =>
        r.status === 'STOPPED_EARLY'
          ? `Stopped early at epoch ${epoch}: ${ruledOut}.`
          : `Cancelled at epoch ${epoch}.`,
      );
      await this.#clearCheckpoints();
      return 'done';
    }
    await this.#finish('CANCELLED', {}, () => `Cancelled at epoch ${epoch}.`);
    return 'done';
  }

  /** A failed attempt: a job's own error fails it now; anything else is temporary and retried. */
  async #failed(error: unknown): Promise<JobOutcome> {
    const attempt = this.#fence.attempt;
    if (error instanceof FencedError) {
      this.#log.warn('dropping work: fenced', { attempt, reason: error.message });
      return 'fenced';
    }
    if (error instanceof UnrecoverableError) {
      this.#log.warn('job failed', { attempt, code: error.code, reason: error.message });
      try {
        await this.#finish(
          'FAILED',
          {
            error: { code: error.code, message: error.message },
            ...(this.#warnings.length ? { warnings: this.#warnings } : {}),
          },
          () => `Failed: ${error.message}`,
        );
      } catch (fenceError) {
        if (!(fenceError instanceof FencedError)) throw fenceError;
        return 'fenced';
      }
      return 'done';
    }
    await this.#event(
      'warning',
      `Attempt ${attempt} failed with a temporary error and will be retried: ${String((error as Error).message ?? error)}`,
    ).catch(() => {});
    throw error;
  }

  #finish(
    status: 'SUCCEEDED' | 'FAILED' | 'STOPPED_EARLY' | 'CANCELLED',
    patch: Partial<JobRecord>,
    message: (record: JobRecord) => string,
  ): Promise<JobRecord> {
    return this.#deps.lifecycle.finish(this.#tenant, this.#job.id, this.#fence, { status, patch, message });
  }

  /** The job has its result: a checkpoint left behind only costs storage (versioning expires it). */
  async #clearCheckpoints(): Promise<void> {
    await this.#checkpoints
      .clear()
      .catch((error: unknown) => this.#log.warn('could not clear checkpoints', { error: String(error) }));
  }

  async #warn(text: string): Promise<void> {
    this.#warnings.push(text);
    this.#log.warn('job warning', { warning: text });
    await this.#event('warning', text);
  }

  #event(type: 'warning' | 'info', message: string): Promise<void> {
    return this.#deps.lifecycle.jobs.appendEvent(this.#tenant, this.#job.id, {
      at: this.#deps.now().toISOString(),
      type,
      message,
    });
  }
}
