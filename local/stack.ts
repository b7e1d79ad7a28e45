/**
 * The embedded default: gateway + trainer worker processes + dead-letter loop + sweep loop, with all state under
 * one data folder. `npm start` runs it; the end-to-end tests start it on an ephemeral port.
 */
import { type ChildProcess, fork } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { handleDeadLetter } from '../core/jobs/dead-letter.ts';
import { jobStateEvents, logJobEvents } from '../core/jobs/job-events.ts';
import { EXIT_BACKEND_UNAVAILABLE } from '../core/platform/config.ts';
import type { Limits } from '../core/platform/limits.ts';
import { createLogger, type Logger } from '../core/platform/log.ts';
import { loadRuntimeConfig } from '../core/platform/runtime-config.ts';
import { createServices } from '../core/services.ts';
import { advanceActiveSweeps } from '../core/sweeps/sweep-controller.ts';
import { prepareDataFolder } from './data-folder.ts';
import { createGateway } from './gateway.ts';
import { openDeadLetterQueue, openJobQueue, openLocalStore } from './layout.ts';
import { ensureDefaultToken, ensureSecret, TenantTokens } from './tenants.ts';

export interface LocalStackOptions {
  readonly dataDir: string;
  /** 0 = any free port. */
  readonly port: number;
  readonly workers: number;
  /** The default tenant's token; default: kept in `$dataDir/token`. */
  readonly token?: string;
  readonly maxAttempts?: number;
  readonly limits?: Partial<Limits>;
  /** Seconds a received job stays invisible between heartbeats (default 60; tests use a few). */
  readonly visibilityTimeoutSeconds?: number;
  /** Extra environment for worker processes (e.g. `DESCENT_BACKEND`). */
  readonly workerEnv?: Record<string, string>;
  /** How often the sweep controller's loop advances every active sweep (default 2000 ms). */
  readonly sweepIntervalMs?: number;
  /**
   * Called when a worker exits because its backend cannot start (`DESCENT_BACKEND` names one this
   * machine lacks): a restart would fail the same way, so it is not restarted. @default - logged only
   */
  readonly onWorkerUnavailable?: (worker: number) => void;
  readonly log?: Logger;
}

export interface LocalStack {
  readonly url: string;
  readonly token: string;
  readonly tokens: TenantTokens;
  /** Stops workers (they checkpoint and release their jobs), the gateway and the loops. Idempotent. */
  stop(): Promise<void>;
  /** Process ids of the running worker processes (for crash tests). */
  workerPids(): number[];
}

/** A worker that ran this long before it exited was healthy: its next restart starts the backoff over. */
export const HEALTHY_WORKER_MS = 60_000;

/**
 * The supervisor's restart policy: `restarts` is how many times in a row the worker died; a worker
 * that had run `HEALTHY_WORKER_MS` counts from zero again. The delay doubles from 1 s to at most 30 s:
 * `min(30 s, 1 s · 2^min(n, 5))` with n the restarts in a row before this one.
 */
export function nextRestart(restarts: number, livedMs: number): { restarts: number; delayMs: number } {
  const inARow = livedMs >= HEALTHY_WORKER_MS ? 0 : restarts;
  return { restarts: inARow + 1, delayMs: Math.min(30_000, 1000 * 2 ** Math.min(inARow, 5)) };
}

const WORKER_ENTRY = fileURLToPath(new URL('./worker-process.ts', import.meta.url));

export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const log = options.log ?? createLogger({ component: 'local' });
  const { dataDir } = options;
  await prepareDataFolder(dataDir);
  const tokens = await TenantTokens.open(dataDir);
  const token = await ensureDefaultToken(dataDir, tokens, options.token);
  const secret = await ensureSecret(dataDir, 'storage-secret');
  const maxAttempts = options.maxAttempts ?? 3;

  let baseUrl = '';
  const store = openLocalStore(dataDir, secret, () => baseUrl);
  const queue = openJobQueue(dataDir, maxAttempts);
  const deadLetters = openDeadLetterQueue(dataDir);
  const config = loadRuntimeConfig();
  const services = createServices(store, queue, { limits: { ...config.limits, ...options.limits }, log });
  // The job state-change events that AWS puts on EventBridge go to the log here.
  services.lifecycle.subscribe(jobStateEvents(logJobEvents(log)));
  const server = createGateway({ services, tokens, storageSecret: secret, log });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${port}`;

  // Worker processes, restarted with a backoff if one dies.
  let stopping = false;
  const children = new Set<ChildProcess>();
  const spawnWorker = (index: number, restarts = 0) => {
    const started = Date.now();
    const child = fork(WORKER_ENTRY, [], {
      env: {
        ...process.env,
        ...options.workerEnv,
        DESCENT_DATA_DIR: dataDir,
        DESCENT_PUBLIC_URL: baseUrl,
        DESCENT_MAX_ATTEMPTS: String(maxAttempts),
        ...(options.visibilityTimeoutSeconds
          ? { DESCENT_VISIBILITY_TIMEOUT_SECONDS: String(options.visibilityTimeoutSeconds) }
          : {}),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.add(child);
    child.once('exit', (code, signal) => {
      children.delete(child);
      if (stopping) return;
      if (code === EXIT_BACKEND_UNAVAILABLE) {
        log.error('worker cannot start: its backend is unavailable (its log says why); not restarting', {
          worker: index,
        });
        options.onWorkerUnavailable?.(index);
        return;
      }
      const next = nextRestart(restarts, Date.now() - started);
      log.error('worker exited; restarting', { worker: index, code, signal, inMs: next.delayMs });
      setTimeout(() => {
        if (!stopping) spawnWorker(index, next.restarts);
      }, next.delayMs).unref();
    });
  };
  for (let i = 0; i < options.workers; i++) spawnWorker(i);

  // The dead-letter loop: the local twin of the dead-letter Lambda.
  const abort = new AbortController();
  const deadLetterLoop = (async () => {
    while (!abort.signal.aborted) {
      try {
        const messages = await deadLetters.receive({ waitSeconds: 5, signal: abort.signal });
        for (const message of messages) {
          const outcome = await handleDeadLetter(services.lifecycle, message.body, maxAttempts);
          log.warn('dead-lettered job handled', { outcome, body: message.body });
          await deadLetters.delete(message.receiptHandle);
        }
      } catch (error) {
        if (!abort.signal.aborted) log.error('dead-letter loop error', { error: String(error) });
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  })();

  // The sweep controller's safety net (in AWS, job ends and API calls drive sweeps): every active sweep,
  // every few seconds, so that a trial whose end nobody reported (a crash, a restart) is seen anyway.
  const sweepLoop = (async () => {
    while (!abort.signal.aborted) {
      try {
        await tokens.reload();
        await advanceActiveSweeps(services, tokens.names());
      } catch (error) {
        if (!abort.signal.aborted) log.error('sweep loop error', { error: String(error) });
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          abort.signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, options.sweepIntervalMs ?? 2000);
        abort.signal.addEventListener('abort', done, { once: true });
      });
    }
  })();

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      stopping = true;
      abort.abort();
      await Promise.all(
        [...children].map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
              child.once('exit', () => {
                clearTimeout(kill);
                resolve();
              });
              child.kill('SIGTERM');
            }),
        ),
      );
      await deadLetterLoop;
      await sweepLoop;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      queue.close();
      deadLetters.close();
    })();
    return stopped;
  };
  return {
    url: baseUrl,
    token,
    tokens,
    stop,
    workerPids: () => [...children].map((c) => c.pid).filter((pid): pid is number => pid !== undefined),
  };
}
