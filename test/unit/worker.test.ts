import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createLogger } from '../../core/platform/log.ts';
import type { JobOutcome } from '../../trainer/run-job.ts';
import { Worker, type WorkerOptions } from '../../trainer/worker.ts';
import { eventually } from '../helpers/eventually.ts';
import { type LocalPorts, localPorts } from '../helpers/local-ports.ts';

const quiet = createLogger({}, () => {}, 'error');
const message = (jobId = '01M8JH2TQYPMBNJ50HMGRP3N6M') => JSON.stringify({ tenant: 't', jobId });
const until = (check: () => boolean | Promise<boolean>, timeoutMs = 10_000) =>
  eventually(check, (ok) => ok, { timeoutMs, intervalMs: 20 });

describe('worker loop', () => {
  let ports: LocalPorts;
  const workers: Worker[] = [];
  const worker = (options: Partial<WorkerOptions> & Pick<WorkerOptions, 'run'>) => {
    const w = new Worker({ queue: ports.queue, log: quiet, waitSeconds: 1, ...options });
    workers.push(w);
    void w.start();
    return w;
  };

  beforeEach(async () => {
    ports = await localPorts({ visibilityTimeoutSeconds: 1, maxReceiveCount: 2 });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    await ports.cleanup();
  });

  it('deletes the message of a job that is done', async () => {
    const seen: string[] = [];
    const w = worker({
      run: async (m) => {
        seen.push(m.jobId);
        return 'done';
      },
    });
    await ports.queue.send(message());
    await until(() => w.handled.done === 1);
    assert.deepEqual(seen, ['01M8JH2TQYPMBNJ50HMGRP3N6M']);
    await until(async () => (await ports.queue.depth()).inFlight === 0);
    assert.deepEqual(await ports.queue.depth(), { visible: 0, inFlight: 0 });
  });

  it('survives a failing job, retries it, and dead-letters it after the maximum receives', async () => {
    let calls = 0;
    const w = worker({
      retryDelay: () => 0,
      run: async () => {
        calls++;
        throw new Error('temporary trouble');
      },
    });
    await ports.queue.send(message());
    await until(() => w.handled.error === 2);
    const dead = await ports.deadLetters.receive({ waitSeconds: 3 });
    assert.equal(dead.length, 1);
    assert.equal(dead[0]?.body, message());
    assert.equal(calls, 2);
    // The loop is still alive: the next job runs.
    await ports.queue.send(message('01M8JH2VNB27DQZ7FF1M6REQ0K'));
    await until(() => w.handled.error >= 3);
  });

  it('keeps a long job invisible with heartbeats so no other worker receives it', async () => {
    let runs = 0;
    const slow = async (): Promise<JobOutcome> => {
      runs++;
      // A job that outlasts the visibility timeout (1 s) twice over: only the heartbeat keeps it hidden.
      await new Promise((r) => setTimeout(r, 2500));
      return 'done';
    };
    const a = worker({ run: slow, visibilityTimeoutSeconds: 1, heartbeatSeconds: 0.25 });
    const b = worker({ run: slow, visibilityTimeoutSeconds: 1, heartbeatSeconds: 0.25 });
    await ports.queue.send(message());
    await until(() => a.handled.done + b.handled.done === 1, 8000);
    assert.equal(runs, 1);
  });

  it('stop() interrupts the job in hand, releases its message at once, and is safe to call twice', async () => {
    let started = false;
    const w = worker({
      visibilityTimeoutSeconds: 30,
      run: (_m, signal) =>
        new Promise<JobOutcome>((resolve) => {
          started = true;
          signal.addEventListener('abort', () => resolve('interrupted'));
        }),
    });
    await ports.queue.send(message());
    await until(() => started);
    await Promise.all([w.stop(), w.stop()]);
    assert.equal(w.handled.interrupted, 1);
    assert.deepEqual(await ports.queue.depth(), { visible: 1, inFlight: 0 });
  });

  it('drops a malformed message instead of retrying it forever', async () => {
    const w = worker({ run: async () => 'done' });
    await ports.queue.send('{"not":"a job"}');
    await until(() => w.handled.malformed === 1);
    assert.deepEqual(await ports.queue.depth(), { visible: 0, inFlight: 0 });
  });
});
