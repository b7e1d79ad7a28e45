/**
 * The sweep controller: `advanceSweep` looks at a sweep's trials, records how their jobs are doing,
 * queues the next trials while fewer than `maxParallel` are queued or running, cancels them when the
 * sweep is cancelled, finishes the sweep when every trial has ended, and writes its report. It keeps
 * no state of its own and may run anywhere, any number of times, concurrently: whoever ends a trial's
 * job calls it (the trainer, a cancel, the dead-letter handler), the API calls it when a sweep is read,
 * and locally a loop calls it every few seconds as a safety net. There is no long-lived process in AWS.
 *
 * Never twice: a trial is claimed by a compare-and-swap on `sweep.json` that records its job id before
 * the job exists, so only one controller ever creates it (`ifNoneMatch` on `job.json`). A claim left
 * half done by a crash (the job not stored, or its message not sent) is finished by a later pass once
 * it is `CLAIM_GRACE_MS` old.
 */

import { type EpochMetrics, isTerminal, type JobRecord } from '../jobs/job-record.ts';
import { jobSpec, resolvedJobSpec } from '../jobs/job-spec.ts';
import { JobStore } from '../jobs/job-store.ts';
import type { JobChange, JobLifecycle } from '../jobs/lifecycle.ts';
import { ulid } from '../platform/ids.ts';
import { toJson } from '../platform/json.ts';
import { sweepKeys } from '../platform/keys.ts';
import type { Logger } from '../platform/log.ts';
import type { ObjectStore } from '../platform/ports.ts';
import { UNCHANGED } from '../platform/versioned-document.ts';
import { medianStop, monitorGoal, runningBest } from './median-stopping.ts';
import {
  isSweepFinished,
  isTrialFinished,
  rankTrials,
  type SweepRecord,
  type TrialRecord,
  type TrialStatus,
} from './sweep-record.ts';
import { objectivePlotSvg, sweepReport } from './sweep-report.ts';
import { trialSpec } from './sweep-spec.ts';
import { SweepStore } from './sweep-store.ts';

/** What the controller needs: `Services` has it all. */
export interface SweepDeps {
  readonly store: ObjectStore;
  /** Queues and cancels the trials' jobs; without a queue, trials are observed and the sweep finished, none queued. */
  readonly lifecycle: JobLifecycle;
  readonly now: () => Date;
  readonly newId?: () => string;
  /** With limits, a trial is queued only while the account is under its active-jobs quota. */
  readonly limits?: { readonly maxActiveJobs: number };
  readonly log?: Logger;
}

/** A claim older than this without its job queued was left by a controller that crashed: finish it. */
export const CLAIM_GRACE_MS = 15_000;

/** How far along a trial is, so that a late, stale observation never moves it back. */
const STAGE: Record<TrialStatus, number> = {
  PENDING: 0,
  QUEUED: 1,
  RUNNING: 2,
  CANCELLING: 3,
  SUCCEEDED: 4,
  FAILED: 4,
  CANCELLED: 4,
  STOPPED_EARLY: 4,
};

type Observation = { jobId: string } & Partial<TrialRecord>;

/**
 * The trial's row as its job says: status, times, epochs, error, and once it has ended its duration
 * (and its objective if it SUCCEEDED). Nothing that changes by itself while the job runs, so that
 * a pass writes `sweep.json` only when a trial has moved.
 */
async function observe(jobs: JobStore, tenant: string, sweep: SweepRecord, job: JobRecord) {
  const row: Observation = {
    jobId: job.id,
    status: job.status,
    epochs: job.progress.epoch,
    ...(job.startedAt ? { startedAt: job.startedAt } : {}),
    ...(job.finishedAt ? { finishedAt: job.finishedAt } : {}),
    ...(job.startedAt && job.finishedAt
      ? { durationSeconds: Math.max(0, (Date.parse(job.finishedAt) - Date.parse(job.startedAt)) / 1000) }
      : {}),
    ...(job.error ? { error: job.error } : {}),
  };
  if (job.status === 'SUCCEEDED') {
    const report = await jobs.report(tenant, job.id);
    const validation = report?.validation as Record<string, unknown> | undefined;
    const value = validation?.[sweep.request.objective.metric];
    if (typeof value === 'number' && Number.isFinite(value)) row.objective = value;
    const epsilon = (report?.privacy as { epsilon?: unknown } | undefined)?.epsilon;
    if (typeof epsilon === 'number') row.epsilon = epsilon;
  }
  return row;
}

const bestOf = (record: SweepRecord): SweepRecord['best'] => {
  const top = rankTrials(record)[0];
  return top?.jobId && top.objective !== undefined
    ? { trial: top.trial, jobId: top.jobId, objective: top.objective, parameters: top.parameters }
    : undefined;
};

/**
 * One pass of the controller over a sweep (safe to call at any time, from anywhere, concurrently);
 * returns the record as this pass left it.
 */
export async function advanceSweep(deps: SweepDeps, tenant: string, sweepId: string): Promise<SweepRecord> {
  const sweeps = new SweepStore(deps.store);
  let record = (await sweeps.get(tenant, sweepId)).record;
  if (isSweepFinished(record.status) && record.reportUpdatedAt) {
    await sweeps.markFinished(tenant, record);
    return record;
  }
  // A cancel may end queued jobs at once: a second pass records those ends (and finishes the sweep).
  for (let pass = 0; pass < 2; pass++) {
    const result = await onePass(deps, tenant, record);
    record = result.record;
    if (!result.cancelledJobs) break;
  }
  return record;
}

async function onePass(
  deps: SweepDeps,
  tenant: string,
  before: SweepRecord,
): Promise<{ record: SweepRecord; cancelledJobs: boolean }> {
  const sweeps = new SweepStore(deps.store);
  const jobs = deps.lifecycle.jobs;
  const queueing = deps.lifecycle.canSubmit;
  const now = deps.now();
  const stamp = now.toISOString();

  // 1. Look at the jobs of the trials that have not ended (reads only, outside the compare-and-swap).
  const observed = new Map<number, Observation>();
  for (const trial of before.trials) {
    if (!trial.jobId || isTrialFinished(trial.status)) continue;
    const job = (await jobs.find(tenant, trial.jobId))?.record; // none: claimed, not stored yet
    if (job) observed.set(trial.trial, await observe(jobs, tenant, before, job));
  }
  const quotaRoom =
    queueing && before.status === 'RUNNING' && deps.limits
      ? deps.limits.maxActiveJobs - (await deps.lifecycle.activeJobs.count(tenant))
      : Number.POSITIVE_INFINITY;
  const newId = deps.newId ?? (() => ulid());

  // 2. Record, claim and finish in one compare-and-swap (the change may run again on a conflict).
  let claimed: TrialRecord[] = [];
  let recovered: TrialRecord[] = [];
  let ended = 0;
  const { record } = await sweeps.update(tenant, before.id, (current) => {
    const original = JSON.stringify(current);
    claimed = [];
    recovered = [];
    ended = 0;
    for (const trial of current.trials) {
      const seen = observed.get(trial.trial);
      if (!seen || seen.jobId !== trial.jobId || isTrialFinished(trial.status)) continue;
      if (STAGE[seen.status as TrialStatus] < STAGE[trial.status]) continue;
      Object.assign(trial, seen);
      if (isTrialFinished(trial.status)) ended++;
    }
    if (current.status === 'CANCELLING') {
      for (const trial of current.trials) if (trial.status === 'PENDING') trial.status = 'CANCELLED';
    }
    // A claim left half done by a crashed controller is claimed again (a new stamp), so one pass finishes it.
    for (const trial of current.trials) {
      const since = trial.claimedAt ? now.getTime() - Date.parse(trial.claimedAt) : 0;
      if (
        queueing &&
        trial.jobId &&
        !trial.queuedAt &&
        !isTrialFinished(trial.status) &&
        since >= CLAIM_GRACE_MS
      ) {
        trial.claimedAt = stamp;
        recovered.push(trial);
      }
    }
    if (current.status === 'RUNNING' && queueing) {
      const active = current.trials.filter(
        (t) => t.status !== 'PENDING' && !isTrialFinished(t.status),
      ).length;
      let free = Math.min(current.request.maxParallel - active, quotaRoom);
      for (const trial of current.trials) {
        if (free <= 0) break;
        if (trial.status !== 'PENDING') continue;
        Object.assign(trial, { status: 'QUEUED', jobId: newId(), claimedAt: stamp });
        claimed.push(trial);
        free--;
      }
    }
    current.best = bestOf(current);
    if (!current.best) delete current.best;
    if (!isSweepFinished(current.status) && current.trials.every((t) => isTrialFinished(t.status))) {
      current.finishedAt = stamp;
      if (current.status === 'CANCELLING') current.status = 'CANCELLED';
      else if (current.best) current.status = 'SUCCEEDED';
      else {
        current.status = 'FAILED';
        current.error = {
          code: 'NO_TRIAL_SUCCEEDED',
          message: `None of the ${current.trials.length} trials succeeded with a ${current.request.objective.metric} to compare; see their jobs' errors.`,
        };
      }
    }
    if (JSON.stringify(current) === original) return UNCHANGED;
    current.updatedAt = stamp;
    return current;
  });

  // 3. Store and send the jobs of the trials this pass claimed, and of claims a crash left half done.
  for (const trial of claimed) await queueTrial(deps, tenant, record, trial, false);
  for (const trial of recovered) await queueTrial(deps, tenant, record, trial, true);

  // 4. A cancelled sweep cancels the jobs of its trials that are still queued or running.
  let cancelledJobs = false;
  if (record.status === 'CANCELLING') {
    for (const trial of record.trials) {
      if (trial.jobId && !isTrialFinished(trial.status))
        cancelledJobs = (await cancelTrialJob(deps.lifecycle, tenant, trial.jobId)) || cancelledJobs;
    }
  }

  // 5. The report, whenever a trial has ended (and once more when the sweep ends).
  let latest = record;
  if (ended > 0 || (isSweepFinished(record.status) && !record.reportUpdatedAt))
    latest = await writeReport(sweeps, tenant, record.id, now);
  if (isSweepFinished(latest.status) && latest.reportUpdatedAt) await sweeps.markFinished(tenant, latest);
  return { record: latest, cancelledJobs };
}

/**
 * Submits the job of a claimed trial through the job lifecycle (create-once: its id was fixed by the
 * claim), then records `queuedAt`. `recovering`: a crashed controller's claim, whose job may exist
 * already; its message is sent again if the job is still QUEUED (a worker skips a duplicate message
 * of a job that has ended, and a duplicate of a running one only moves it to a new attempt).
 */
async function queueTrial(
  deps: SweepDeps,
  tenant: string,
  sweep: SweepRecord,
  trial: TrialRecord,
  recovering: boolean,
): Promise<void> {
  const sweeps = new SweepStore(deps.store);
  const jobId = trial.jobId as string;
  const stamp = deps.now().toISOString();
  /** Ends the trial's row without a job (it never ran). */
  const endRow = (status: 'FAILED' | 'CANCELLED', error?: { code: string; message: string }) =>
    sweeps.update(tenant, sweep.id, (current) => {
      const row = current.trials.find((t) => t.trial === trial.trial);
      if (!row || row.jobId !== jobId || row.queuedAt) return UNCHANGED;
      Object.assign(row, { status, finishedAt: stamp, ...(error ? { error } : {}) });
      delete row.jobId;
      return current;
    });
  if (sweep.status !== 'RUNNING') {
    // A crashed claim of a sweep cancelled since: never start it (a job already stored is cancelled by the pass).
    if (!(await deps.lifecycle.jobs.find(tenant, jobId))) await endRow('CANCELLED');
    return;
  }
  const parsed = resolvedJobSpec.safeParse({
    ...jobSpec.parse(trialSpec(sweep.request, trial.parameters)),
    name: `${sweep.name}-${trial.trial}`,
  });
  if (!parsed.success) {
    // Every trial was validated at submit; only a change of the schema since then gets here.
    await endRow('FAILED', { code: 'INVALID_SPEC', message: parsed.error.message });
    return;
  }
  const spec = parsed.data;
  const values = Object.entries(trial.parameters)
    .map(([path, value]) => `${path}=${JSON.stringify(value)}`)
    .join(', ');
  await deps.lifecycle.submit(
    tenant,
    {
      id: jobId,
      name: spec.name,
      status: 'QUEUED',
      createdAt: stamp,
      updatedAt: stamp,
      attempt: 0,
      progress: { epoch: 0, epochs: spec.training.epochs },
      spec,
      sweepId: sweep.id,
      trial: trial.trial,
    },
    { by: 'sweep', message: `Trial ${trial.trial} of sweep ${sweep.id} queued (${values}).`, recovering },
  );
  deps.log?.info('sweep trial queued', { tenant, sweepId: sweep.id, trial: trial.trial, jobId, recovering });
  const { record: latest } = await sweeps.update(tenant, sweep.id, (current) => {
    const row = current.trials.find((t) => t.trial === trial.trial);
    if (!row || row.jobId !== jobId || row.queuedAt) return UNCHANGED;
    row.queuedAt = stamp;
    return current;
  });
  // Cancelled while this trial was being queued: the cancel's own pass may have missed its job.
  if (latest.status === 'CANCELLING') await cancelTrialJob(deps.lifecycle, tenant, jobId);
}

/** QUEUED → CANCELLED, RUNNING → CANCELLING (the trainer stops after the epoch); true if it ended at once. */
async function cancelTrialJob(lifecycle: JobLifecycle, tenant: string, jobId: string): Promise<boolean> {
  const result = await lifecycle.cancel(tenant, jobId, 'sweep'); // undefined: claimed, not stored yet
  return result?.changed === true && result.record.status === 'CANCELLED';
}

/**
 * Writes `report.json` and the plots from the latest record, then stamps `reportUpdatedAt` on that
 * very version of the record (compare-and-swap). Two controllers may write at once, an older report
 * last; but then its writer's stamp fails, and it writes again from the newer record.
 */
async function writeReport(
  sweeps: SweepStore,
  tenant: string,
  sweepId: string,
  now: Date,
): Promise<SweepRecord> {
  const keys = sweepKeys(tenant, sweepId);
  const { record } = await sweeps.update(tenant, sweepId, async (current) => {
    await Promise.all([
      sweeps.store.put(keys.report, toJson(sweepReport(current, now)), { contentType: 'application/json' }),
      ...Object.keys(current.request.parameters).map((path) =>
        sweeps.store.put(keys.plot(path), objectivePlotSvg(current, path), { contentType: 'image/svg+xml' }),
      ),
    ]);
    return { ...current, reportUpdatedAt: now.toISOString() };
  });
  return record;
}

/** Advances every sweep of `tenants` that has not finished (the local loop; errors are logged, not thrown). */
export async function advanceActiveSweeps(deps: SweepDeps, tenants: readonly string[]): Promise<number> {
  const sweeps = new SweepStore(deps.store);
  let advanced = 0;
  for (const tenant of tenants) {
    for (const sweepId of await sweeps.activeIds(tenant)) {
      try {
        await advanceSweep(deps, tenant, sweepId);
        advanced++;
      } catch (error) {
        deps.log?.error('advancing a sweep failed; the next pass retries', {
          tenant,
          sweepId,
          error: String((error as Error)?.stack ?? error),
        });
      }
    }
  }
  return advanced;
}

// ── The trainer's side ─────────────────────────────────────────────────────────────────────────

/** A trial's per-epoch check: a reason to stop it now, or `undefined` to go on. */
export type StopRule = (history: readonly EpochMetrics[]) => Promise<string | undefined>;

/**
 * The job lifecycle's subscriber: when a trial's job ends (or the API cancels it), its sweep records
 * it and queues its next trial. Changes the sweep made itself are passed over (its pass sees them).
 */
export const advanceSweepOnTrialEnd =
  (deps: SweepDeps) =>
  async ({ tenant, record, by }: JobChange): Promise<void> => {
    if (!record.sweepId || by === 'sweep') return;
    if (isTerminal(record.status) || by === 'api') await advanceSweep(deps, tenant, record.sweepId);
  };

/** The stopping rule of a job's sweep, for the epochs of its delivered model; `undefined` for other jobs. */
export function trialStopRule(
  deps: Pick<SweepDeps, 'store' | 'now'>,
  tenant: string,
  job: JobRecord,
  refreshMs = 1000,
): StopRule | undefined {
  return job.sweepId ? medianStopRule(deps, tenant, job.sweepId, job.id, refreshMs) : undefined;
}

/**
 * The median stopping rule for one trial. Reads `sweep.json` at most every `refreshMs` and each
 * completed trial's `metrics.json` once (a finished trial's history never changes).
 */
function medianStopRule(
  deps: Pick<SweepDeps, 'store' | 'now'>,
  tenant: string,
  sweepId: string,
  jobId: string,
  refreshMs: number,
): StopRule {
  const sweeps = new SweepStore(deps.store);
  const jobs = new JobStore(deps.store);
  let sweep: SweepRecord | undefined;
  let readAt = 0;
  const curves = new Map<string, number[]>();
  return async (history) => {
    const now = deps.now().getTime();
    if (!sweep || now - readAt >= refreshMs) {
      sweep = (await sweeps.get(tenant, sweepId)).record;
      readAt = now;
    }
    const rule = sweep.request.earlyStopping;
    if (!rule || history.length < rule.minEpochs) return undefined;
    const goal = monitorGoal(rule.metric);
    const completed = sweep.trials.filter((t) => t.status === 'SUCCEEDED' && t.jobId && t.jobId !== jobId);
    if (completed.length < rule.minTrials) return undefined;
    for (const trial of completed) {
      const id = trial.jobId as string;
      if (!curves.has(id)) curves.set(id, runningBest(await jobs.metrics(tenant, id), rule.metric, goal));
    }
    const decision = medianStop(
      runningBest(history, rule.metric, goal),
      completed.map((t) => curves.get(t.jobId as string) ?? []),
      goal,
      rule,
    );
    if (!decision?.stop) return undefined;
    const f = (v: number) => Number(v.toPrecision(4));
    return `its best ${rule.metric} by epoch ${decision.epoch}, ${f(decision.best)}, is worse than the median ${f(decision.median)} of ${decision.completed} completed trials at that epoch (median stopping rule)`;
  };
}
