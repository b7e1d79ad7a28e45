/**
 * The trainer on AWS: the entry point of the GPU container (`trainer/Dockerfile`), one per ECS task.
 * The same worker loop as the local stack (`local/worker-process.ts`), on S3 and SQS, plus what ECS
 * needs: task scale-in protection while a job trains, embedded-format metrics after each job, and a
 * SIGTERM (scale-in, deployment, Spot interruption) that interrupts the job at the next epoch, releases
 * its message for another worker and exits.
 *
 * Configuration (set by `infra/training-cluster.ts`): DESCENT_BUCKET, DESCENT_QUEUE_URL, AWS_REGION,
 * and optionally DESCENT_VISIBILITY_TIMEOUT_SECONDS, DESCENT_TASK_PROTECTION_MINUTES, DESCENT_BACKEND,
 * DESCENT_LOG_LEVEL. ECS sets ECS_AGENT_URI itself.
 */
import { createAwsServices } from '../aws/services.ts';
import type { JobMessage } from '../core/jobs/job-record.ts';
import { JobStore } from '../core/jobs/job-store.ts';
import { ENV, intEnv } from '../core/platform/config.ts';
import { emitMetrics, finishedJobMetrics, type MetricsSink, printMetrics } from '../core/platform/emf.ts';
import { limitsFromEnv } from '../core/platform/limits.ts';
import { createLogger, type Logger } from '../core/platform/log.ts';
import type { ObjectStore } from '../core/platform/ports.ts';
import { startBackend } from './backend.ts';
import type { JobOutcome } from './run-job.ts';
import { runJob } from './run-job.ts';
import { ECS_AGENT_URI, TaskProtection } from './task-protection.ts';
import { Worker } from './worker.ts';

/** Default seconds a received job stays invisible between heartbeats: the JobQueue construct's default. */
export const DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 300;
/** Default minutes of one task protection; renewed every third of it while a job trains. */
export const DEFAULT_TASK_PROTECTION_MINUTES = 60;

type Run = (message: JobMessage, signal: AbortSignal) => Promise<JobOutcome>;

/**
 * Wraps a job run so that a job it finished is counted: after `run` returns, the job's record says how
 * it ended (`finishedJobMetrics`). Reading the record never fails the job; a failed read is logged.
 */
export function measuredRun(
  run: Run,
  deps: { store: ObjectStore; metrics: MetricsSink; log: Logger; now?: () => Date },
): Run {
  const jobs = new JobStore(deps.store);
  const now = deps.now ?? (() => new Date());
  return async (message, signal) => {
    const began = now();
    const outcome = await run(message, signal);
    if (outcome === 'done') {
      try {
        const { record } = await jobs.get(message.tenant, message.jobId);
        emitMetrics(deps.metrics, finishedJobMetrics(record, began), {
          timestamp: now(),
          properties: {
            tenant: message.tenant,
            jobId: message.jobId,
            status: record.status,
            ...(record.backend ? { backend: record.backend } : {}),
          },
        });
      } catch (error) {
        deps.log.warn('could not read the finished job for its metrics', {
          tenant: message.tenant,
          jobId: message.jobId,
          error: String(error),
        });
      }
    }
    return outcome;
  };
}

async function main(): Promise<void> {
  const log = createLogger({ component: 'trainer' });
  process.on('unhandledRejection', (reason) => log.error('unhandled rejection', { reason: String(reason) }));

  const backend = await startBackend(log, process.env, { metrics: printMetrics, expectGpu: true });
  const device = backend.device;
  const hourlyPriceUsd = Number(process.env[ENV.hourlyPriceUsd] ?? 0) || 0;

  const { store, queue } = createAwsServices();
  const protection = new TaskProtection({
    agentUri: process.env[ECS_AGENT_URI],
    expiresInMinutes: intEnv(ENV.taskProtectionMinutes, DEFAULT_TASK_PROTECTION_MINUTES, {
      min: 1,
      max: 2880,
    }),
    log,
  });
  if (!protection.available)
    log.warn(`${ECS_AGENT_URI} is not set: running without task scale-in protection`);

  const worker = new Worker({
    queue,
    log,
    visibilityTimeoutSeconds: intEnv(ENV.visibilityTimeoutSeconds, DEFAULT_VISIBILITY_TIMEOUT_SECONDS, {
      min: 30,
      max: 43_200,
    }),
    onBusy: (busy) => protection.setBusy(busy),
    run: measuredRun(
      (message, signal) =>
        runJob(
          {
            store,
            queue,
            tf: backend.tf,
            backend: backend.name,
            device,
            now: () => new Date(),
            log,
            hourlyPriceUsd,
            limits: limitsFromEnv(),
          },
          message,
          signal,
        ),
      { store, metrics: printMetrics, log },
    ),
  });

  const shutdown = async (signal: string) => {
    log.info('stopping', { signal });
    await worker.stop();
    protection.close();
    log.info('stopped', { handled: worker.handled });
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  log.info('trainer ready', { protection: protection.available });
  await worker.start();
}

if (import.meta.main) await main();
