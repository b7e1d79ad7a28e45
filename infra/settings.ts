/**
 * The deployment's settings, read once from CDK context: the `descent:*` keys of `cdk.json`, which
 * `cdk deploy -c descent:maxWorkers=8` overrides for one run. Every setting has a default here, so a key
 * left out of `cdk.json` is fine; a malformed value fails synthesis with a message that names the key.
 */
import type { Node } from 'constructs';
import { GPU_INSTANCE_TYPES, gpuInstanceType } from '../core/platform/gpu-instances.ts';
import { DEFAULT_LIMITS } from '../core/platform/limits.ts';

export interface DescentSettings {
  /**
   * `descent:instanceTypes`: GPU instance types AWS Batch may launch, best first; each must be one of
   * `GPU_INSTANCE_TYPES` (`core/platform/gpu-instances.ts`: g4dn, g5, g6, g6e), so that its vCPUs, GPU
   * and price are known. A job runs on one instance (one GPU).
   * @default ['g5.xlarge', 'g4dn.xlarge']
   */
  readonly instanceTypes: readonly string[];
  /**
   * `descent:maxWorkers`: most jobs training at once (one GPU instance each). The compute environment's
   * maximum vCPUs is this times the largest vCPU count of `instanceTypes`: mind the account's EC2
   * quota for G and VT instances, in vCPUs (`npm run preflight` checks it).
   * @default 4
   */
  readonly maxWorkers: number;
  /**
   * `descent:spot`: add a Spot compute environment, tried before the on-demand one. A reclaimed
   * instance's job is retried by AWS Batch and resumes from its last checkpoint.
   * @default false
   */
  readonly spot: boolean;
  /**
   * `descent:maxAttempts`: AWS Batch attempts of a job (a lost host, a Spot reclaim, a trainer's
   * temporary error each use one), and tries to hand a job to Batch before it is dead-lettered.
   * @default 3
   */
  readonly maxAttempts: number;
  /**
   * `descent:tenants`: one Cognito app client (API client id and secret) per name.
   * @default ['default']
   */
  readonly tenants: readonly string[];
  /**
   * `descent:logRetentionDays`: how long the trainer, Lambda and VPC flow logs are kept; one of
   * CloudWatch Logs' retention values (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, …).
   * @default 30
   */
  readonly logRetentionDays: number;
  /**
   * `descent:noncurrentVersionDays`: days an overwritten or deleted object (an old checkpoint, an earlier
   * version of a job record, a purged job) is kept before it expires.
   * @default 30
   */
  readonly noncurrentVersionDays: number;
  /**
   * `descent:apiRateLimit` and `descent:apiBurstLimit`: the API's steady request rate (per second) and
   * burst, for all tenants together.
   * @default 50 and 100
   */
  readonly apiRateLimit: number;
  readonly apiBurstLimit: number;
  /**
   * `descent:quotaActiveJobs`: most QUEUED + RUNNING jobs of one tenant.
   * @default 20 (`DEFAULT_LIMITS` of `core/platform/limits.ts`)
   */
  readonly quotaActiveJobs: number;
  /**
   * `descent:quotaDatasetBytes`: largest dataset upload, at most 5 GiB (one presigned PUT).
   * @default 268435456 (256 MiB)
   */
  readonly quotaDatasetBytes: number;
  /**
   * `descent:quotaEpochRows`: most epochs × rows one job may train.
   * @default 2000000000
   */
  readonly quotaEpochRows: number;
  /**
   * `descent:quotaStorageBytes`: bytes of datasets one tenant may keep (uploaded, or held for an upload
   * still to come), checked when a dataset is created.
   * @default 10737418240 (10 GiB)
   */
  readonly quotaStorageBytes: number;
  /**
   * `descent:jobMemoryBytes`: the memory one job may need by its resource estimate (model, optimizer,
   * activations, data), checked at submit and again by the trainer (at most its container's memory).
   * @default 6442450944 (6 GiB: the trainer container reserves 8 GiB)
   */
  readonly jobMemoryBytes: number;
  /**
   * `descent:maxColumns`: the most columns a dataset may have (CSV header fields, JSON Lines keys).
   * @default 10000
   */
  readonly maxColumns: number;
  /**
   * `descent:maxLineBytes`: the longest line (CSV record, JSON Lines line) a dataset may have, in bytes.
   * @default 4194304 (4 MiB)
   */
  readonly maxLineBytes: number;
  /**
   * `descent:maxRows`: the most data rows a job may read.
   * @default 5000000
   */
  readonly maxRows: number;
  /**
   * `descent:maxRuntimeSeconds`: the most `resources.maxRuntimeSeconds` a job may ask for.
   * @default 604800 (7 days)
   */
  readonly maxRuntimeSeconds: number;
  /**
   * `descent:defaultMaxRuntimeSeconds`: a job's `resources.maxRuntimeSeconds` when it gives none.
   * @default 86400 (24 hours)
   */
  readonly defaultMaxRuntimeSeconds: number;
  /**
   * `descent:urlExpirySeconds`: lifetime of presigned upload and download URLs (at most 12 hours: a
   * URL signed with a Lambda function's role credentials cannot outlive them).
   * @default 900
   */
  readonly urlExpirySeconds: number;
  /**
   * `descent:instancePrices`: hourly prices (USD) that replace the catalogue's us-east-1 on-demand
   * prices, by instance type (another region, Spot, a discount), for each job's `estimatedCostUsd`.
   * @default {} (the catalogue's prices)
   */
  readonly instancePrices: Readonly<Record<string, number>>;
  /**
   * `descent:natGateways`: NAT gateways of the trainers' VPC (1 is cheapest; 2 survives an AZ outage).
   * @default 1
   */
  readonly natGateways: number;
  /**
   * `descent:alarmEmail`: an address subscribed to the alarm topic (it must confirm by email).
   * @default - none: subscribe to the topic yourself
   */
  readonly alarmEmail?: string;
  /**
   * `descent:capacityWaitMinutes`: how long a job may wait for a GPU instance when AWS Batch reports
   * that none can be had (no EC2 capacity); then it FAILED with NO_GPU_CAPACITY. A job that Batch
   * cannot place at all (a misconfiguration) fails after 10 minutes. From 10 to 1440.
   * @default 60
   */
  readonly capacityWaitMinutes: number;
  /**
   * `descent:failureRateAlarmPercent`: alarm when more than this share of the jobs that ended in an
   * hour failed (at least 3 jobs).
   * @default 25
   */
  readonly failureRateAlarmPercent: number;
  /**
   * `descent:api5xxAlarmThreshold`: alarm when the API answers this many 5xx in 5 minutes.
   * @default 5
   */
  readonly api5xxAlarmThreshold: number;
}

export const DEFAULT_SETTINGS: DescentSettings = {
  instanceTypes: ['g5.xlarge', 'g4dn.xlarge'],
  maxWorkers: 4,
  spot: false,
  maxAttempts: 3,
  tenants: ['default'],
  logRetentionDays: 30,
  noncurrentVersionDays: 30,
  apiRateLimit: 50,
  apiBurstLimit: 100,
  quotaActiveJobs: DEFAULT_LIMITS.maxActiveJobs,
  quotaDatasetBytes: DEFAULT_LIMITS.maxDatasetBytes,
  quotaEpochRows: DEFAULT_LIMITS.maxEpochRows,
  quotaStorageBytes: DEFAULT_LIMITS.maxStorageBytes,
  jobMemoryBytes: 6 * 1024 ** 3,
  maxColumns: DEFAULT_LIMITS.maxColumns,
  maxLineBytes: DEFAULT_LIMITS.maxLineBytes,
  maxRows: DEFAULT_LIMITS.maxRows,
  maxRuntimeSeconds: DEFAULT_LIMITS.maxRuntimeSeconds,
  defaultMaxRuntimeSeconds: DEFAULT_LIMITS.defaultMaxRuntimeSeconds,
  urlExpirySeconds: DEFAULT_LIMITS.uploadUrlSeconds,
  natGateways: 1,
  instancePrices: {},
  capacityWaitMinutes: 60,
  failureRateAlarmPercent: 25,
  api5xxAlarmThreshold: 5,
};

/** The context key of a setting: `descent:<name>`. */
export const contextKey = (name: keyof DescentSettings): string => `descent:${name}`;

/** The values CloudWatch Logs accepts as a retention in days. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** A context value comes from `cdk.json` (JSON) or from `-c key=value` (always a string). */
type ContextValue = unknown;

function settingError(name: keyof DescentSettings, expected: string, value: ContextValue): Error {
  return new Error(`Context ${contextKey(name)} must be ${expected}, got ${JSON.stringify(value)}.`);
}

function readInt(
  name: keyof DescentSettings,
  value: ContextValue,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw settingError(name, `an integer from ${min} to ${max}`, value);
  }
  return n;
}

function readBool(name: keyof DescentSettings, value: ContextValue, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw settingError(name, 'true or false', value);
}

function readList(
  name: keyof DescentSettings,
  value: ContextValue,
  fallback: readonly string[],
  pattern: RegExp,
): readonly string[] {
  if (value === undefined) return fallback;
  let list: unknown = value;
  if (typeof value === 'string') {
    // `-c descent:tenants=a,b` or `-c 'descent:tenants=["a","b"]'`.
    list = value.trim().startsWith('[') ? safeJson(value) : value.split(',').map((s) => s.trim());
  }
  if (
    !Array.isArray(list) ||
    list.length === 0 ||
    !list.every((item) => typeof item === 'string' && pattern.test(item)) ||
    new Set(list).size !== list.length
  ) {
    throw settingError(name, `a non-empty list of distinct names matching ${pattern}`, value);
  }
  return list as string[];
}

function readInstanceTypes(value: ContextValue, fallback: readonly string[]): readonly string[] {
  const types = readList('instanceTypes', value, fallback, /^[a-z0-9-]+\.[a-z0-9]+$/);
  const unknown = types.filter((t) => !gpuInstanceType(t));
  if (unknown.length > 0) {
    throw settingError(
      'instanceTypes',
      `GPU instance types descent knows (${GPU_INSTANCE_TYPES.map((t) => t.type).join(', ')}); unknown: ${unknown.join(', ')}`,
      value,
    );
  }
  return types;
}

function readPrices(value: ContextValue): Readonly<Record<string, number>> {
  if (value === undefined) return {};
  const parsed = typeof value === 'string' ? safeJson(value) : value;
  const valid =
    typeof parsed === 'object' &&
    parsed !== null &&
    !Array.isArray(parsed) &&
    Object.entries(parsed).every(
      ([type, price]) =>
        gpuInstanceType(type) !== undefined &&
        typeof price === 'number' &&
        Number.isFinite(price) &&
        price >= 0 &&
        price <= 1000,
    );
  if (!valid)
    throw settingError(
      'instancePrices',
      'an object of known instance types to prices from 0 to 1000 (USD per hour)',
      value,
    );
  return parsed as Record<string, number>;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The settings of the app that `node` belongs to, with defaults for missing keys. */
export function readSettings(node: Node): DescentSettings {
  const get = (name: keyof DescentSettings): ContextValue => node.tryGetContext(contextKey(name));
  const d = DEFAULT_SETTINGS;
  const known = new Set([...Object.keys(DEFAULT_SETTINGS), 'alarmEmail'].map((k) => `descent:${k}`));
  const unknown = Object.keys(node.getAllContext()).filter((k) => k.startsWith('descent:') && !known.has(k));
  if (unknown.length > 0) {
    throw new Error(`Unknown context ${unknown.join(', ')}: the settings are ${[...known].join(', ')}.`);
  }
  const logRetentionDays = readInt('logRetentionDays', get('logRetentionDays'), d.logRetentionDays, 1, 3653);
  if (!(LOG_RETENTION_DAYS as readonly number[]).includes(logRetentionDays)) {
    throw settingError('logRetentionDays', `one of ${LOG_RETENTION_DAYS.join(', ')}`, logRetentionDays);
  }
  const alarmEmail = get('alarmEmail');
  if (alarmEmail !== undefined && (typeof alarmEmail !== 'string' || !/^[^@\s]+@[^@\s]+$/.test(alarmEmail))) {
    throw settingError('alarmEmail', 'an email address', alarmEmail);
  }
  const settings: DescentSettings = {
    instanceTypes: readInstanceTypes(get('instanceTypes'), d.instanceTypes),
    maxWorkers: readInt('maxWorkers', get('maxWorkers'), d.maxWorkers, 1, 1000),
    spot: readBool('spot', get('spot'), d.spot),
    maxAttempts: readInt('maxAttempts', get('maxAttempts'), d.maxAttempts, 1, 1000),
    tenants: readList('tenants', get('tenants'), d.tenants, /^[\w+=,.@-]{1,128}$/),
    logRetentionDays,
    noncurrentVersionDays: readInt(
      'noncurrentVersionDays',
      get('noncurrentVersionDays'),
      d.noncurrentVersionDays,
      1,
      3650,
    ),
    apiRateLimit: readInt('apiRateLimit', get('apiRateLimit'), d.apiRateLimit, 1, 10_000),
    apiBurstLimit: readInt('apiBurstLimit', get('apiBurstLimit'), d.apiBurstLimit, 1, 5_000),
    quotaActiveJobs: readInt('quotaActiveJobs', get('quotaActiveJobs'), d.quotaActiveJobs, 1, 1_000_000),
    quotaDatasetBytes: readInt(
      'quotaDatasetBytes',
      get('quotaDatasetBytes'),
      d.quotaDatasetBytes,
      1,
      5 * 1024 ** 3,
    ),
    quotaEpochRows: readInt(
      'quotaEpochRows',
      get('quotaEpochRows'),
      d.quotaEpochRows,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
    quotaStorageBytes: readInt(
      'quotaStorageBytes',
      get('quotaStorageBytes'),
      d.quotaStorageBytes,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
    jobMemoryBytes: readInt(
      'jobMemoryBytes',
      get('jobMemoryBytes'),
      d.jobMemoryBytes,
      64 * 1024 ** 2,
      Number.MAX_SAFE_INTEGER,
    ),
    maxColumns: readInt('maxColumns', get('maxColumns'), d.maxColumns, 1, 1_000_000),
    maxLineBytes: readInt('maxLineBytes', get('maxLineBytes'), d.maxLineBytes, 1024, 1024 ** 3),
    maxRows: readInt('maxRows', get('maxRows'), d.maxRows, 1, Number.MAX_SAFE_INTEGER),
    maxRuntimeSeconds: readInt(
      'maxRuntimeSeconds',
      get('maxRuntimeSeconds'),
      d.maxRuntimeSeconds,
      60,
      366 * 86_400,
    ),
    defaultMaxRuntimeSeconds: readInt(
      'defaultMaxRuntimeSeconds',
      get('defaultMaxRuntimeSeconds'),
      d.defaultMaxRuntimeSeconds,
      60,
      366 * 86_400,
    ),
    urlExpirySeconds: readInt('urlExpirySeconds', get('urlExpirySeconds'), d.urlExpirySeconds, 60, 43_200),
    natGateways: readInt('natGateways', get('natGateways'), d.natGateways, 1, 2),
    instancePrices: readPrices(get('instancePrices')),
    ...(alarmEmail ? { alarmEmail: alarmEmail as string } : {}),
    capacityWaitMinutes: readInt(
      'capacityWaitMinutes',
      get('capacityWaitMinutes'),
      d.capacityWaitMinutes,
      10,
      1440,
    ),
    failureRateAlarmPercent: readInt(
      'failureRateAlarmPercent',
      get('failureRateAlarmPercent'),
      d.failureRateAlarmPercent,
      1,
      100,
    ),
    api5xxAlarmThreshold: readInt(
      'api5xxAlarmThreshold',
      get('api5xxAlarmThreshold'),
      d.api5xxAlarmThreshold,
      1,
      100_000,
    ),
  };
  return settings;
}
