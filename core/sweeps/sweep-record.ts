/**
 * The sweep record (`tenants/{t}/sweeps/{id}/sweep.json`): the resolved request, the sweep's status
 * and its trials table, fixed at submit (every trial's values are chosen then). Each trial is an
 * ordinary job, tagged with the sweep's id; the table mirrors the trial's job status as the
 * controller (`core/sweeps/sweep-controller.ts`) observes it.
 */
import { z } from 'zod';
import { isTerminal, jobError, jobStatus } from '../jobs/job-record.ts';
import { better, resolvedSweep } from './sweep-spec.ts';

export const SWEEP_STATUSES = ['RUNNING', 'CANCELLING', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const;
export const sweepStatus = z.enum(SWEEP_STATUSES);
export type SweepStatus = z.infer<typeof sweepStatus>;
export const isSweepFinished = (status: SweepStatus): boolean =>
  status === 'SUCCEEDED' || status === 'FAILED' || status === 'CANCELLED';

/** A trial's status: `PENDING` until the controller queues its job, then its job's status. */
export const trialStatus = z.union([z.literal('PENDING'), jobStatus]);
export type TrialStatus = z.infer<typeof trialStatus>;
export const isTrialFinished = (status: TrialStatus): boolean => status !== 'PENDING' && isTerminal(status);

export const trialRecord = z.object({
  /** 1-based, in the order the strategy chose the trials. */
  trial: z.int().min(1),
  parameters: z.record(z.string(), z.unknown()),
  status: trialStatus,
  /** Chosen by the controller when it claims the trial (compare-and-swap on sweep.json), before the job exists. */
  jobId: z.string().optional(),
  claimedAt: z.string().optional(),
  /** When its job was stored and its message sent. */
  queuedAt: z.string().optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  /** Seconds from the job's start to its end. */
  durationSeconds: z.number().optional(),
  /** Epochs trained (so far). */
  epochs: z.int().optional(),
  /** The objective's value in the trial's validation report (SUCCEEDED trials). */
  objective: z.number().optional(),
  /** Private trials: the ε its report gives (at its δ). */
  epsilon: z.number().optional(),
  error: jobError.optional(),
});
export type TrialRecord = z.infer<typeof trialRecord>;

export const sweepRecord = z.object({
  id: z.string(),
  name: z.string(),
  status: sweepStatus,
  createdAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().optional(),
  cancelRequestedAt: z.string().optional(),
  request: resolvedSweep,
  trials: z.array(trialRecord),
  /** The best SUCCEEDED trial so far. */
  best: z
    .object({
      trial: z.int(),
      jobId: z.string(),
      objective: z.number(),
      parameters: z.record(z.string(), z.unknown()),
    })
    .optional(),
  /** When `report.json` and the plots were last written. */
  reportUpdatedAt: z.string().optional(),
  error: jobError.optional(),
});
export type SweepRecord = z.infer<typeof sweepRecord>;

/** `GET /sweeps/{id}`: the record, the ranking and, once written, presigned URLs of the report's files. */
export const sweepView = sweepRecord.extend({
  /** Trial numbers of the SUCCEEDED trials, best first. */
  ranking: z.array(z.int()),
  /** `report.json` and `objective-vs-<path>.svg` → a presigned GET URL (empty until a trial has ended). */
  artifacts: z.record(z.string(), z.string()),
  expiresAt: z.string().optional(),
});

/** SUCCEEDED trials with an objective, best first (ties: the earlier trial first). */
export function rankTrials(record: SweepRecord): TrialRecord[] {
  const { goal } = record.request.objective;
  return record.trials
    .filter((t) => t.status === 'SUCCEEDED' && t.objective !== undefined && Number.isFinite(t.objective))
    .sort((a, b) =>
      better(goal, a.objective as number, b.objective as number)
        ? -1
        : better(goal, b.objective as number, a.objective as number)
          ? 1
          : a.trial - b.trial,
    );
}
