/**
 * Job outcomes as metrics: a subscriber of the job lifecycle that counts every job once, when the
 * change that ended it is written (so a redelivery, a replay or a second reader never counts it twice).
 */
import { emitMetrics, type MetricsSink, type MetricValues } from '../platform/emf.ts';
import type { JobRecord } from './job-record.ts';
import type { JobChange, JobListener } from './lifecycle.ts';

/** SUCCEEDED → `jobsSucceeded` and `trainingSeconds`; FAILED → `jobsFailed`, or `jobsDeadLettered` for MAX_ATTEMPTS. */
export function endedJobMetrics(record: JobRecord): MetricValues {
  if (record.status === 'SUCCEEDED') {
    return {
      jobsSucceeded: 1,
      ...(record.resources?.trainingSeconds !== undefined
        ? { trainingSeconds: record.resources.trainingSeconds }
        : {}),
    };
  }
  if (record.status === 'FAILED')
    return record.error?.code === 'MAX_ATTEMPTS' ? { jobsDeadLettered: 1 } : { jobsFailed: 1 };
  return {};
}

export function jobEndMetrics(sink: MetricsSink, now: () => Date = () => new Date()): JobListener {
  return ({ tenant, record, from }: JobChange) => {
    if (from === record.status) return;
    emitMetrics(sink, endedJobMetrics(record), {
      timestamp: now(),
      properties: {
        tenant,
        jobId: record.id,
        status: record.status,
        kind: record.kind ?? 'training',
        ...(record.backend ? { backend: record.backend } : {}),
      },
    });
  };
}
