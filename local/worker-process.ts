/**
 * One local trainer worker process (the supervisor in `local/stack.ts` starts `DESCENT_WORKERS` of
 * them): the same worker loop the GPU container runs, on the local store and queue.
 */

import { ENV, intEnv, requireEnv } from '../core/platform/config.ts';
import { limitsFromEnv } from '../core/platform/limits.ts';
import { createLogger } from '../core/platform/log.ts';
import { startBackend } from '../trainer/backend.ts';
import { runJob } from '../trainer/run-job.ts';
import { Worker } from '../trainer/worker.ts';
import { openJobQueue, openLocalStore, VISIBILITY_TIMEOUT_SECONDS } from './layout.ts';
import { ensureSecret } from './tenants.ts';

const dataDir = requireEnv(ENV.dataDir);
const log = createLogger({ component: 'worker', pid: process.pid });
process.on('unhandledRejection', (reason) => log.error('unhandled rejection', { reason: String(reason) }));

const backend = await startBackend(log);

const secret = await ensureSecret(dataDir, 'storage-secret');
const store = openLocalStore(dataDir, secret, process.env.DESCENT_PUBLIC_URL ?? 'http://127.0.0.1');
const queue = openJobQueue(dataDir, intEnv(ENV.maxAttempts, 3, { min: 1, max: 1000 }));
const hourlyPriceUsd = Number(process.env[ENV.hourlyPriceUsd] ?? 0) || 0;
const limits = limitsFromEnv();
const worker = new Worker({
  queue,
  log,
  visibilityTimeoutSeconds: intEnv(ENV.visibilityTimeoutSeconds, VISIBILITY_TIMEOUT_SECONDS, {
    min: 1,
    max: 43_200,
  }),
  run: (message, signal) =>
    runJob(
      {
        store,
        queue,
        tf: backend.tf,
        backend: backend.name,
        device: backend.device,
        now: () => new Date(),
        log,
        hourlyPriceUsd,
        limits,
      },
      message,
      signal,
    ),
});

const shutdown = async (signal: string) => {
  log.info('stopping', { signal });
  await worker.stop();
  queue.close();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));
process.send?.({ type: 'ready', backend: backend.name });
await worker.start();
