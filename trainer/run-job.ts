/**
 * One delivery of one job: claim it (compare-and-swap to RUNNING, attempt + 1), read and prepare the
 * data, train (once, or per fold and then on all rows), evaluate, and store the model, metrics,
 * report, preprocessing and loss curve. Every write to `job.json` is fenced on this attempt: if
 * another attempt took the job over, this one drops its work.
 */
import { createHash } from 'node:crypto';
import type { LayersModel } from '@tensorflow/tfjs';
import { type DatasetMeta, datasetMeta } from '../core/datasets/dataset-service.ts';
import { parseTableStream, type Table } from '../core/datasets/tabular.ts';
import {
  type EpochMetrics,
  isTerminal,
  type JobMessage,
  type JobRecord,
  transition,
} from '../core/jobs/job-record.ts';
import type { JobSpec } from '../core/jobs/job-spec.ts';
import { fromJson, JobStore, SkipUpdate, toJson } from '../core/jobs/job-store.ts';
import { NotFoundError, PreconditionFailedError, UnrecoverableError } from '../core/platform/errors.ts';
import { datasetKeys, jobKeys } from '../core/platform/keys.ts';
import type { Limits } from '../core/platform/limits.ts';
import type { Logger } from '../core/platform/log.ts';
import type { JobQueue, ObjectStore } from '../core/platform/ports.ts';
import { type TrialHooks, trialHooks } from '../core/sweeps/sweep-controller.ts';
import { type PreparedData, prepareData } from '../core/training/dataset-prep.ts';
import { overfittingWarning, plateauWarning } from '../core/training/diagnostics.ts';
import { lossCurveSvg } from '../core/training/loss-curve.ts';
import { meanStd } from '../core/training/metrics.ts';
import pkg from '../package.json' with { type: 'json' };
import { serializeModel } from './artifacts.ts';
import type { TF } from './backend.ts';
import { deriveModel, loadBaseModel } from './base-model.ts';
import { Checkpoints, FencedError, type LoadedCheckpoint } from './checkpoint.ts';
import type { TrainHooks } from './engine.ts';
import { permutationImportance, predictRaw, scoreClassification, scoreRegression } from './evaluate.ts';
import { faultPoint } from './faults.ts';
import { disposeSet, type EncodedSet, encodeSet, fit } from './fit.ts';
import { defaultLoss } from './losses.ts';
import { hasConvolutions, outputFor } from './model-builder.ts';

export interface TrainerDeps {
  readonly store: ObjectStore;
  readonly tf: TF;
  readonly backend: string;
  /** `gpu` or `cpu`: what the backend computes on. */
  readonly device?: string;
  readonly now: () => Date;
  readonly log: Logger;
  /** How often progress and metrics are written while training (ms). */
  readonly progressIntervalMs?: number;
  /** Most rows a job may hold in memory. */
  readonly maxRows?: number;
  /** The deployment's quotas, enforced again on the data actually read (it may change after submit). */
  readonly limits?: Pick<Limits, 'maxDatasetBytes' | 'maxEpochRows' | 'maxActiveJobs'>;
  /** The price of an hour of this worker, for the record's cost estimate. */
  readonly hourlyPriceUsd?: number;
  /** The jobs queue, to queue a sweep's next trial when a trial ends (without it, the sweep's other controllers do). */
  readonly queue?: JobQueue;
  /** A sweep's trials: the per-epoch stopping rule and the sweep's advance at the end. @default trialHooks(deps) */
  readonly trials?: TrialHooks;
}

/** What the worker should do with the message afterwards. */
export type JobOutcome = 'done' | 'interrupted' | 'fenced';

const MAX_REPORTED_ROW_INDICES = 100_000;
const IMPORTANCE_MAX_ROWS = 5000;

/**
 * Streams the dataset through the parser (the file is never held whole), hashing it on the way for
 * the lineage. Memory: the columnar table, 8 bytes per numeric cell.
 */
async function loadTable(deps: TrainerDeps, tenant: string, spec: JobSpec) {
  const keys = datasetKeys(tenant, spec.dataset.id);
  const metaObject = await deps.store.get(keys.meta);
  const stream = metaObject ? await deps.store.getStream(keys.data) : undefined;
  if (!metaObject || !stream)
    throw new UnrecoverableError(
      'DATASET_NOT_FOUND',
      `Dataset ${spec.dataset.id} no longer exists or has no data.`,
    );
  const meta: DatasetMeta = datasetMeta.parse(fromJson(metaObject.body));
  if (meta.format === 'tfjs-model')
    throw new UnrecoverableError('INVALID_SPEC', `Dataset ${meta.id} is a model, not a table.`);
  const hash = createHash('sha256');
  let bytes = 0;
  async function* hashed() {
    for await (const chunk of stream as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      bytes += chunk.byteLength;
      yield chunk;
    }
  }
  const table: Table = await parseTableStream(
    hashed(),
    meta.format,
    deps.maxRows === undefined ? {} : { maxRows: deps.maxRows },
  );
  return { table, sha256: hash.digest('hex'), bytes };
}

function score(data: PreparedData, raw: Float32Array, actual: Float32Array) {
  return data.classes ? scoreClassification(raw, actual, data.classes) : scoreRegression(raw, actual);
}

const headline = (data: PreparedData) => (data.classes ? 'accuracy' : 'r2');

/** The scalar metrics of a report section (what folds average and `result.metrics` shows). */
const scalars = (o: object): Record<string, number> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => typeof v === 'number')) as Record<string, number>;

export async function runJob(
  deps: TrainerDeps,
  message: JobMessage,
  signal: AbortSignal,
): Promise<JobOutcome> {
  const trials = deps.trials ?? trialHooks(deps);
  const outcome = await runDelivery(deps, trials, message, signal);
  // The job has ended: if it is a sweep's trial, the sweep records it and queues its next trial.
  if (outcome === 'done') {
    await trials.ended(message.tenant, message.jobId).catch((error: unknown) =>
      deps.log.warn('advancing the sweep of a finished trial failed; its controller retries', {
        tenant: message.tenant,
        jobId: message.jobId,
        error: String(error),
      }),
    );
  }
  return outcome;
}

async function runDelivery(
  deps: TrainerDeps,
  trials: TrialHooks,
  message: JobMessage,
  signal: AbortSignal,
): Promise<JobOutcome> {
  const { tenant, jobId } = message;
  const { tf } = deps;
  const jobs = new JobStore(deps.store);
  const keys = jobKeys(tenant, jobId);
  const log = deps.log.child({ tenant, jobId });
  const event = (type: 'state' | 'warning' | 'info', text: string, record?: JobRecord) =>
    jobs.appendEvent(tenant, jobId, {
      at: deps.now().toISOString(),
      type,
      message: text,
      ...(record ? { status: record.status, attempt: record.attempt } : {}),
    });

  // Claim.
  let claimed: JobRecord | undefined;
  let finishedMeanwhile = false;
  const claim = jobs.update(tenant, jobId, (record) => {
    if (isTerminal(record.status)) {
      finishedMeanwhile = true;
      throw new SkipUpdate();
    }
    if (record.status === 'CANCELLING') {
      claimed = transition(record, 'CANCELLED', deps.now());
      return claimed;
    }
    claimed = transition(record, 'RUNNING', deps.now(), {
      attempt: record.attempt + 1,
      backend: deps.backend,
      error: undefined,
    });
    return claimed;
  });
  try {
    await claim;
  } catch (error) {
    // The job was deleted after it ended (or its ids are not ours): nothing to train, drop the message.
    if (error instanceof NotFoundError) return 'done';
    throw error;
  }
  if (finishedMeanwhile || !claimed) return 'done';
  if (claimed.status === 'CANCELLED') {
    await event('state', 'Cancelled before training started.', claimed);
    return 'done';
  }
  const attempt = claimed.attempt;
  const spec = claimed.spec;
  const stopRule = trials.stopRule(tenant, claimed);
  faultPoint(`crash-on-job:${spec.name}`);
  const createdAt = Date.parse(claimed.createdAt);
  const startedAt = Date.parse(claimed.startedAt ?? claimed.updatedAt);
  log.info('job started', { attempt, backend: deps.backend });
  await event('state', `Attempt ${attempt} started on the ${deps.backend} backend.`, claimed);

  /** Applies `change` only while this attempt still owns a live job. */
  const fenced = (change: (r: JobRecord) => JobRecord) =>
    jobs.update(tenant, jobId, (record) => {
      if (record.attempt !== attempt || isTerminal(record.status)) {
        throw new FencedError(
          `attempt ${attempt} no longer owns the job (now attempt ${record.attempt}, ${record.status})`,
        );
      }
      return change(record);
    });

  const warnings: string[] = [];
  const warn = async (text: string) => {
    warnings.push(text);
    log.warn('job warning', { warning: text });
    await event('warning', text);
  };
  let peakTensorBytes = 0;
  const models: LayersModel[] = [];
  const sets: (EncodedSet | undefined)[] = [];

  try {
    const dataset = await loadTable(deps, tenant, spec);
    const data = prepareData(dataset.table, spec);
    const limits = deps.limits;
    if (limits && dataset.bytes > limits.maxDatasetBytes) {
      throw new UnrecoverableError(
        'QUOTA_EXCEEDED',
        `The dataset is ${dataset.bytes} bytes, over the limit of ${limits.maxDatasetBytes} (was it uploaded again after the job was submitted?).`,
      );
    }
    if (limits && data.rows.length * spec.training.epochs > limits.maxEpochRows) {
      throw new UnrecoverableError(
        'QUOTA_EXCEEDED',
        `training.epochs × dataset rows is ${spec.training.epochs} × ${data.rows.length} = ${data.rows.length * spec.training.epochs}, over the limit of ${limits.maxEpochRows}.`,
      );
    }
    if (deps.backend === 'cpu' && hasConvolutions(spec)) {
      await warn(
        'This convolutional model trains on the pure-JavaScript cpu backend, about a hundred times slower than wasm or a GPU: no faster backend could start on this worker.',
      );
    }
    const output = outputFor(spec, data.classes?.length);
    const makeModel = spec.model.baseModel
      ? async (inputShape: number[]) =>
          deriveModel(
            tf,
            (await loadBaseModel(tf, deps.store, tenant, spec)) as LayersModel,
            spec,
            inputShape,
            output,
          )
      : undefined;

    let cancelRequested = false;
    let timedOut = false;
    /** Why the sweep's stopping rule ended this trial. */
    let ruledOut: string | undefined;
    let lastFlush = 0;
    let lastCheckpoint = Date.now();
    const history: EpochMetrics[] = [];
    const folds: Record<string, unknown>[] = [];
    /** Whether the record still names this attempt as the owner of a live job. */
    const owns = async () => {
      const { record } = await jobs.get(tenant, jobId);
      return record.attempt === attempt && !isTerminal(record.status);
    };
    const checkpoints = new Checkpoints(deps.store, keys.checkpoints, attempt, owns);
    let resume: LoadedCheckpoint | undefined = await checkpoints.load(tf);
    if (resume) {
      folds.push(...resume.pointer.folds);
      const where = resume.pointer.phase === 'final' ? '' : ` of fold ${resume.pointer.phase + 1}`;
      await event(
        'info',
        `Resuming from the checkpoint at epoch ${resume.pointer.epoch}${where} (saved by attempt ${resume.pointer.attempt}).`,
      );
    }
    // metrics.json is written by compare-and-swap too, so two attempts can never interleave their epochs.
    let metricsEtag: string | null = (await deps.store.head(keys.metrics))?.etag ?? null;
    const writeMetrics = async (): Promise<void> => {
      try {
        const { etag } = await deps.store.put(
          keys.metrics,
          toJson(history),
          metricsEtag
            ? { ifMatch: metricsEtag, contentType: 'application/json' }
            : { ifNoneMatch: '*', contentType: 'application/json' },
        );
        metricsEtag = etag;
      } catch (error) {
        if (!(error instanceof PreconditionFailedError)) throw error;
        // Someone else wrote it: a stale attempt (we still own the record: take it back) or the new owner.
        if (!(await owns())) throw new FencedError(`attempt ${attempt} lost metrics.json to another attempt`);
        metricsEtag = (await deps.store.head(keys.metrics))?.etag ?? null;
        return writeMetrics();
      }
    };
    const progress = async (metrics: EpochMetrics, phase: string | undefined, final: boolean) => {
      await fenced((record) => {
        if (record.status === 'CANCELLING') cancelRequested = true;
        return {
          ...record,
          updatedAt: deps.now().toISOString(),
          progress: {
            epoch: metrics.epoch,
            epochs: spec.training.epochs,
            loss: metrics.loss,
            ...(metrics.valLoss !== undefined ? { valLoss: metrics.valLoss } : {}),
            ...(phase ? { phase } : {}),
          },
        };
      });
      if (final) await writeMetrics();
    };
    const runStarted = Date.parse(claimed.startedAt ?? claimed.updatedAt);
    const { everyEpochs, everySeconds } = spec.training.checkpoint;
    const hooksFor = (phase: number | 'final', label: string | undefined): TrainHooks => ({
      onEpoch: async (metrics, context) => {
        const final = phase === 'final';
        if (final) history.push(metrics);
        peakTensorBytes = Math.max(peakTensorBytes, tf.memory().numBytes);
        const now = Date.now();
        if (now - runStarted > spec.resources.maxRuntimeSeconds * 1000) timedOut = true;
        const stopping = signal.aborted || timedOut;
        if (now - lastFlush >= (deps.progressIntervalMs ?? 1000) || stopping) {
          lastFlush = now;
          await progress(metrics, label, final);
        }
        const due =
          (everyEpochs !== undefined && metrics.epoch % everyEpochs === 0) ||
          now - lastCheckpoint >= everySeconds * 1000 ||
          stopping ||
          cancelRequested;
        if (due && metrics.epoch < spec.training.epochs) {
          const pointer = await checkpoints.save(tf, context, phase, folds);
          lastCheckpoint = Date.now();
          await fenced((record) => ({
            ...record,
            checkpoint: {
              epoch: pointer.epoch,
              phase: String(pointer.phase),
              savedAt: pointer.savedAt,
              attempt,
            },
          }));
        }
        if (final && stopRule && !stopping && !cancelRequested) ruledOut = await stopRule(history);
        return cancelRequested || stopping || ruledOut ? 'stop' : undefined;
      },
      onInfo: (text) => {
        void event('info', text).catch(() => {});
      },
    });
    /** Training state to continue from, when the checkpoint belongs to this phase. */
    const resumeFor = (phase: number | 'final') => {
      if (!resume || resume.pointer.phase !== phase) return {};
      const { pointer, weights, optimizer, bestWeights } = resume;
      resume = undefined;
      if (phase === 'final') history.push(...pointer.state.history);
      return {
        resume: { state: pointer.state, weights, optimizer, ...(bestWeights ? { bestWeights } : {}) },
      };
    };
    /** The job has its result: a checkpoint left behind only costs storage (versioning expires it). */
    const clearCheckpoints = () =>
      checkpoints
        .clear()
        .catch((error: unknown) => log.warn('could not clear checkpoints', { error: String(error) }));
    const stoppedEarly = async (epoch: number): Promise<JobOutcome> => {
      if (timedOut && !cancelRequested) {
        throw new UnrecoverableError(
          'TIMEOUT',
          `Training ran past resources.maxRuntimeSeconds (${spec.resources.maxRuntimeSeconds} s) at epoch ${epoch}; its last checkpoint is kept.`,
        );
      }
      if (ruledOut && !signal.aborted) {
        const { record } = await fenced((r) =>
          transition(r, r.status === 'CANCELLING' ? 'CANCELLED' : 'STOPPED_EARLY', deps.now(), {
            checkpoint: undefined,
          }),
        );
        await event(
          'state',
          record.status === 'STOPPED_EARLY'
            ? `Stopped early at epoch ${epoch}: ${ruledOut}.`
            : `Cancelled at epoch ${epoch}.`,
          record,
        );
        await clearCheckpoints();
        return 'done';
      }
      return endCancelledOrInterrupted(epoch);
    };

    // k-fold: every fold trained independently on its own fitted preprocessing.
    if (data.folds) {
      for (const [i, foldRows] of data.folds.entries()) {
        if (i < folds.length) continue; // finished before a restart
        const label = `fold ${i + 1}/${data.folds.length}`;
        const result = await fit(tf, spec, data, {
          trainRows: foldRows.train,
          validationRows: foldRows.validation,
          hooks: hooksFor(i, label),
          ...(makeModel ? { makeModel } : {}),
          ...resumeFor(i),
        });
        if (result.outcome.stoppedBy === 'cancelled') {
          result.outcome.model.dispose();
          disposeSet(tf, result.train);
          disposeSet(tf, result.validation);
          return await stoppedEarly(result.outcome.history.at(-1)?.epoch ?? 0);
        }
        const validation = result.validation as EncodedSet;
        const raw = predictRaw(
          tf,
          result.outcome.model,
          validation.xData,
          validation.rows.length,
          result.fitted.inputShape,
        );
        folds.push({
          fold: i + 1,
          trainingRows: foldRows.train.length,
          validationRows: foldRows.validation.length,
          epochsRun: result.outcome.history.length,
          ...scalars(score(data, raw, validation.actual)),
          loss: result.outcome.history.at(-1)?.valLoss,
        });
        result.outcome.model.dispose();
        disposeSet(tf, result.train);
        disposeSet(tf, validation);
        await event(
          'info',
          `Fold ${i + 1} of ${data.folds.length}: ${headline(data)} ${Number(folds.at(-1)?.[headline(data)]).toFixed(4)}.`,
        );
      }
    }

    // The delivered model.
    const final = await fit(tf, spec, data, {
      trainRows: data.trainRows,
      validationRows: data.validationRows,
      hooks: hooksFor('final', data.folds ? 'final model' : undefined),
      ...(makeModel ? { makeModel } : {}),
      ...resumeFor('final'),
    });
    const { outcome, fitted } = final;
    models.push(outcome.model);
    sets.push(final.train, final.validation);
    const last = history.at(-1);
    if (last) await progress(last, data.folds ? 'final model' : undefined, true);
    if (outcome.stoppedBy === 'cancelled') return await stoppedEarly(last?.epoch ?? 0);

    // Evaluate.
    const evaluate = (set: EncodedSet) =>
      score(data, predictRaw(tf, outcome.model, set.xData, set.rows.length, fitted.inputShape), set.actual);
    const testSet = data.testRows.length ? encodeSet(tf, spec, data, fitted, data.testRows) : undefined;
    sets.push(testSet);
    const trainingReport = { ...evaluate(final.train), loss: last?.loss };
    const validationReport = final.validation
      ? {
          ...evaluate(final.validation),
          loss: last?.valLoss,
          /** 0-based data-row indices of the hold-out set, so anyone can recompute these metrics. */
          ...(final.validation.rows.length <= MAX_REPORTED_ROW_INDICES
            ? { rowIndices: Array.from(final.validation.rows) }
            : {}),
        }
      : undefined;
    const kfold = data.folds
      ? {
          k: data.folds.length,
          folds,
          summary: Object.fromEntries(
            Object.keys(folds[0] ?? {})
              .filter(
                (m) =>
                  !['fold', 'trainingRows', 'validationRows', 'epochsRun'].includes(m) &&
                  typeof folds[0]?.[m] === 'number',
              )
              .map((m) => [m, meanStd(folds.map((f) => f[m] as number))]),
          ),
          deliveredModel: `Retrained on all ${data.trainRows.length} rows after the folds; the fold metrics estimate its performance.`,
        }
      : undefined;
    const validationSummary: Record<string, unknown> | undefined =
      validationReport ??
      (kfold ? Object.fromEntries(Object.entries(kfold.summary).map(([m, s]) => [m, s.mean])) : undefined);
    const testReport = testSet ? { ...evaluate(testSet), rows: testSet.rows.length } : undefined;

    // What the model relies on: permutation importance on held-out rows (validation, else test, else training).
    const importanceSet = final.validation ?? testSet ?? final.train;
    const importanceRows = Math.min(importanceSet.rows.length, IMPORTANCE_MAX_ROWS);
    const metricOf = (raw: Float32Array) => {
      const s = score(data, raw, importanceSet.actual.subarray(0, importanceRows)) as Record<string, unknown>;
      return s[headline(data)] as number;
    };
    const featureImportance = permutationImportance(
      tf,
      outcome.model,
      fitted,
      importanceSet.xData.subarray(0, importanceRows * fitted.inputShape.reduce((a, b) => a * b, 1)),
      importanceRows,
      metricOf,
      spec.training.seed,
    );

    // Diagnostics.
    const learningRate = spec.training.optimizer.learningRate;
    const plateau = plateauWarning(history, learningRate);
    if (plateau) await warn(plateau);
    const metric = headline(data);
    const gap = validationSummary
      ? {
          metric,
          train: (trainingReport as Record<string, unknown>)[metric] as number,
          validation: validationSummary[metric] as number,
        }
      : undefined;
    const overfit = overfittingWarning(history, gap);
    if (overfit) await warn(overfit);

    const finishedAt = Date.now();
    const parameters = outcome.model.countParams();
    const hourlyPriceUsd = deps.hourlyPriceUsd ?? 0;
    const resources = {
      wallSeconds: (finishedAt - createdAt) / 1000,
      queueSeconds: Math.max(0, (startedAt - createdAt) / 1000),
      trainingSeconds: (finishedAt - startedAt) / 1000,
      epochsRun: history.length,
      samplesPerSecond: outcome.samplesPerSecond,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      peakTensorBytes,
      backend: deps.backend,
      device: deps.device ?? 'cpu',
      hourlyPriceUsd,
      estimatedCostUsd: (hourlyPriceUsd * (finishedAt - startedAt)) / 3_600_000,
      rows: {
        training: data.trainRows.length,
        validation: data.validationRows.length,
        test: data.testRows.length,
      },
      parameters,
    };
    const lineage = {
      datasetSha256: dataset.sha256,
      datasetBytes: dataset.bytes,
      seed: spec.training.seed,
      backend: deps.backend,
      serviceVersion: pkg.version,
      ...(spec.model.baseModel ? { baseModel: spec.model.baseModel } : {}),
    };
    const report = {
      jobId,
      task: spec.task,
      label: spec.dataset.label,
      features: fitted.columns.map((c) => c.name),
      ...(data.classes ? { classes: data.classes } : {}),
      loss: defaultLoss(spec),
      backend: deps.backend,
      epochsRun: history.length,
      stoppedBy: outcome.stoppedBy,
      ...(outcome.bestEpoch !== undefined ? { bestEpoch: outcome.bestEpoch, restoredBestWeights: true } : {}),
      training: trainingReport,
      ...(validationSummary
        ? { validation: { ...validationReport, ...(validationReport ? {} : validationSummary) } }
        : {}),
      ...(kfold ? { kfold } : {}),
      ...(testReport ? { test: testReport } : {}),
      ...(gap ? { gap: { ...gap, difference: gap.train - gap.validation } } : {}),
      featureImportance,
      importance: {
        metric,
        set: final.validation ? 'validation' : testSet ? 'test' : 'training',
        rows: importanceRows,
      },
      warnings,
      resources,
      lineage,
      preprocessing: fitted,
    };
    const saved = await serializeModel(tf, outcome.model, {
      descent: {
        jobId,
        task: spec.task,
        label: spec.dataset.label,
        features: fitted.columns.map((c) => c.name),
        ...(data.classes ? { classes: data.classes } : {}),
        inputShape: fitted.inputShape,
        preprocessing: fitted,
      },
    });
    await Promise.all([
      deps.store.put(keys.modelJson, toJson(saved.modelJson), { contentType: 'application/json' }),
      deps.store.put(keys.weights, saved.weights, { contentType: 'application/octet-stream' }),
      deps.store.put(keys.report, toJson(report), { contentType: 'application/json' }),
      deps.store.put(keys.preprocessing, toJson(fitted), { contentType: 'application/json' }),
      deps.store.put(keys.lossCurve, lossCurveSvg(history, `${spec.name}: loss per epoch`), {
        contentType: 'image/svg+xml',
      }),
    ]);
    const { record } = await fenced((r) =>
      transition(r, r.status === 'CANCELLING' ? 'CANCELLED' : 'SUCCEEDED', deps.now(), {
        checkpoint: undefined,
        ...(data.classes ? { classes: data.classes } : {}),
        resources,
        lineage,
        ...(warnings.length ? { warnings } : {}),
      }),
    );
    await event(
      'state',
      record.status === 'SUCCEEDED'
        ? `Succeeded after ${history.length} epoch${history.length === 1 ? '' : 's'} (stopped by ${outcome.stoppedBy}).`
        : 'Cancelled after the last epoch.',
      record,
    );
    await clearCheckpoints();
    log.info('job finished', {
      status: record.status,
      epochs: history.length,
      seconds: resources.trainingSeconds,
    });
    return 'done';
  } catch (error) {
    if (error instanceof FencedError) {
      log.warn('dropping work: fenced', { attempt, reason: error.message });
      return 'fenced';
    }
    if (error instanceof UnrecoverableError) {
      log.warn('job failed', { attempt, code: error.code, reason: error.message });
      try {
        const { record } = await fenced((r) =>
          transition(r, 'FAILED', deps.now(), {
            error: { code: error.code, message: error.message },
            ...(warnings.length ? { warnings } : {}),
          }),
        );
        await event('state', `Failed: ${error.message}`, record);
      } catch (fenceError) {
        if (!(fenceError instanceof FencedError)) throw fenceError;
        return 'fenced';
      }
      return 'done';
    }
    await event(
      'warning',
      `Attempt ${attempt} failed with a temporary error and will be retried: ${String((error as Error).message ?? error)}`,
    ).catch(() => {});
    throw error;
  } finally {
    for (const model of models) model.dispose();
    for (const set of sets) disposeSet(tf, set);
  }

  /** A run stopped by a cancel (→ CANCELLED) or by this worker stopping (→ released for a retry). */
  async function endCancelledOrInterrupted(epoch: number): Promise<JobOutcome> {
    if (signal.aborted) {
      log.info('job interrupted by shutdown; releasing it for another worker', { attempt, epoch });
      await event(
        'warning',
        `Attempt ${attempt} was interrupted at epoch ${epoch} (worker stopping); the job will be retried.`,
      );
      return 'interrupted';
    }
    const { record } = await fenced((r) => transition(r, 'CANCELLED', deps.now()));
    await event('state', `Cancelled at epoch ${epoch}.`, record);
    return 'done';
  }
}
