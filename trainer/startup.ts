/**
 * The one start-up of a trainer, shared by the AWS container (`trainer/main.ts`) and the local worker
 * processes (`local/worker-process.ts`): settings read and validated once, the backend selected, the
 * job lifecycle composed with its subscribers (a sweep advances when its trial ends; job-end metrics),
 * and the worker loop. Only the ports, the metrics sink and the busy hook differ between the two.
 */
import { jobEndMetrics } from '../core/jobs/job-metrics.ts';
import { ENV } from '../core/platform/config.ts';
import type { MetricsSink } from '../core/platform/emf.ts';
import type { Logger } from '../core/platform/log.ts';
import type { JobQueue, ObjectStore } from '../core/platform/ports.ts';
import type { RuntimeConfig } from '../core/platform/runtime-config.ts';
import { createServices } from '../core/services.ts';
import { type SelectedBackend, startBackend } from './backend.ts';
import { compiledSetup } from './compiled/select.ts';
import { runJob } from './run-job.ts';
import { Worker } from './worker.ts';

export interface TrainerOptions {
  readonly config: RuntimeConfig;
  readonly store: ObjectStore;
  readonly queue: JobQueue;
  readonly log: Logger;
  /** Where job-end metrics go (CloudWatch's embedded format on stdout on AWS). */
  readonly metrics: MetricsSink;
  /** Heartbeat when the settings name none: the queue's visibility timeout. */
  readonly defaultVisibilitySeconds: number;
  /** Called when the worker starts and ends a job. */
  readonly onBusy?: (busy: boolean) => Promise<void> | void;
  /** A GPU trainer: training without one is worth a warning (a strict `tensorflow-gpu` refuses). */
  readonly expectGpu?: boolean;
}

export interface Trainer {
  readonly backend: SelectedBackend;
  readonly worker: Worker;
}

export async function startTrainer(options: TrainerOptions): Promise<Trainer> {
  const { config, store, queue, log } = options;
  // A named backend that cannot start ends the process here (exit 78), saying why.
  const backend = await startBackend(
    log,
    config.backend === undefined ? {} : { [ENV.backend]: config.backend },
    {
      metrics: options.metrics,
      ...(options.expectGpu ? { expectGpu: true } : {}),
    },
  );
  const compiled = compiledSetup(backend, config.engine);
  log.info('training engine', {
    engine: compiled.addon ? 'compiled where the model allows, else eager' : 'eager',
    ...(compiled.unavailable ? { reason: compiled.unavailable } : {}),
  });
  const services = createServices(store, queue, { limits: config.limits, log });
  services.lifecycle.subscribe(jobEndMetrics(options.metrics));
  const worker = new Worker({
    queue,
    log,
    visibilityTimeoutSeconds: config.visibilityTimeoutSeconds ?? options.defaultVisibilitySeconds,
    ...(options.onBusy ? { onBusy: options.onBusy } : {}),
    run: (message, signal) =>
      runJob(
        {
          store,
          lifecycle: services.lifecycle,
          tf: backend.tf,
          backend: backend.name,
          device: backend.device,
          compiled,
          now: services.now,
          log,
          hourlyPriceUsd: config.hourlyPriceUsd,
          limits: config.limits,
        },
        message,
        signal,
      ),
  });
  return { backend, worker };
}
