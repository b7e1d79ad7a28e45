/** `npm start`: the whole service on this machine, no AWS account needed. */
import { availableParallelism, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { ENV, EXIT_BACKEND_UNAVAILABLE, intEnv } from '../core/platform/config.ts';
import { createLogger } from '../core/platform/log.ts';
import { loadRuntimeConfig, type RuntimeConfig } from '../core/platform/runtime-config.ts';
import { threadsPerWorker } from '../trainer/native-tensorflow.ts';
import { startLocalStack } from './stack.ts';

const log = createLogger({ component: 'local' });
const dataDir = resolve(process.env[ENV.dataDir] || '.descent');
let port: number;
let config: RuntimeConfig;
try {
  port = intEnv(ENV.port, 8080, { min: 0, max: 65_535 });
  config = loadRuntimeConfig();
} catch (error) {
  process.stderr.write(`descent cannot start: ${(error as Error).message}\n`);
  process.exit(EXIT_BACKEND_UNAVAILABLE);
}

// Workers: one per core, at most 4, and at most one per 2 GiB of memory. The wasm backend trains
// on one thread per process (threads are off in Node), so N workers on N cores train N jobs at once
// without two sharing a core. On the shared 2-core dev machine two jobs at once trained 0.9–1.8×
// the samples/s of one (median ~1.25×; the spread is other processes' load): see "Workers" in
// docs/performance.md.
const cores = availableParallelism();
const byMemory = Math.floor(totalmem() / 2 ** 31);
const workers = intEnv(ENV.workers, Math.max(1, Math.min(cores, 4, byMemory)), { min: 0, max: 64 });
// TensorFlow native (after `npm run setup:native`) would give every process a thread per core: split
// the cores between the workers instead, unless set already (workers inherit this environment).
process.env.TF_NUM_INTRAOP_THREADS ||= String(threadsPerWorker(cores, workers));
process.env.TF_NUM_INTEROP_THREADS ||= '1';

const stack = await startLocalStack({
  dataDir,
  port,
  workers,
  maxAttempts: config.maxAttempts,
  ...(process.env[ENV.token] ? { token: process.env[ENV.token] } : {}),
  // A worker whose DESCENT_BACKEND cannot start has said why in its log: stop rather than serve jobs
  // that nothing would train.
  onWorkerUnavailable: () => shutdown('worker backend unavailable', EXIT_BACKEND_UNAVAILABLE),
  log,
}).catch((error: unknown) => {
  // A folder it cannot write, a port in use: say so in one line (the stack only with debug logs).
  const code = (error as NodeJS.ErrnoException)?.code;
  const message =
    code === 'EADDRINUSE'
      ? `port ${port} is in use (set DESCENT_PORT to another, or 0 for any free port)`
      : (error as Error)?.message;
  process.stderr.write(`descent cannot start: ${message}\n`);
  if (config.logLevel === 'debug') process.stderr.write(`${(error as Error)?.stack}\n`);
  process.exit(2);
});

process.stdout.write(`
descent is running (${workers} worker${workers === 1 ? '' : 's'}, data in ${dataDir})

  URL:        ${stack.url}
  Token:      ${stack.token}
  Dashboard:  ${stack.url}/#token=${stack.token}

  export DESCENT_URL=${stack.url} DESCENT_TOKEN=${stack.token}
  curl -H "Authorization: Bearer $DESCENT_TOKEN" $DESCENT_URL/jobs

Press Ctrl-C to stop; queued and running jobs resume on the next start.
`);

let signals = 0;
function shutdown(signal: string, exitCode = 0): void {
  signals++;
  if (signals > 1) process.exit(130);
  log.info('stopping', { signal });
  stack.stop().then(
    () => process.exit(exitCode),
    (error: unknown) => {
      log.error('stop failed', { error: String(error) });
      process.exit(1);
    },
  );
}
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
