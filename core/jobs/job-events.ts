/**
 * Job state-change events for client teams, so that they can react to a job's end without polling:
 * a subscriber of the job lifecycle (the one place that changes a status) turns every change of status
 * into one event. On AWS the sink is EventBridge (`aws/eventbridge-events.ts`: source `descent`,
 * detail-type `Descent Job State Change` on the account's default bus); locally it is the log.
 */
import type { Logger } from '../platform/log.ts';
import type { JobStatus } from './job-record.ts';
import type { JobChange, JobListener } from './lifecycle.ts';

/** The event's `source` on EventBridge (rules match on it; the publishers' IAM grant is bound to it). */
export const JOB_EVENT_SOURCE = 'descent';
/** The event's `detail-type` on EventBridge. */
export const JOB_EVENT_DETAIL_TYPE = 'Descent Job State Change';

/** The `detail` of a job state-change event: enough to act on, never the spec or the data. */
export interface JobStateDetail {
  readonly tenant: string;
  readonly jobId: string;
  readonly name: string;
  readonly status: JobStatus;
  /** The status before; absent for a job just submitted. */
  readonly previousStatus?: JobStatus;
  /** A FAILED job's `error.code` (`INVALID_DATA`, `TIMEOUT`, `NO_GPU_CAPACITY`, …). */
  readonly errorCode?: string;
  readonly attempt: number;
  /** A sweep's trial: its sweep. */
  readonly sweepId?: string;
  /** When the change was written (the record's `updatedAt`). */
  readonly time: string;
}

/** Where events go. It may throw: the lifecycle logs a failed listener and never fails the change. */
export type JobEventSink = (detail: JobStateDetail) => Promise<void> | void;

/** The event of a change, or `undefined` when the status did not change (progress, a new attempt). */
export function jobStateDetail({ tenant, record, from }: JobChange): JobStateDetail | undefined {
  if (from === record.status) return undefined;
  return {
    tenant,
    jobId: record.id,
    name: record.name,
    status: record.status,
    ...(from ? { previousStatus: from } : {}),
    ...(record.status === 'FAILED' && record.error ? { errorCode: record.error.code } : {}),
    attempt: record.attempt,
    ...(record.sweepId ? { sweepId: record.sweepId } : {}),
    time: record.updatedAt,
  };
}

/** The lifecycle subscriber: one event per change of status. */
export function jobStateEvents(sink: JobEventSink): JobListener {
  return async (change) => {
    const detail = jobStateDetail(change);
    if (detail) await sink(detail);
  };
}

/** Locally: the same events as log lines (`descent job state change`, with the detail as keys). */
export const logJobEvents =
  (log: Logger): JobEventSink =>
  (detail) => {
    log.info(JOB_EVENT_DETAIL_TYPE, { source: JOB_EVENT_SOURCE, ...detail });
  };
