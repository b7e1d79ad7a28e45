/**
 * What each function may touch, declared beside the code that needs it (the route table names one
 * for every route; the other functions' are below), as data: `infra/grants.ts` turns a declaration
 * into the function's IAM statements and the environment that goes with them, and
 * `test/integration/permissions.test.ts` runs the real handlers and the trainer against stores and
 * queues that enforce the statements synthesized for each function, so a grant that is too small
 * (a call is denied) or too large (a statement is never used) fails a test.
 *
 * Object keys are IAM patterns relative to the bucket (`*` matches any characters, `/` included), in
 * the layout of `core/platform/keys.ts`.
 */

/** An object key pattern, as in an IAM resource ARN after `bucket/`. */
export type KeyPattern = string;

/** The key layout of `core/platform/keys.ts`, as patterns. */
export const KEYS = {
  /** Job records, events, metrics, checkpoints, models and reports. */
  jobs: 'tenants/*/jobs/*',
  /** One marker per job, newest first (listing). */
  jobIndex: 'tenants/*/job-index/*',
  /** The active-jobs quota's slots: one per QUEUED / RUNNING / CANCELLING job (`core/jobs/active-jobs.ts`). */
  activeJobs: 'tenants/*/active-slots/*',
  /** Checkpoints only: the trainer deletes superseded ones. */
  checkpoints: 'tenants/*/jobs/*/checkpoints/*',
  /** Dataset descriptions and data (uploaded through presigned URLs). */
  datasets: 'tenants/*/datasets/*',
  /** One marker per dataset, newest first (listing). */
  datasetIndex: 'tenants/*/dataset-index/*',
  /** A dataset's description only (its row count is cached there). */
  datasetMeta: 'tenants/*/datasets/*/dataset.json',
  sweeps: 'tenants/*/sweeps/*',
  sweepIndex: 'tenants/*/sweep-index/*',
  activeSweeps: 'tenants/*/active-sweeps/*',
  /** Data migrations done once per tenant (e.g. listing markers for datasets made before them). */
  migrations: 'tenants/*/migrations/*',
  /** `Idempotency-Key` records of POST /jobs and POST /sweeps. */
  idempotency: 'tenants/*/idempotency/*',
} as const satisfies Record<string, KeyPattern>;

export interface Grants {
  /**
   * `s3:GetObject` (and presigned GETs) under these keys. Any read also gets `s3:ListBucket` on the
   * bucket: listings (of markers, of a job's files) and a 404, not a 403, for a missing key.
   */
  readonly read?: readonly KeyPattern[];
  /** `s3:ListBucket` alone: key listings without reading the objects (a quota summing sizes). */
  readonly list?: boolean;
  /** `s3:PutObject` (and presigned PUTs, multipart uploads) under these keys. */
  readonly write?: readonly KeyPattern[];
  /** `s3:DeleteObject` under these keys. */
  readonly delete?: readonly KeyPattern[];
  /** Send job messages to the jobs queue (submitting a job or a sweep's trial). */
  readonly enqueue?: boolean;
  /** Put job state-change events on EventBridge (anything that changes a job's status). */
  readonly publishEvents?: boolean;
  /** Submit jobs to AWS Batch and find them by name (the dispatcher). */
  readonly startTraining?: boolean;
  /** Terminate AWS Batch jobs (cancelling a job that Batch holds). */
  readonly stopTraining?: boolean;
  /** List the AWS Batch jobs of the job queue (the capacity watch). */
  readonly watchTraining?: boolean;
}

/** No permission at all (the public OpenAPI document). */
export const NO_GRANTS: Grants = {};

const unique = <T>(items: readonly T[]): T[] => [...new Set(items)];

/** The union of several declarations. */
export function combine(...grants: Grants[]): Grants {
  const keys = (pick: (g: Grants) => readonly KeyPattern[] | undefined) => {
    const all = unique(grants.flatMap((g) => pick(g) ?? []));
    return all.length > 0 ? all : undefined;
  };
  const flag = (pick: (g: Grants) => boolean | undefined) => (grants.some(pick) ? true : undefined);
  const out = {
    read: keys((g) => g.read),
    write: keys((g) => g.write),
    delete: keys((g) => g.delete),
    list: flag((g) => g.list),
    enqueue: flag((g) => g.enqueue),
    publishEvents: flag((g) => g.publishEvents),
    startTraining: flag((g) => g.startTraining),
    stopTraining: flag((g) => g.stopTraining),
    watchTraining: flag((g) => g.watchTraining),
  };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as Grants;
}

/** Reading one job's documents (record, events, metrics, report; presigned artifact URLs). */
export const READ_JOB: Grants = { read: [KEYS.jobs] };

/**
 * A change of a job's status through the lifecycle: its record and events, its active-jobs slot freed
 * when it ends (read first: only the slot its job still holds), the state-change event.
 */
export const CHANGE_JOB: Grants = {
  read: [KEYS.jobs, KEYS.activeJobs],
  write: [KEYS.jobs],
  delete: [KEYS.activeJobs],
  publishEvents: true,
};

/**
 * Storing and queueing a new job (a submit, a sweep's trial): its record, index and active markers,
 * the quota count (which clears markers of jobs that ended), the message; and taking it all back when
 * the message cannot be sent.
 */
export const SUBMIT_JOB: Grants = combine(CHANGE_JOB, {
  write: [KEYS.jobIndex, KEYS.activeJobs],
  delete: [KEYS.jobs, KEYS.jobIndex],
  enqueue: true,
});

/**
 * One pass of the sweep controller (a trial ended, a sweep read or cancelled): the sweep's record,
 * report and plots, its active marker once finished, its next trials submitted, its queued trials
 * cancelled.
 */
export const SWEEP_PASS: Grants = combine(SUBMIT_JOB, {
  read: [KEYS.sweeps],
  write: [KEYS.sweeps],
  delete: [KEYS.activeSweeps],
});

/**
 * A pass over a sweep being cancelled (`POST /sweeps/{id}/cancel`): its queued trials cancelled (their
 * Batch jobs terminated), running ones asked to stop, the sweep finished once they all ended. A
 * sweep that is not RUNNING queues nothing, so this pass sends no message.
 */
export const SWEEP_CANCEL: Grants = combine(CHANGE_JOB, {
  read: [KEYS.sweeps],
  write: [KEYS.sweeps],
  delete: [KEYS.activeSweeps],
  stopTraining: true,
});

/** Idempotency-Key records: looked up, reserved, released when the request is taken back. */
const IDEMPOTENCY: Grants = {
  read: [KEYS.idempotency],
  write: [KEYS.idempotency],
  delete: [KEYS.idempotency],
};

/** Checking a job's dataset (and a fine-tuning base) at submit, caching the dataset's row count. */
const CHECK_DATA: Grants = { read: [KEYS.datasets, KEYS.jobs], write: [KEYS.datasetMeta] };

/** The grants of the functions that are not routes (the routes' are in the route table). */
export const FUNCTION_GRANTS = {
  /** SQS → AWS Batch: records the Batch job id in the job record; terminates a duplicate. */
  'dispatch-jobs': { read: [KEYS.jobs], write: [KEYS.jobs], startTraining: true, stopTraining: true },
  /** Batch job-state events: ends a job its trainer could not, and advances a trial's sweep (its next trials). */
  'batch-events': combine(CHANGE_JOB, SWEEP_PASS),
  /** Dead-lettered messages: fails the job, and advances its sweep. */
  'dead-letter': combine(CHANGE_JOB, SWEEP_PASS),
  /** The capacity watch: counts Batch's jobs, ends those waiting with nothing training (AWS Batch only). */
  'watch-training': { watchTraining: true, stopTraining: true },
  /** The scheduled sweep pass: every active sweep of every tenant. */
  'advance-sweeps': combine(SWEEP_PASS, { stopTraining: true }),
} as const satisfies Record<string, Grants>;

/**
 * The trainer (the Batch job role): reads the job, its dataset and base model, writes its progress,
 * checkpoints, metrics, model and report, deletes superseded checkpoints and (when the job ends) its
 * active marker. A trial's end records itself in its sweep (and finishes the sweep after its last
 * trial), but the trainer queues nothing: the job-state event of its Batch job makes the next pass.
 */
export const TRAINER_GRANTS: Grants = combine(CHANGE_JOB, {
  read: [KEYS.datasets, KEYS.sweeps],
  write: [KEYS.sweeps],
  delete: [KEYS.checkpoints, KEYS.activeSweeps],
});

/** Grants for the functions behind the routes, composed from the pieces above. */
export const ROUTE_GRANTS = {
  // The storage quota lists (and sums) the tenant's dataset objects before a new one is made.
  createDataset: { list: true, write: [KEYS.datasets, KEYS.datasetIndex] },
  // Lists the newest-first markers (s3:ListBucket comes with any read) and reads each description;
  // once per tenant, indexes the datasets made before the markers existed.
  listDatasets: { read: [KEYS.datasets, KEYS.migrations], write: [KEYS.datasetIndex, KEYS.migrations] },
  readDataset: { read: [KEYS.datasets] },
  // Refused while an active job or an unfinished sweep uses it: reads their records.
  // (The active-sweep markers are listed, not read; the active-jobs slots are read for their job ids.)
  deleteDataset: {
    read: [KEYS.datasets, KEYS.activeJobs, KEYS.jobs, KEYS.sweeps],
    delete: [KEYS.datasets, KEYS.datasetIndex],
  },
  // The model's job and the dataset are read; the batch is submitted (and taken back) like a job.
  submitPredictions: combine(SUBMIT_JOB, { read: [KEYS.datasets, KEYS.jobs] }),
  submitJob: combine(SUBMIT_JOB, CHECK_DATA, IDEMPOTENCY),
  listJobs: { read: [KEYS.jobs] },
  readJob: READ_JOB,
  cancelJob: combine(CHANGE_JOB, SWEEP_PASS, { stopTraining: true }),
  // Purges the job, frees a slot it may still hold and the Idempotency-Key that made it.
  deleteJob: {
    read: [KEYS.jobs, KEYS.activeJobs, KEYS.idempotency],
    delete: [KEYS.jobs, KEYS.jobIndex, KEYS.activeJobs, KEYS.idempotency],
  },
  submitSweep: combine(SWEEP_PASS, CHECK_DATA, IDEMPOTENCY, {
    write: [KEYS.sweepIndex, KEYS.activeSweeps],
  }),
  listSweeps: { read: [KEYS.sweeps] },
  readSweep: combine(SWEEP_PASS, { stopTraining: true }),
  cancelSweep: SWEEP_CANCEL,
} as const satisfies Record<string, Grants>;
