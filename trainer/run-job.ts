/**
 * One delivery of one job: claim it (compare-and-swap to RUNNING, attempt + 1), read and prepare the
 * data, train, and store the model, metrics, report and loss curve. Every write to `job.json` is
 * fenced on this attempt: if another attempt took the job over, this one drops its work.
 */

import { prepareData } from '../core/dataset-prep.ts';
import { UnrecoverableError } from '../core/errors.ts';
import {
  type EpochMetrics,
  isTerminal,
  type JobMessage,
  type JobRecord,
  transition,
} from '../core/job-record.ts';
import { type DatasetMeta, datasetMeta } from '../core/job-service.ts';
import { fromJson, JobStore, SkipUpdate, toJson } from '../core/job-store.ts';
import { datasetKeys, jobKeys } from '../core/keys.ts';
import type { Logger } from '../core/log.ts';
import { lossCurveSvg } from '../core/loss-curve.ts';
import { classificationMetrics, regressionMetrics } from '../core/metrics.ts';
import type { ObjectStore } from '../core/ports.ts';
import { parseTable } from '../core/tabular.ts';
import { serializeModel } from './artifacts.ts';
import type { TF } from './backend.ts';
import { predictRows, train } from './engine.ts';

export interface TrainerDeps {
  readonly store: ObjectStore;
  readonly tf: TF;
  readonly backend: string;
  readonly now: () => Date;
  readonly log: Logger;
  /** How often progress and metrics are written while training (ms). */
  readonly progressIntervalMs?: number;
  /** Most rows a job may hold in memory. */
  readonly maxRows?: number;
}

/** What the worker should do with the message afterwards. */
export type JobOutcome = 'done' | 'interrupted' | 'fenced';

/** This attempt no longer owns the job (another attempt claimed it, or it ended meanwhile). */
class FencedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FencedError';
  }
}

const MAX_REPORTED_ROW_INDICES = 100_000;

export async function runJob(
  deps: TrainerDeps,
  message: JobMessage,
  signal: AbortSignal,
): Promise<JobOutcome> {
  const { tenant, jobId } = message;
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
  await jobs.update(tenant, jobId, (record) => {
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
  if (finishedMeanwhile || !claimed) return 'done';
  if (claimed.status === 'CANCELLED') {
    await event('state', 'Cancelled before training started.', claimed);
    return 'done';
  }
  const attempt = claimed.attempt;
  const spec = claimed.spec;
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

  try {
    const metaObject = await deps.store.get(datasetKeys(tenant, spec.dataset.id).meta);
    const dataObject = await deps.store.get(datasetKeys(tenant, spec.dataset.id).data);
    if (!metaObject || !dataObject)
      throw new UnrecoverableError('DATASET_NOT_FOUND', `Dataset ${spec.dataset.id} no longer exists.`);
    const meta: DatasetMeta = datasetMeta.parse(fromJson(metaObject.body));
    const data = prepareData(parseTable(dataObject.body, meta.format, deps.maxRows), spec);

    const history: EpochMetrics[] = [];
    let lastFlush = 0;
    let cancelRequested = false;
    const flush = async (metrics: EpochMetrics) => {
      await deps.store.put(keys.metrics, toJson(history), { contentType: 'application/json' });
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
          },
        };
      });
    };
    const outcome = await train(deps.tf, spec, data, {
      onEpoch: async (metrics) => {
        history.push(metrics);
        const now = Date.now();
        if (now - lastFlush >= (deps.progressIntervalMs ?? 1000) || signal.aborted) {
          lastFlush = now;
          await flush(metrics);
        }
        return cancelRequested || signal.aborted ? 'stop' : undefined;
      },
    });
    const last = history[history.length - 1];
    if (last) await flush(last);

    if (outcome.stoppedBy === 'cancelled' && !cancelRequested && signal.aborted) {
      outcome.model.dispose();
      log.info('job interrupted by shutdown; releasing it for another worker', {
        attempt,
        epoch: last?.epoch,
      });
      await event(
        'warning',
        `Attempt ${attempt} was interrupted at epoch ${last?.epoch ?? 0} (worker stopping); the job will be retried.`,
      );
      return 'interrupted';
    }
    if (outcome.stoppedBy === 'cancelled') {
      outcome.model.dispose();
      const { record } = await fenced((r) => transition(r, 'CANCELLED', deps.now()));
      await event('state', `Cancelled at epoch ${last?.epoch ?? 0}.`, record);
      return 'done';
    }

    // Evaluate and store the artifacts before the record says SUCCEEDED.
    const classes = data.classes;
    const evaluate = (rows: Int32Array) => {
      const predicted = predictRows(deps.tf, outcome.model, data, rows);
      const actual = Float32Array.from(rows, (r) => data.y[r] as number);
      return classes
        ? classificationMetrics(actual, predicted, classes)
        : regressionMetrics(actual, predicted);
    };
    const report = {
      jobId,
      task: spec.task,
      label: spec.dataset.label,
      features: data.features,
      ...(classes ? { classes } : {}),
      backend: deps.backend,
      epochsRun: history.length,
      stoppedBy: outcome.stoppedBy,
      training: { ...evaluate(data.trainRows), loss: last?.loss },
      ...(data.validationRows.length > 0
        ? {
            validation: {
              ...evaluate(data.validationRows),
              loss: last?.valLoss,
              /** 0-based data-row indices of the hold-out set, so anyone can recompute these metrics. */
              ...(data.validationRows.length <= MAX_REPORTED_ROW_INDICES
                ? { rowIndices: Array.from(data.validationRows) }
                : {}),
            },
          }
        : {}),
      resources: {
        trainingSeconds: outcome.trainingSeconds,
        samplesPerSecond: outcome.samplesPerSecond,
        parameters: outcome.model.countParams(),
      },
    };
    const saved = await serializeModel(deps.tf, outcome.model, {
      descent: {
        jobId,
        task: spec.task,
        label: spec.dataset.label,
        features: data.features,
        ...(classes ? { classes } : {}),
      },
    });
    const parameters = outcome.model.countParams();
    outcome.model.dispose();
    await Promise.all([
      deps.store.put(keys.modelJson, toJson(saved.modelJson), { contentType: 'application/json' }),
      deps.store.put(keys.weights, saved.weights, { contentType: 'application/octet-stream' }),
      deps.store.put(keys.report, toJson(report), { contentType: 'application/json' }),
      deps.store.put(keys.lossCurve, lossCurveSvg(history, `${spec.name}: loss per epoch`), {
        contentType: 'image/svg+xml',
      }),
    ]);
    const { record } = await fenced((r) =>
      transition(r, r.status === 'CANCELLING' ? 'CANCELLED' : 'SUCCEEDED', deps.now(), {
        ...(classes ? { classes } : {}),
        resources: {
          trainingSeconds: outcome.trainingSeconds,
          samplesPerSecond: outcome.samplesPerSecond,
          rows: { training: data.trainRows.length, validation: data.validationRows.length },
          parameters,
        },
      }),
    );
    await event(
      'state',
      record.status === 'SUCCEEDED'
        ? `Succeeded after ${history.length} epoch${history.length === 1 ? '' : 's'} (stopped by ${outcome.stoppedBy}).`
        : 'Cancelled after the last epoch.',
      record,
    );
    log.info('job finished', {
      status: record.status,
      epochs: history.length,
      seconds: outcome.trainingSeconds,
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
          transition(r, 'FAILED', deps.now(), { error: { code: error.code, message: error.message } }),
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
  }
}
