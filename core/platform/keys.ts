/**
 * Storage keys. Every key is built here from validated parts, so no caller-controlled string can add
 * a path segment or reach another tenant's prefix.
 */
import { InvalidKeyError } from './errors.ts';
import { ULID_PATTERN } from './ids.ts';

export const TENANT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

function checkTenant(tenant: string): string {
  if (!TENANT_PATTERN.test(tenant)) throw new InvalidKeyError(`invalid tenant id ${JSON.stringify(tenant)}`);
  return tenant;
}

function checkId(id: string): string {
  if (!ULID_PATTERN.test(id)) throw new InvalidKeyError(`invalid id ${JSON.stringify(id)}`);
  return id;
}

export const isValidId = (id: string): boolean => ULID_PATTERN.test(id);

export const tenantPrefix = (tenant: string): string => `tenants/${checkTenant(tenant)}/`;

export const jobPrefix = (tenant: string, jobId: string): string =>
  `${tenantPrefix(tenant)}jobs/${checkId(jobId)}/`;

export const jobKeys = (tenant: string, jobId: string) => {
  const p = jobPrefix(tenant, jobId);
  return {
    prefix: p,
    record: `${p}job.json`,
    metrics: `${p}metrics.json`,
    events: `${p}events.json`,
    report: `${p}report.json`,
    preprocessing: `${p}preprocessing.json`,
    lossCurve: `${p}loss-curve.svg`,
    modelJson: `${p}model/model.json`,
    weights: `${p}model/weights.bin`,
    checkpoints: `${p}checkpoints/`,
    /** A predictions job's output file. */
    predictions: (format: 'csv' | 'jsonl') => `${p}predictions.${format}`,
  };
};

/** Newest-first listing: one empty marker per job under a key that sorts in reverse time order. */
export const jobIndexPrefix = (tenant: string): string => `${tenantPrefix(tenant)}job-index/`;

/** The active-jobs quota's slots: one per QUEUED / RUNNING / CANCELLING job (`core/jobs/active-jobs.ts`). */
export const activeSlotPrefix = (tenant: string): string => `${tenantPrefix(tenant)}active-slots/`;

export const activeSlotKey = (tenant: string, slot: number): string => {
  if (!Number.isSafeInteger(slot) || slot < 0) throw new InvalidKeyError(`invalid slot ${slot}`);
  return `${activeSlotPrefix(tenant)}${String(slot).padStart(6, '0')}`;
};

export const datasetKeys = (tenant: string, datasetId: string) => {
  const p = `${tenantPrefix(tenant)}datasets/${checkId(datasetId)}/`;
  return {
    prefix: p,
    meta: `${p}dataset.json`,
    data: `${p}data`,
    modelJson: `${p}model.json`,
    weights: `${p}weights.bin`,
  };
};

/** Newest-first listing of datasets: one marker per dataset, as for jobs. */
export const datasetIndexPrefix = (tenant: string): string => `${tenantPrefix(tenant)}dataset-index/`;

/** Every dataset object of a tenant (what the storage quota counts). */
export const datasetsPrefix = (tenant: string): string => `${tenantPrefix(tenant)}datasets/`;

export const sweepPrefix = (tenant: string, sweepId: string): string =>
  `${tenantPrefix(tenant)}sweeps/${checkId(sweepId)}/`;

/** `objective-vs-model.layers.0.units.svg`: a plot's file name, from a parameter path (letters, digits, dots). */
export const sweepPlotName = (parameterPath: string): string =>
  `objective-vs-${parameterPath
    .replace(/\[(\d+)\]/g, '.$1')
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .slice(0, 200)}.svg`;

export const sweepKeys = (tenant: string, sweepId: string) => {
  const p = sweepPrefix(tenant, sweepId);
  return {
    prefix: p,
    record: `${p}sweep.json`,
    report: `${p}report.json`,
    plot: (parameterPath: string) => `${p}plots/${sweepPlotName(parameterPath)}`,
  };
};

/** Newest-first listing of sweeps: one marker per sweep, as for jobs. */
export const sweepIndexPrefix = (tenant: string): string => `${tenantPrefix(tenant)}sweep-index/`;

/** One marker per sweep that is not finished: what the local controller loop advances. */
export const activeSweepsPrefix = (tenant: string): string => `${tenantPrefix(tenant)}active-sweeps/`;

/** An `Idempotency-Key` of `POST /jobs` or `POST /sweeps` (by its SHA-256): what the first request made. */
export const idempotencyKey = (tenant: string, kind: 'job' | 'sweep', keySha256: string): string => {
  if (!/^[0-9a-f]{64}$/.test(keySha256)) throw new InvalidKeyError('invalid idempotency key hash');
  return `${tenantPrefix(tenant)}idempotency/${kind === 'sweep' ? 'sweeps/' : ''}${keySha256}.json`;
};
