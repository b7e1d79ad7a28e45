/**
 * One local trainer worker process (the supervisor in `local/stack.ts` starts `DESCENT_WORKERS` of
 * them): the trainer start-up the GPU container runs too, on the local store and queue.
 */
import { logJobEvents } from '../core/jobs/job-events.ts';
import { ENV, EXIT_BACKEND_UNAVAILABLE, requireEnv } from '../core/platform/config.ts';
import { noMetrics } from '../core/platform/emf.ts';
import { createLogger } from '../core/platform/log.ts';
import { loadRuntimeConfig } from '../core/platform/runtime-config.ts';
import { startTrainer } from '../trainer/startup.ts';
import { openJobQueue, openLocalStore, VISIBILITY_TIMEOUT_SECONDS } from './layout.ts';
import { ensureSecret } from './tenants.ts';

const log = createLogger({ component: 'worker', pid: process.pid });
process.on('unhandledRejection', (reason) => log.error('unhandled rejection', { reason: String(reason) }));

let config: ReturnType<typeof loadRuntimeConfig>;
let dataDir: string;
try {
  config = loadRuntimeConfig();
  dataDir = requireEnv(ENV.dataDir);
} catch (error) {
  // A bad setting: restarting would fail the same way, and the supervisor does not restart this code.
  log.error('bad setting; the worker cannot start', { error: (error as Error).message });
  process.exit(EXIT_BACKEND_UNAVAILABLE);
}
const secret = await ensureSecret(dataDir, 'storage-secret');
const store = openLocalStore(dataDir, secret, process.env.DESCENT_PUBLIC_URL ?? 'http://127.0.0.1');
const queue = openJobQueue(dataDir, config.maxAttempts);
// The local stack drops job metrics (no CloudWatch); the code path is the AWS trainer's.
const trainer = await startTrainer({
  config,
  store,
  queue,
  log,
  metrics: noMetrics,
  // The job state-change events that AWS puts on EventBridge go to the log here.
  events: logJobEvents(log),
  defaultVisibilitySeconds: VISIBILITY_TIMEOUT_SECONDS,
}).catch((error: unknown) => {
  // The backend named in DESCENT_BACKEND (or any) cannot start: a restart would fail the same way.
  log.error('backend unavailable: the worker cannot start', { error: (error as Error).message });
  process.exit(EXIT_BACKEND_UNAVAILABLE);
});
const { backend, worker } = trainer;

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
