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
import { awsPorts } from '../aws/services.ts';
import { ENV, EXIT_BACKEND_UNAVAILABLE, intEnv } from '../core/platform/config.ts';
import { printMetrics } from '../core/platform/emf.ts';
import { createLogger } from '../core/platform/log.ts';
import { loadRuntimeConfig } from '../core/platform/runtime-config.ts';
import { startTrainer } from './startup.ts';
import { ECS_AGENT_URI, TaskProtection } from './task-protection.ts';

/** Default seconds a received job stays invisible between heartbeats: the JobQueue construct's default. */
export const DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 300;
/** Default minutes of one task protection; renewed every third of it while a job trains. */
export const DEFAULT_TASK_PROTECTION_MINUTES = 60;

async function main(): Promise<void> {
  const log = createLogger({ component: 'trainer' });
  process.on('unhandledRejection', (reason) => log.error('unhandled rejection', { reason: String(reason) }));
  let settings: {
    config: ReturnType<typeof loadRuntimeConfig>;
    ports: ReturnType<typeof awsPorts>;
    protectionMinutes: number;
  };
  try {
    settings = {
      config: loadRuntimeConfig(),
      ports: awsPorts(),
      protectionMinutes: intEnv(ENV.taskProtectionMinutes, DEFAULT_TASK_PROTECTION_MINUTES, {
        min: 1,
        max: 2880,
      }),
    };
  } catch (error) {
    log.error('bad setting; the trainer cannot start', { error: (error as Error).message });
    process.exit(EXIT_BACKEND_UNAVAILABLE);
  }
  const { store, queue } = settings.ports;
  const protection = new TaskProtection({
    agentUri: process.env[ECS_AGENT_URI],
    expiresInMinutes: settings.protectionMinutes,
    log,
  });
  if (!protection.available)
    log.warn(`${ECS_AGENT_URI} is not set: running without task scale-in protection`);

  const { worker } = await startTrainer({
    config: settings.config,
    store,
    queue,
    log,
    metrics: printMetrics,
    defaultVisibilitySeconds: DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
    onBusy: (busy) => protection.setBusy(busy),
    // Without a GPU the trainer says so (and the gpuUnavailable metric's alarm fires).
    expectGpu: true,
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
