/**
 * What happens between epochs, timed by a fake clock and without TensorFlow: progress written at most
 * every interval, checkpoints by epochs and by seconds and whenever training is about to stop, the
 * maximum runtime, a cancel seen in the record, the worker's stop signal and a sweep's stopping rule.
 */
import assert from 'node:assert/strict';
import { after, beforeEach, describe, it } from 'node:test';
import type { EpochMetrics, JobRecord } from '../../core/jobs/job-record.ts';
import { JobLifecycle } from '../../core/jobs/lifecycle.ts';
import type { TrainState } from '../../trainer/engine.ts';
import {
  EPOCH_INTERRUPT_MS,
  PACE_MS,
  type Phase,
  PhaseStopped,
  TrainingSession,
} from '../../trainer/training-session.ts';
import { type LocalPorts, localPorts } from '../helpers/local-ports.ts';
import { specOf } from '../helpers/specs.ts';
import { quiet, TENANT } from '../helpers/trainer.ts';

type Context = { state: TrainState };

describe('training session', () => {
  let ports: LocalPorts;
  let lifecycle: JobLifecycle;
  let clock: number;
  let saves: { epoch: number; phase: Phase }[];
  let abort: AbortController;
  let jobs = 0;

  /** A claimed job (RUNNING, attempt 1) whose spec has `training` and `maxRuntimeSeconds`. */
  async function running(training: Record<string, unknown>, maxRuntimeSeconds = 3600): Promise<JobRecord> {
    const at = new Date(clock).toISOString();
    const job: JobRecord = {
      id: `01M8JH2TQYPMBNJ50HMGRP${String(1000 + jobs++)}`,
      name: 'n',
      status: 'QUEUED',
      createdAt: at,
      updatedAt: at,
      attempt: 0,
      progress: { epoch: 0, epochs: 100 },
      spec: specOf({ training: { epochs: 100, ...training }, resources: { maxRuntimeSeconds } }),
    };
    await lifecycle.submit(TENANT, job, { by: 'api', message: 'queued' });
    const claim = await lifecycle.claim(TENANT, job.id, 'wasm');
    assert.equal(claim.kind, 'running');
    return (claim as { record: JobRecord }).record;
  }

  function session(
    job: JobRecord,
    options: { progressIntervalMs?: number; stopRule?: () => Promise<string | undefined> } = {},
  ) {
    return new TrainingSession<Context>(
      {
        lifecycle,
        now: () => new Date(clock),
        signal: abort.signal,
        checkpoints: {
          save: async (context, phase) => {
            saves.push({ epoch: context.state.epoch, phase });
            return { epoch: context.state.epoch, savedAt: new Date(clock).toISOString() };
          },
        },
        progressIntervalMs: options.progressIntervalMs ?? 1000,
        ...(options.stopRule ? { stopRule: options.stopRule } : {}),
      },
      TENANT,
      job,
    );
  }

  /** Runs epochs 1..n, `stepMs` of fake time each, until the hooks say stop; returns the epoch it stopped at. */
  async function train(s: TrainingSession<Context>, n: number, stepMs: number, phase: Phase = 'final') {
    const hooks = s.hooks(phase, undefined, () => {});
    for (let epoch = 1; epoch <= n; epoch++) {
      clock += stepMs;
      const metrics: EpochMetrics = { epoch, loss: 1 / epoch };
      const state = { epoch, history: [], rngState: 1, schedule: { rate: 0.1, wait: 0 } };
      if ((await hooks.onEpoch?.(metrics, { state })) === 'stop') return epoch;
    }
    return n;
  }

  const progressOf = async (job: JobRecord) => (await lifecycle.jobs.get(TENANT, job.id)).record;

  beforeEach(async () => {
    await ports?.cleanup();
    ports = await localPorts();
    clock = Date.parse('2026-05-01T10:00:00Z');
    lifecycle = new JobLifecycle({
      store: ports.store,
      queue: ports.queue,
      now: () => new Date(clock),
      log: quiet,
    });
    saves = [];
    abort = new AbortController();
  });
  after(async () => {
    await ports?.cleanup();
  });

  it('writes progress at most once per interval of the clock, and metrics.json with it', async () => {
    const job = await running({ checkpoint: { everySeconds: 3600 } });
    const s = session(job, { progressIntervalMs: 1000 });
    await s.begin();
    const writes: number[] = [];
    const hooks = s.hooks('final', undefined, () => {});
    for (let epoch = 1; epoch <= 10; epoch++) {
      clock += 300;
      const before = (await progressOf(job)).progress.epoch;
      await hooks.onEpoch?.(
        { epoch, loss: 1 },
        { state: { epoch, history: [], rngState: 1, schedule: { rate: 1, wait: 0 } } },
      );
      if ((await progressOf(job)).progress.epoch !== before) writes.push(epoch);
    }
    assert.deepEqual(
      writes,
      [1, 5, 9],
      'the first epoch, then every 1000 ms of the clock (300 ms per epoch)',
    );
    assert.deepEqual(
      (await lifecycle.jobs.metrics(TENANT, job.id)).map((m) => m.epoch),
      [1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
  });

  it('checkpoints every N epochs, and every N seconds of the clock, never at the last epoch', async () => {
    const byEpochs = await running({ epochs: 6, checkpoint: { everyEpochs: 2, everySeconds: 3600 } });
    const s1 = session(byEpochs);
    await s1.begin();
    assert.equal(await train(s1, 6, 1000), 6);
    assert.deepEqual(
      saves.map((x) => x.epoch),
      [2, 4],
    );
    assert.equal((await progressOf(byEpochs)).checkpoint?.epoch, 4);

    saves = [];
    const bySeconds = await running({ epochs: 10, checkpoint: { everySeconds: 30 } });
    const s2 = session(bySeconds);
    await s2.begin();
    await train(s2, 10, 10_000);
    assert.deepEqual(
      saves.map((x) => x.epoch),
      [3, 6, 9],
    );
  });

  it('stops past the maximum runtime with a checkpoint, and says it timed out', async () => {
    const job = await running({ checkpoint: { everySeconds: 3600 } }, 60);
    const s = session(job);
    await s.begin();
    const stoppedAt = await train(s, 100, 25_000);
    assert.equal(stoppedAt, 3, '75 s into a 60 s budget');
    assert.equal(s.timedOut, true);
    assert.equal(s.stopCause, 'timeout');
    assert.deepEqual(saves.at(-1), { epoch: 3, phase: 'final' });
    assert.equal((await progressOf(job)).progress.epoch, 3, 'progress flushed when stopping');
  });

  it('stops after the epoch in which a cancel is seen in the record, with a checkpoint', async () => {
    const job = await running({ checkpoint: { everySeconds: 3600 } });
    const s = session(job, { progressIntervalMs: 0 });
    await s.begin();
    const hooks = s.hooks(0, 'fold 1/5', () => {});
    const epoch = async (n: number) =>
      hooks.onEpoch?.(
        { epoch: n, loss: 1 },
        { state: { epoch: n, history: [], rngState: 1, schedule: { rate: 1, wait: 0 } } },
      );
    assert.equal(await epoch(1), undefined);
    await lifecycle.cancel(TENANT, job.id, 'api');
    assert.equal(await epoch(2), 'stop');
    assert.equal(s.stopCause, 'cancel');
    assert.deepEqual(saves, [{ epoch: 2, phase: 0 }]);
    assert.equal((await progressOf(job)).progress.phase, 'fold 1/5');
  });

  it('stops with a checkpoint when the worker is stopping', async () => {
    const job = await running({ checkpoint: { everySeconds: 3600 } });
    const s = session(job);
    await s.begin();
    abort.abort();
    assert.equal(await train(s, 10, 100), 1);
    assert.equal(s.stopCause, 'shutdown');
    assert.deepEqual(saves, [{ epoch: 1, phase: 'final' }]);
  });

  it("a stop signalled while an epoch's writes run still checkpoints that epoch", async () => {
    const job = await running({ checkpoint: { everySeconds: 3600 } });
    // The signal lands during an await of the epoch's end (here the stopping rule's).
    const s = session(job, {
      stopRule: async () => {
        abort.abort();
        return undefined;
      },
    });
    await s.begin();
    assert.equal(await train(s, 10, 100), 1);
    assert.equal(s.stopCause, 'shutdown');
    assert.deepEqual(saves, [{ epoch: 1, phase: 'final' }]);
  });

  it("asks a sweep's stopping rule on the delivered model's epochs only", async () => {
    const job = await running({ checkpoint: { everySeconds: 3600 } });
    let asked = 0;
    const s = session(job, {
      stopRule: async () => (++asked >= 3 ? 'worse than the median' : undefined),
    });
    await s.begin();
    await train(s, 5, 100, 0);
    assert.equal(asked, 0, 'not on a fold');
    assert.equal(await train(s, 10, 100), 3);
    assert.equal(s.ruledOut, 'worse than the median');
    assert.equal(s.stopCause, 'stop-rule');
  });

  it('a session whose attempt lost the job is fenced at its next write', async () => {
    const job = await running({ checkpoint: { everySeconds: 3600 } });
    const s = session(job, { progressIntervalMs: 0 });
    await s.begin();
    await train(s, 1, 100);
    await lifecycle.claim(TENANT, job.id, 'wasm'); // another delivery takes it
    await assert.rejects(train(s, 2, 100), { name: 'FencedError' });
    assert.equal(await s.owns(), false);
  });

  /** What `pace` throws (or `undefined` when it lets the phase go on). */
  const paced = async (s: TrainingSession<Context>, phase = 'evaluating the model') => {
    try {
      await s.pace(phase);
      return undefined;
    } catch (error) {
      return error;
    }
  };

  it('pace gives the event loop a turn at most every PACE_MS of the clock, so timers (the heartbeat) run', async () => {
    const job = await running({});
    const s = session(job, { progressIntervalMs: 3_600_000 });
    await s.pace('evaluating the model'); // its first call reads the record; later ones only yield
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      // A synchronous loop (2 ms of work a step) that paces: the due timer fires only when pace yields.
      for (let step = 0; step < 5; step++) {
        const until = performance.now() + 2;
        while (performance.now() < until);
        clock += PACE_MS;
        await s.pace('evaluating the model');
        await s.pace('evaluating the model'); // same instant: no second yield
      }
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks >= 1, `the timer ran ${ticks} times`);
  });

  it('pace applies a cancel, the maximum runtime and a shutdown in phases that are not epochs', async () => {
    const cancelled = await running({});
    const s1 = session(cancelled, { progressIntervalMs: 0 });
    clock += PACE_MS;
    assert.equal(await paced(s1), undefined);
    await lifecycle.cancel(TENANT, cancelled.id, 'api');
    clock += PACE_MS;
    const stop = await paced(s1, 'computing feature importance');
    assert.ok(stop instanceof PhaseStopped);
    assert.equal(stop.stopCause, 'cancel');
    assert.equal(stop.phase, 'computing feature importance');

    const slow = await running({}, 10);
    const s2 = session(slow);
    clock += 11_000;
    const timeout = await paced(s2);
    assert.ok(timeout instanceof PhaseStopped);
    assert.equal(timeout.stopCause, 'timeout');

    const s3 = session(await running({}));
    abort.abort();
    clock += PACE_MS;
    assert.equal(((await paced(s3)) as PhaseStopped).stopCause, 'shutdown');
  });

  it('pace fences an attempt that lost the job', async () => {
    const job = await running({});
    const s = session(job, { progressIntervalMs: 0 });
    await lifecycle.claim(TENANT, job.id, 'wasm');
    clock += PACE_MS;
    assert.equal(((await paced(s)) as Error).name, 'FencedError');
  });

  it('an epoch is interrupted by a cancel or the maximum runtime only once it has run EPOCH_INTERRUPT_MS', async () => {
    const job = await running({}, 3600);
    const s = session(job, { progressIntervalMs: 0 });
    const hooks = s.hooks('final', undefined, () => {});
    await lifecycle.cancel(TENANT, job.id, 'api');
    clock += 1000;
    assert.equal(await hooks.interrupt?.(), false, 'a short epoch ends (and checkpoints) first');
    clock += EPOCH_INTERRUPT_MS;
    assert.equal(await hooks.interrupt?.(), true);

    const slow = await running({}, 1);
    const s2 = session(slow);
    const hooks2 = s2.hooks('final', undefined, () => {});
    clock += EPOCH_INTERRUPT_MS;
    assert.equal(await hooks2.interrupt?.(), true);
    assert.equal(s2.timedOut, true);
  });
});
