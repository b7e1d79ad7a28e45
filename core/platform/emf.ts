/**
 * descent's metrics, in CloudWatch's embedded metric format (EMF): one JSON log line carries the
 * values, and CloudWatch Logs turns them into metrics in the `descent` namespace. No SDK call, no
 * agent: the Lambda handlers and the trainer only print the line. The names are shared with the
 * dashboard and alarms in `infra/monitoring.ts`, so they cannot drift.
 *
 * Everything here is pure except `printMetrics`, which writes a line to stdout.
 */

/** The CloudWatch namespace of every descent metric. */
export const METRIC_NAMESPACE = 'descent';

/** A subset of CloudWatch's units: the ones descent uses. */
export type MetricUnit = 'Count' | 'Seconds' | 'Milliseconds' | 'Percent' | 'None';

/** Every metric descent emits, by name (camelCase), with its unit. */
export const METRICS = {
  /** A job was accepted and queued (`POST /jobs`, not an idempotent replay). */
  jobsSubmitted: { name: 'jobsSubmitted', unit: 'Count' },
  /** A trainer finished a job and it SUCCEEDED. */
  jobsSucceeded: { name: 'jobsSucceeded', unit: 'Count' },
  /** A trainer finished a job and it FAILED (bad data, divergence: an unrecoverable error). */
  jobsFailed: { name: 'jobsFailed', unit: 'Count' },
  /** The dead-letter handler marked a job FAILED after the maximum attempts (the worker kept crashing). */
  jobsDeadLettered: { name: 'jobsDeadLettered', unit: 'Count' },
  /** Wall-clock training time of a SUCCEEDED job (the record's `resources.trainingSeconds`). */
  trainingSeconds: { name: 'trainingSeconds', unit: 'Seconds' },
  /** A trainer started its TensorFlow.js backend (properties: backend, device, package). */
  trainerStarted: { name: 'trainerStarted', unit: 'Count' },
  /**
   * A trainer that must train on a GPU has none: it refused to start (TensorFlow sees no GPU, or the
   * backend could not start). The "trainer without a GPU" alarm watches it.
   */
  gpuUnavailable: { name: 'gpuUnavailable', unit: 'Count' },
  /** A training GPU's utilisation, sampled every minute while a job trains (`nvidia-smi`). */
  gpuUtilization: { name: 'gpuUtilization', unit: 'Percent' },
  /** AWS Batch jobs entering each state (Batch's job-state events): the dashboard's queue states. */
  batchJobsRunnable: { name: 'batchJobsRunnable', unit: 'Count' },
  batchJobsStarting: { name: 'batchJobsStarting', unit: 'Count' },
  batchJobsRunning: { name: 'batchJobsRunning', unit: 'Count' },
  batchJobsSucceeded: { name: 'batchJobsSucceeded', unit: 'Count' },
  batchJobsFailed: { name: 'batchJobsFailed', unit: 'Count' },
  /** AWS Batch jobs waiting, starting and training now, and the longest wait (the capacity watch, every 5 minutes). */
  batchJobsWaitingNow: { name: 'batchJobsWaitingNow', unit: 'Count' },
  batchJobsStartingNow: { name: 'batchJobsStartingNow', unit: 'Count' },
  batchJobsRunningNow: { name: 'batchJobsRunningNow', unit: 'Count' },
  oldestWaitSeconds: { name: 'oldestWaitSeconds', unit: 'Seconds' },
  /** AWS Batch reported its job queue blocked by a job it cannot place (no capacity, misconfiguration). */
  jobQueueBlocked: { name: 'jobQueueBlocked', unit: 'Count' },
  /** A job FAILED because no GPU capacity could be had within the capacity wait. */
  jobsWithoutCapacity: { name: 'jobsWithoutCapacity', unit: 'Count' },
} as const satisfies Record<string, { name: string; unit: MetricUnit }>;

export type MetricName = keyof typeof METRICS;

/** Metric values by name; several in one line share its timestamp and properties. */
export type MetricValues = Partial<Record<MetricName, number>>;

export interface EmfOptions {
  /** When the values were observed (default: now). */
  readonly timestamp?: Date;
  /**
   * Extra members of the log line (job id, tenant, backend): searchable in CloudWatch Logs Insights,
   * but not dimensions, so they add no metric (and no cost) per tenant or job.
   */
  readonly properties?: Readonly<Record<string, string | number | boolean>>;
}

/**
 * The EMF log line (JSON, no newline) of `values`. The metrics have no dimensions (an empty
 * DimensionSet), so each name is one metric that the dashboard sums across all handlers and workers.
 * Returns `undefined` when there is no finite value to report.
 */
export function emfLine(values: MetricValues, options: EmfOptions = {}): string | undefined {
  const entries = (Object.entries(values) as [MetricName, number | undefined][]).filter(
    (entry): entry is [MetricName, number] => typeof entry[1] === 'number' && Number.isFinite(entry[1]),
  );
  if (entries.length === 0) return undefined;
  const document: Record<string, unknown> = {
    ...options.properties,
    _aws: {
      Timestamp: (options.timestamp ?? new Date()).getTime(),
      CloudWatchMetrics: [
        {
          Namespace: METRIC_NAMESPACE,
          Dimensions: [[]],
          Metrics: entries.map(([name]) => ({ Name: METRICS[name].name, Unit: METRICS[name].unit })),
        },
      ],
    },
  };
  for (const [name, value] of entries) document[METRICS[name].name] = value;
  return JSON.stringify(document);
}

/** Where metric lines go: stdout, which Lambda and the Batch container's awslogs driver send to CloudWatch Logs. */
export type MetricsSink = (line: string) => void;

/** Writes straight to stdout (not `console.log`, whose Lambda prefix would break the JSON). */
export const printMetrics: MetricsSink = (line) => {
  process.stdout.write(`${line}\n`);
};

/** Drops metric lines: the local stack and tests. */
export const noMetrics: MetricsSink = () => {};

/** Builds the line of `values` and hands it to `sink`, if there is anything to report. */
export function emitMetrics(sink: MetricsSink, values: MetricValues, options?: EmfOptions): void {
  const line = emfLine(values, options);
  if (line !== undefined) sink(line);
}
