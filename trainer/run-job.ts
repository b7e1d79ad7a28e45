/**
 * One delivery of one job, as a pipeline: claim → load data → resume → train (each k-fold fold, then
 * the delivered model) → evaluate → report → publish → finish. Status changes go through the job
 * lifecycle, fenced on this attempt: if another attempt took the job over, this one drops its work.
 * The clock is injected; what happens between epochs lives in `TrainingSession`.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { JobMessage, JobRecord } from '../core/jobs/job-record.ts';
import { type Fence, FencedError, type JobLifecycle } from '../core/jobs/lifecycle.ts';
import { isStorageFull, UnrecoverableError } from '../core/platform/errors.ts';
import { jobKeys } from '../core/platform/keys.ts';
import { DEFAULT_LIMITS, type Limits } from '../core/platform/limits.ts';
import type { Logger } from '../core/platform/log.ts';
import type { ObjectStore } from '../core/platform/ports.ts';
import { type StopRule, trialStopRule } from '../core/sweeps/sweep-controller.ts';
import type { PreparedData } from '../core/training/dataset-prep.ts';
import { overfittingWarning, plateauWarning } from '../core/training/diagnostics.ts';
import { privacySection } from '../core/training/privacy.ts';
import {
  buildReport,
  gapOf,
  headlineMetric,
  headlineSummary,
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
import {
  disposeSet,
  type EncodedSet,
  type FitOptions,
  type FitResult,
  fit,
  type MemoryBudget,
  WASM_TENSOR_BUDGET_BYTES,
} from './fit.ts';
import { type JobData, loadJobData } from './job-data.ts';
import { defaultLoss } from './losses.ts';
import { hasConvolutions, outputFor } from './model-builder.ts';
import { checkFiniteWeights } from './numeric-checks.ts';
import { publishArtifacts } from './publish.ts';
import { runPredictions } from './run-predictions.ts';
import { type Phase, PhaseStopped, TrainingSession } from './training-session.ts';
import { tableBudgetBytes, workerMemoryBytes } from './worker-memory.ts';

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
  /** The deployment's limits, enforced again on the data actually read (it may change after submit). */
  readonly limits?: Partial<Limits> & Pick<Limits, 'maxDatasetBytes' | 'maxEpochRows'>;
  /** The memory this worker has (default: its cgroup limit, else the machine's). */
  readonly memoryBytes?: number;
  /** The price of an hour of this worker, for the record's cost estimate. */
  readonly hourlyPriceUsd?: number;
  /** The instance type that price is for (AWS), recorded beside it. */
  readonly instanceType?: string;
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
  // A job of the second kind: run a trained model over a dataset.
  if (claim.record.kind === 'predictions') return runPredictions(deps, message.tenant, claim.record);
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
  readonly #memory: MemoryBudget;

  constructor(deps: TrainerDeps, tenant: string, job: JobRecord, signal: AbortSignal) {
    this.#deps = deps;
    this.#tenant = tenant;
    this.#job = job;
    this.#fence = { attempt: job.attempt };
    this.#signal = signal;
    this.#log = deps.log.child({ tenant, jobId: job.id });
    this.#memory = memoryBudget(deps);
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
        maxTableBytes: tableBudgetBytes(this.#memory.bytes),
        pace: this.#pace,
      });
      for (const warning of input.data.warnings) await this.#warn(warning);
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
      if (final.outcome.stoppedBy === 'cancelled') return await this.#stopped(`at epoch ${last?.epoch ?? 0}`);
      return await this.#complete(input, final);
    } catch (error) {
      if (error instanceof PhaseStopped)
        return await this.#stopped(`while ${error.phase}`).catch((e) => this.#failed(e));
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
          return await this.#stopped(
            `at epoch ${result.outcome.history.at(-1)?.epoch ?? 0} of fold ${i + 1}`,
          );
        folds.push(await scoreFold(this.#deps.tf, data, i + 1, result, this.#pace));
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
      memory: this.#memory,
      pace: this.#pace,
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
    checkFiniteWeights(tf, final.outcome.model, spec.training.optimizer.learningRate);
    const evaluation = await evaluateDelivered(tf, spec, data, final, history.at(-1), this.#pace);
    this.#sets.push(evaluation.testSet);
    const kfold = data.folds ? kfoldSection(this.#session.folds, data.trainRows.length) : undefined;

    const plateau = plateauWarning(history, spec.training.optimizer.learningRate);
    if (plateau) await this.#warn(plateau);
    const summary = validationSummary(evaluation.validation, kfold);
    const overfit = overfittingWarning(history, gapOf(data.classes, evaluation.training, summary));
    if (overfit) await this.#warn(overfit);
    const privateRun = final.outcome.privacy;
    const privacy = privateRun ? privacySection(privateRun, spec, final.fitted) : undefined;
    for (const item of privacy?.notCovered ?? [])
      await this.#warn(`Privacy (ε = ${privacy?.epsilon.toFixed(3)}, δ = ${privacy?.delta}): ${item}`);

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
      ...(this.#deps.instanceType ? { instanceType: this.#deps.instanceType } : {}),
      rows: {
        training: data.trainRows.length,
        validation: data.validationRows.length,
        test: data.testRows.length,
      },
      parameters: final.outcome.model.countParams(),
      ...(privateRun ? { privateTraining: { ...privateRun.cost, steps: privateRun.steps } } : {}),
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
      data: {
        rows: data.table.rowCount,
        used: data.rows.length,
        dropped: data.dropped,
        excluded: data.excluded,
      },
      ...(privacy ? { privacy } : {}),
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
        summary: headlineSummary(data.classes, evaluation.training, summary, evaluation.test),
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

  /**
   * The job stopped before its end (`when`: `at epoch 4`, `while evaluating the model`): a timeout, a
   * sweep's stopping rule, this worker stopping, or a cancel.
   */
  async #stopped(when: string): Promise<JobOutcome> {
    const session = this.#session;
    if (session.timedOut && !session.cancelRequested) {
      throw new UnrecoverableError(
        'TIMEOUT',
        `The job ran past resources.maxRuntimeSeconds (${this.#job.spec.resources.maxRuntimeSeconds} s) ${when}; its last checkpoint is kept.`,
      );
    }
    // A cancel seen in the record wins over this worker stopping: on AWS Batch, cancelling a running
    // job also terminates its container, whose SIGTERM must not turn the cancel into a retry.
    if (this.#signal.aborted && !session.cancelRequested) {
      this.#log.info('job interrupted by shutdown; releasing it for another worker', {
        attempt: this.#fence.attempt,
        when,
      });
      await this.#event(
        'warning',
        `Attempt ${this.#fence.attempt} was interrupted ${when} (worker stopping); the job will be retried.`,
      );
      return 'interrupted';
    }
    const ruledOut = session.ruledOut;
    if (ruledOut) {
      await this.#finish('STOPPED_EARLY', { checkpoint: undefined }, (r) =>
        r.status === 'STOPPED_EARLY' ? `Stopped early ${when}: ${ruledOut}.` : `Cancelled ${when}.`,
      );
      await this.#clearCheckpoints();
      return 'done';
    }
    await this.#finish('CANCELLED', {}, () => `Cancelled ${when}.`);
    return 'done';
  }

  /** Between steps of loading, encoding and evaluating: see `TrainingSession.pace`. */
  readonly #pace = (phase: string): Promise<void> => this.#session.pace(phase);

  /**
   * A failed attempt: a job's own error fails it now; a full storage fails it too (saying so: every
   * attempt would fail the same way until space is freed); anything else is temporary and retried.
   */
  async #failed(thrown: unknown): Promise<JobOutcome> {
    const attempt = this.#fence.attempt;
    const error = isStorageFull(thrown)
      ? new UnrecoverableError(
          'STORAGE_FULL',
          `The service's storage is full: ${String((thrown as Error).message ?? thrown)}. Free space, then submit the job again.`,
        )
      : thrown;
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

/** The memory a job may use on this worker: the deployment's limit, at most the worker's memory. */
function memoryBudget(deps: TrainerDeps): MemoryBudget {
  const limit = deps.limits?.jobMemoryBytes ?? DEFAULT_LIMITS.jobMemoryBytes;
  const real = deps.memoryBytes ?? workerMemoryBytes();
  return {
    bytes: Math.min(limit, real),
    source:
      limit <= real
        ? 'a job may use (setting DESCENT_JOB_MEMORY_BYTES)'
        : "this worker's memory (DESCENT_JOB_MEMORY_BYTES is higher than the worker has)",
    ...(deps.backend === 'wasm' ? { tensorBytes: WASM_TENSOR_BUDGET_BYTES } : {}),
  };
}
