/**
 * The one start-up of a trainer, shared by the AWS Batch container (`trainer/main.ts`) and the local
 * worker processes (`local/worker-process.ts`): the backend selected, the job lifecycle composed with
 * its subscribers (a sweep advances when its trial ends; job-end metrics; job state-change events),
 * and the job-running pipeline (`run-job.ts`). Only the entry differs: locally a worker loop takes
 * jobs from the queue; on Batch the container runs the one job it was started for and exits.
 */
import { type JobEventSink, jobStateEvents } from '../core/jobs/job-events.ts';
import { jobEndMetrics } from '../core/jobs/job-metrics.ts';
import type { JobMessage } from '../core/jobs/job-record.ts';
import type { MetricsSink } from '../core/platform/emf.ts';
import type { Logger } from '../core/platform/log.ts';
import type { JobQueue, ObjectStore } from '../core/platform/ports.ts';
import type { RuntimeConfig } from '../core/platform/runtime-config.ts';
import { createServices, type Services } from '../core/services.ts';
import { describeBackend, type SelectedBackend, selectBackend } from './backend.ts';
import { compiledSetup } from './compiled/select.ts';
import { type JobOutcome, runJob } from './run-job.ts';
import { Worker } from './worker.ts';

export interface TrainerOptions {
  readonly config: RuntimeConfig;
  readonly store: ObjectStore;
  /** Where a sweep's next trial is queued when a trial ends; without it, the sweep's next pass queues it. */
  readonly queue?: JobQueue;
  readonly log: Logger;
  /** Where job-end metrics go (CloudWatch's embedded format on stdout on AWS). */
  readonly metrics: MetricsSink;
  /** Where job state-change events go (EventBridge on AWS, the log locally). */
  readonly events?: JobEventSink;
  /** The instance this trainer runs on, when it could tell: its type and hourly price. */
  readonly instance?: { readonly type?: string; readonly hourlyPriceUsd: number };
}

/** A trainer ready to run jobs. */
export interface PreparedTrainer {
  readonly backend: SelectedBackend;
  /** What the backend computes on. */
  readonly device: SelectedBackend['device'];
  readonly services: Services;
  /** Runs one job through the pipeline (claim → … → finish); `signal` stops it at the next epoch. */
  run(message: JobMessage, signal: AbortSignal): Promise<JobOutcome>;
}

export async function prepareTrainer(options: TrainerOptions): Promise<PreparedTrainer> {
  const { config, store, log } = options;
  const backend = await selectBackend(config.backend);
  const { device } = backend;
  log.info('backend selected', describeBackend(backend));
  const compiled = compiledSetup(backend, config.engine);
  log.info('training engine', {
    engine: compiled.addon ? 'compiled where the model allows, else eager' : 'eager',
    ...(compiled.unavailable ? { reason: compiled.unavailable } : {}),
  });
  const services = createServices(store, options.queue, { limits: config.limits, log });
  services.lifecycle.subscribe(jobEndMetrics(options.metrics));
  if (options.events) services.lifecycle.subscribe(jobStateEvents(options.events));
  const hourlyPriceUsd = options.instance?.hourlyPriceUsd ?? config.hourlyPriceUsd;
  const instanceType = options.instance?.type;
  return {
    backend,
    device,
    services,
    run: (message, signal) =>
      runJob(
        {
          store,
          lifecycle: services.lifecycle,
          tf: backend.tf,
          backend: backend.name,
          device,
          compiled,
          now: services.now,
          log,
          hourlyPriceUsd,
          ...(instanceType ? { instanceType } : {}),
          limits: config.limits,
        },
        message,
        signal,
      ),
  };
}

export interface WorkerTrainerOptions extends TrainerOptions {
  readonly queue: JobQueue;
  /** Heartbeat when the settings name none: the queue's visibility timeout. */
  readonly defaultVisibilitySeconds: number;
  /** Called when the worker starts and ends a job. */
  readonly onBusy?: (busy: boolean) => Promise<void> | void;
}

/** The local entry: the pipeline behind a worker loop on the queue. */
export async function startTrainer(
  options: WorkerTrainerOptions,
): Promise<{ backend: SelectedBackend; worker: Worker }> {
  const trainer = await prepareTrainer(options);
  const worker = new Worker({
    queue: options.queue,
    log: options.log,
    visibilityTimeoutSeconds: options.config.visibilityTimeoutSeconds ?? options.defaultVisibilitySeconds,
    ...(options.onBusy ? { onBusy: options.onBusy } : {}),
    run: trainer.run,
  });
  return { backend: trainer.backend, worker };
}
