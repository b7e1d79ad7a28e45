/**
 * The typed descent client: every route of the API over `fetch`, so it runs in Node.js and in
 * browsers alike (no Node imports here; types come from `core/` as types only).
 *
 * Idempotent calls (GET, DELETE, cancel, and submit, which always sends an `Idempotency-Key`) are
 * retried with exponential backoff and jitter on 429, 5xx and network errors; `POST /datasets` is
 * not, since a retry could create a second dataset.
 */
import {
  type BackoffPolicy,
  backoffDelayMs,
  DEFAULT_POLL,
  DEFAULT_RETRY,
  isRetryableStatus,
  parseRetryAfterMs,
  type RetryPolicy,
  retryDelayMs,
  sleep,
} from './backoff.ts';
import { apiErrorFrom, DescentError, DescentNetworkError } from './errors.ts';
import {
  type CreateDatasetRequest,
  type CreateDatasetResponse,
  type DatasetFormat,
  type DatasetView,
  type DeleteDatasetResponse,
  type DeleteJobResponse,
  type EpochMetrics,
  isSweepFinishedStatus,
  isTerminalStatus,
  type JobEvent,
  type JobEventsResponse,
  type JobMetricsResponse,
  type JobRecord,
  type JobResult,
  type JobSpecRequest,
  type ListDatasetsQuery,
  type ListDatasetsResponse,
  type ListJobsQuery,
  type ListJobsResponse,
  type ListSweepsQuery,
  type ListSweepsResponse,
  type PredictionsRequest,
  type PredictResponse,
  type Sweep,
  type SweepRecord,
  type SweepRequest,
  type ValidateJobResponse,
} from './types.ts';

/** Gives a bearer token for each request (e.g. a cached OAuth client-credentials token). */
export type TokenProvider = () => Promise<string>;

export interface DescentClientOptions {
  /** The API's base URL, e.g. `http://127.0.0.1:8080` or the HTTP API's invoke URL. */
  readonly baseUrl: string;
  /** A bearer token, or a function that gives one per request. */
  readonly token?: string | TokenProvider;
  /** Retries of idempotent calls. @default DEFAULT_RETRY (4 tries) */
  readonly retry?: Partial<RetryPolicy>;
  /** Polling of `waitForJob`, `follow` and `watchMetrics`. @default DEFAULT_POLL (0.25 s → 2 s) */
  readonly poll?: Partial<BackoffPolicy>;
  /** Time to wait for a response's headers before giving up on a try, in ms. @default 30000 */
  readonly timeoutMs?: number;
  /** @default globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** Source of jitter, in [0, 1). @default Math.random */
  readonly random?: () => number;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
}

export interface SubmitOptions extends CallOptions {
  /** Makes the submit safe to repeat: the same key and body give the same job. @default a random UUID */
  readonly idempotencyKey?: string;
}

export interface UploadOptions extends CallOptions {
  readonly name: string;
  /** @default 'csv' */
  readonly format?: DatasetFormat;
}

export interface WaitOptions extends CallOptions {
  /** Give up after this long, in ms (the job keeps running). @default no limit */
  readonly timeoutMs?: number;
  /** Called with each record read while waiting. */
  readonly onUpdate?: (job: JobRecord) => void;
}

export interface FollowOptions extends CallOptions {
  /** Yield per-epoch metrics. @default true */
  readonly metrics?: boolean;
  /** Yield events (state changes, warnings). @default true */
  readonly events?: boolean;
}

/** What `follow` yields, in the order it happened as far as polling can tell. */
export type JobUpdate =
  | { readonly type: 'job'; readonly job: JobRecord }
  | { readonly type: 'epoch'; readonly metrics: EpochMetrics }
  | { readonly type: 'event'; readonly event: JobEvent };

/** Bytes for an upload: a `Blob` (a `File`, or Node's `fs.openAsBlob`), bytes or text. */
export type UploadBody = Blob | ArrayBuffer | Uint8Array | string;

interface RequestOptions extends CallOptions {
  readonly body?: unknown;
  readonly query?: Record<string, string | number | undefined>;
  readonly headers?: Record<string, string>;
  /** Safe to send twice: retried on 429 / 5xx / network errors. */
  readonly idempotent: boolean;
  /** Send the bearer token (not to presigned URLs). @default true */
  readonly auth?: boolean;
}

/** A new random `Idempotency-Key` (a UUID where the platform has `crypto.randomUUID`). */
export function newIdempotencyKey(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  const bytes = c.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Content types of the text formats; the upload itself uses the headers the API signed. */
const CONTENT_TYPES: Partial<Record<DatasetFormat, string>> = {
  csv: 'text/csv',
  jsonl: 'application/x-ndjson',
};

export class DescentClient {
  readonly baseUrl: string;
  readonly #token: string | TokenProvider | undefined;
  readonly #retry: RetryPolicy;
  readonly #poll: BackoffPolicy;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #random: () => number;

  constructor(options: DescentClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#token = options.token;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#poll = { ...DEFAULT_POLL, ...options.poll };
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    // Bound: a browser's fetch throws "Illegal invocation" when called as another object's method.
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#random = options.random ?? Math.random;
  }

  // ── Datasets ─────────────────────────────────────────────────────────────────────────────────

  /** `POST /datasets`: a dataset id and a presigned upload URL. Not retried (it is not idempotent). */
  createDataset(request: CreateDatasetRequest, options: CallOptions = {}): Promise<CreateDatasetResponse> {
    return this.#json('POST', '/datasets', { ...options, body: request, idempotent: false });
  }

  /** Creates a dataset and PUTs `data` to its upload URL (the PUT is retried); returns the dataset. */
  async uploadDataset(
    data: UploadBody,
    options: UploadOptions,
  ): Promise<CreateDatasetResponse & { bytes: number }> {
    const format = options.format ?? 'csv';
    const blob =
      data instanceof Blob
        ? data
        : new Blob([data as BlobPart], { type: CONTENT_TYPES[format] ?? 'application/octet-stream' });
    const call = options.signal ? { signal: options.signal } : {};
    const created = await this.createDataset({ name: options.name, format }, call);
    if (blob.size > created.maxBytes) {
      throw new DescentError(
        'DATASET_TOO_LARGE',
        `The file is ${blob.size} bytes; the service accepts at most ${created.maxBytes}.`,
      );
    }
    const response = await this.#send(created.uploadMethod, created.uploadUrl, {
      ...call,
      body: blob,
      headers: created.uploadHeaders,
      idempotent: true,
      auth: false,
    });
    await response.body?.cancel();
    return { ...created, bytes: blob.size };
  }

  /** `GET /datasets`: one page, newest first. */
  listDatasets(query: ListDatasetsQuery = {}, options: CallOptions = {}): Promise<ListDatasetsResponse> {
    return this.#json('GET', '/datasets', { ...options, query: { ...query }, idempotent: true });
  }

  /** Every dataset (newest first), page after page. */
  async *datasets(options: CallOptions = {}): AsyncGenerator<DatasetView> {
    let cursor: string | undefined;
    do {
      const page = await this.listDatasets({ limit: 100, ...(cursor ? { cursor } : {}) }, options);
      yield* page.datasets;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  /** `GET /datasets/{id}`: name, format, size, whether it is uploaded. */
  getDataset(datasetId: string, options: CallOptions = {}): Promise<DatasetView> {
    return this.#json('GET', `/datasets/${encodeURIComponent(datasetId)}`, { ...options, idempotent: true });
  }

  /** `DELETE /datasets/{id}`: refused (409 `DATASET_IN_USE`) while a queued or running job uses it. */
  deleteDataset(datasetId: string, options: CallOptions = {}): Promise<DeleteDatasetResponse> {
    return this.#json('DELETE', `/datasets/${encodeURIComponent(datasetId)}`, {
      ...options,
      idempotent: true,
    });
  }

  // ── Jobs ─────────────────────────────────────────────────────────────────────────────────────

  /**
   * `POST /jobs`: validates, stores and queues the job; returns its QUEUED record. Sends an
   * `Idempotency-Key` (a new one unless given), so a retried submit never makes a second job.
   */
  submitJob(spec: JobSpecRequest, options: SubmitOptions = {}): Promise<JobRecord> {
    return this.#json('POST', '/jobs', {
      ...options,
      body: spec,
      headers: { 'idempotency-key': options.idempotencyKey ?? newIdempotencyKey() },
      idempotent: true,
    });
  }

  /**
   * `POST /jobs?dryRun=true`: every check of a submit, nothing stored. Without a real `dataset.id`
   * (none yet, or a placeholder) the dataset checks are skipped, so a spec can be checked before its
   * data is uploaded.
   */
  validateJob(spec: JobSpecRequest, options: CallOptions = {}): Promise<ValidateJobResponse> {
    return this.#json('POST', '/jobs', {
      ...options,
      body: spec,
      query: { dryRun: 'true' },
      idempotent: true,
    });
  }

  /**
   * `POST /jobs/{id}/predict`: raw rows (column → value, as in the training file; at most 1,000) →
   * one prediction per row, in order; `explain` adds attributions per input column. Retried like a
   * GET: a prediction changes nothing.
   */
  predict(
    jobId: string,
    rows: readonly Record<string, unknown>[],
    options: CallOptions & { explain?: boolean } = {},
  ): Promise<PredictResponse> {
    const { explain, ...call } = options;
    return this.#json('POST', `/jobs/${encodeURIComponent(jobId)}/predict`, {
      ...call,
      body: { rows, ...(explain ? { explain } : {}) },
      idempotent: true,
    });
  }

  /**
   * `POST /jobs/{id}/predictions`: queues batch predictions of a dataset; returns the job (kind
   * `predictions`). Sends an `Idempotency-Key` (a new one unless given), so a retry never makes a second job.
   */
  submitPredictions(
    jobId: string,
    request: PredictionsRequest,
    options: SubmitOptions = {},
  ): Promise<JobRecord> {
    return this.#json('POST', `/jobs/${encodeURIComponent(jobId)}/predictions`, {
      ...options,
      body: request,
      headers: { 'idempotency-key': options.idempotencyKey ?? newIdempotencyKey() },
      idempotent: true,
    });
  }

  /** `GET /jobs`: one page, newest first. */
  listJobs(query: ListJobsQuery = {}, options: CallOptions = {}): Promise<ListJobsResponse> {
    return this.#json('GET', '/jobs', { ...options, query: { ...query }, idempotent: true });
  }

  /** Every job (newest first), page after page. */
  async *jobs(
    query: Omit<ListJobsQuery, 'cursor'> = {},
    options: CallOptions = {},
  ): AsyncGenerator<JobRecord> {
    let cursor: string | undefined;
    do {
      const page = await this.listJobs({ ...query, ...(cursor ? { cursor } : {}) }, options);
      yield* page.jobs;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  /** `GET /jobs/{id}`. */
  getJob(jobId: string, options: CallOptions = {}): Promise<JobRecord> {
    return this.#json('GET', `/jobs/${encodeURIComponent(jobId)}`, { ...options, idempotent: true });
  }

  /** `GET /jobs/{id}/metrics`: the per-epoch history so far. */
  getMetrics(jobId: string, options: CallOptions = {}): Promise<JobMetricsResponse> {
    return this.#json('GET', `/jobs/${encodeURIComponent(jobId)}/metrics`, { ...options, idempotent: true });
  }

  /** `GET /jobs/{id}/events`: state changes and warnings. */
  getEvents(jobId: string, options: CallOptions = {}): Promise<JobEventsResponse> {
    return this.#json('GET', `/jobs/${encodeURIComponent(jobId)}/events`, { ...options, idempotent: true });
  }

  /** `POST /jobs/{id}/cancel`: QUEUED → CANCELLED, RUNNING → CANCELLING. Retried: cancelling twice is harmless. */
  cancelJob(jobId: string, options: CallOptions = {}): Promise<JobRecord> {
    return this.#json('POST', `/jobs/${encodeURIComponent(jobId)}/cancel`, { ...options, idempotent: true });
  }

  /** `GET /jobs/{id}/result`: a SUCCEEDED job's report and presigned artifact URLs. */
  getResult(jobId: string, options: CallOptions = {}): Promise<JobResult> {
    return this.#json('GET', `/jobs/${encodeURIComponent(jobId)}/result`, { ...options, idempotent: true });
  }

  /** `DELETE /jobs/{id}`: purges a finished job's objects. */
  deleteJob(jobId: string, options: CallOptions = {}): Promise<DeleteJobResponse> {
    return this.#json('DELETE', `/jobs/${encodeURIComponent(jobId)}`, { ...options, idempotent: true });
  }

  // ── Sweeps ───────────────────────────────────────────────────────────────────────────────────

  /**
   * `POST /sweeps`: validates the sweep and every trial's spec, stores it and queues its first trials;
   * returns the sweep record. Sends an `Idempotency-Key`, so a retried submit never makes a second sweep.
   */
  submitSweep(request: SweepRequest, options: SubmitOptions = {}): Promise<SweepRecord> {
    return this.#json('POST', '/sweeps', {
      ...options,
      body: request,
      headers: { 'idempotency-key': options.idempotencyKey ?? newIdempotencyKey() },
      idempotent: true,
    });
  }

  /** `GET /sweeps`: one page, newest first (each sweep with trial counts, not its whole table). */
  listSweeps(query: ListSweepsQuery = {}, options: CallOptions = {}): Promise<ListSweepsResponse> {
    return this.#json('GET', '/sweeps', { ...options, query: { ...query }, idempotent: true });
  }

  /** `GET /sweeps/{id}`: status, trials table, ranking, best trial and the report's presigned URLs. */
  getSweep(sweepId: string, options: CallOptions = {}): Promise<Sweep> {
    return this.#json('GET', `/sweeps/${encodeURIComponent(sweepId)}`, { ...options, idempotent: true });
  }

  /** `POST /sweeps/{id}/cancel`: no more trials; queued ones cancelled at once, running ones after their epoch. */
  cancelSweep(sweepId: string, options: CallOptions = {}): Promise<Sweep> {
    return this.#json('POST', `/sweeps/${encodeURIComponent(sweepId)}/cancel`, {
      ...options,
      idempotent: true,
    });
  }

  /**
   * Follows a sweep: yields it whenever its status or a trial changes (status, epochs, objective),
   * and returns it once it has finished (SUCCEEDED, FAILED or CANCELLED).
   */
  async *followSweep(sweepId: string, options: CallOptions = {}): AsyncGenerator<Sweep, Sweep> {
    let lastKey = '';
    for (let idle = 0; ; ) {
      const sweep = await this.getSweep(sweepId, options);
      const key = JSON.stringify([sweep.status, sweep.trials.map((t) => [t.status, t.epochs, t.objective])]);
      const changed = key !== lastKey;
      lastKey = key;
      if (isSweepFinishedStatus(sweep.status)) return sweep;
      if (changed) yield sweep;
      idle = changed ? 0 : idle + 1;
      await sleep(backoffDelayMs(idle + 1, this.#poll, this.#random), options.signal);
    }
  }

  /** `GET /openapi.json` (no token needed). */
  getOpenApi(options: CallOptions = {}): Promise<Record<string, unknown>> {
    return this.#json('GET', '/openapi.json', { ...options, idempotent: true, auth: false });
  }

  /** GETs a presigned artifact URL (retried until the headers arrive); the caller reads the body. */
  openArtifact(url: string, options: CallOptions = {}): Promise<Response> {
    return this.#send('GET', url, { ...options, idempotent: true, auth: false });
  }

  // ── Waiting and following ────────────────────────────────────────────────────────────────────

  /**
   * Polls a job until it is SUCCEEDED, FAILED or CANCELLED and returns that record (it does not
   * throw for a failed job: look at `status` and `error`). Polls quickly while the job changes and
   * backs off (up to the poll cap) while it does not.
   */
  async waitForJob(jobId: string, options: WaitOptions = {}): Promise<JobRecord> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    let last = '';
    for (let idle = 0; ; ) {
      const job = await this.getJob(jobId, options);
      options.onUpdate?.(job);
      if (isTerminalStatus(job.status)) return job;
      const key = `${job.status}:${job.attempt}:${job.progress.epoch}`;
      idle = key === last ? idle + 1 : 0;
      last = key;
      const delay = backoffDelayMs(idle + 1, this.#poll, this.#random);
      if (Date.now() + delay > deadline) {
        throw new DescentError(
          'WAIT_TIMEOUT',
          `Job ${jobId} is still ${job.status} after ${options.timeoutMs} ms; it keeps running.`,
        );
      }
      await sleep(delay, options.signal);
    }
  }

  /**
   * Follows a job as it trains: yields each new epoch's metrics, each new event, and the record
   * whenever its status or progress changes, and returns once the job has finished (after yielding
   * everything it left behind).
   */
  async *follow(jobId: string, options: FollowOptions = {}): AsyncGenerator<JobUpdate, JobRecord> {
    const withMetrics = options.metrics ?? true;
    const withEvents = options.events ?? true;
    let lastEpoch = 0;
    let eventsSeen = 0;
    let lastKey = '';
    for (let idle = 0; ; ) {
      // The record first: once it is final, the metrics and events read after it are complete.
      const job = await this.getJob(jobId, options);
      const terminal = isTerminalStatus(job.status);
      let changed = false;
      const epochs = withMetrics ? (await this.getMetrics(jobId, options)).epochs : [];
      const fresh = epochs.filter((m) => m.epoch > lastEpoch);
      let events: JobEvent[] = [];
      if (withEvents) {
        // The final state's event is written just after the record: give it a moment to appear.
        for (let tries = 0; ; tries++) {
          events = (await this.getEvents(jobId, options)).events;
          const finalEventSeen = events.some((e) => e.type === 'state' && e.status === job.status);
          if (!terminal || finalEventSeen || tries >= 10) break;
          await sleep(100, options.signal);
        }
      }
      // Epochs carry no time: a start (QUEUED / RUNNING) goes before this batch's epochs, the rest after.
      const newEvents = events.slice(eventsSeen);
      eventsSeen = Math.max(eventsSeen, events.length);
      const isStart = (e: JobEvent) =>
        e.type === 'state' && (e.status === 'QUEUED' || e.status === 'RUNNING');
      const firstLater = newEvents.findIndex((e) => !isStart(e));
      const leading = firstLater < 0 ? newEvents : newEvents.slice(0, firstLater);
      const later = firstLater < 0 ? [] : newEvents.slice(firstLater);
      for (const event of leading) yield { type: 'event', event };
      for (const metrics of fresh) {
        lastEpoch = metrics.epoch;
        yield { type: 'epoch', metrics };
      }
      for (const event of later) yield { type: 'event', event };
      if (fresh.length > 0 || newEvents.length > 0) changed = true;
      const key = `${job.status}:${job.attempt}:${job.progress.epoch}`;
      if (key !== lastKey) {
        lastKey = key;
        changed = true;
        yield { type: 'job', job };
      }
      if (terminal) return job;
      idle = changed ? 0 : idle + 1;
      await sleep(backoffDelayMs(idle + 1, this.#poll, this.#random), options.signal);
    }
  }

  /** Each epoch's metrics as it arrives; ends when the job has finished. */
  async *watchMetrics(jobId: string, options: CallOptions = {}): AsyncGenerator<EpochMetrics, JobRecord> {
    const updates = this.follow(jobId, { ...options, events: false });
    for (;;) {
      const next = await updates.next();
      if (next.done) return next.value;
      if (next.value.type === 'epoch') yield next.value.metrics;
    }
  }

  // ── Plumbing ─────────────────────────────────────────────────────────────────────────────────

  async #json<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    const response = await this.#send(method, `${this.baseUrl}${path}`, options);
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async #bearer(): Promise<string | undefined> {
    const token = this.#token;
    return typeof token === 'function' ? await token() : token;
  }

  /** One call with its retries; resolves with a 2xx response, throws a typed error otherwise. */
  async #send(method: string, target: string, options: RequestOptions): Promise<Response> {
    const url = new URL(target);
    for (const [k, v] of Object.entries(options.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    // Names the call in errors; never with a query string, which may hold a presigned signature.
    const label = `${method} ${target.startsWith(`${this.baseUrl}/`) ? target.slice(this.baseUrl.length).split('?')[0] : url.origin + url.pathname}`;
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    let body: BodyInit | undefined;
    if (options.body instanceof Blob) body = options.body;
    else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    const maxAttempts = options.idempotent ? Math.max(1, this.#retry.maxAttempts) : 1;
    for (let attempt = 1; ; attempt++) {
      if (options.auth ?? true) {
        const token = await this.#bearer();
        if (token) headers.authorization = `Bearer ${token}`;
      }
      // The timeout covers the wait for the headers only: a large download may take longer.
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(), this.#timeoutMs);
      const signal = options.signal ? AbortSignal.any([options.signal, timeout.signal]) : timeout.signal;
      let response: Response;
      try {
        response = await this.#fetch(url, {
          method,
          headers,
          ...(body === undefined ? {} : { body }),
          signal,
        });
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        const timedOut = timeout.signal.aborted;
        const failure = new DescentNetworkError(
          timedOut
            ? `${label}: no answer within ${this.#timeoutMs} ms.`
            : `${label}: cannot reach ${url.origin} (${causeOf(error)}).`,
          { cause: error, timeout: timedOut },
        );
        if (attempt >= maxAttempts) throw failure;
        await sleep(retryDelayMs(attempt, this.#retry, undefined, this.#random), options.signal);
        continue;
      } finally {
        clearTimeout(timer);
      }
      if (response.ok) return response;
      const text = await response.text().catch(() => '');
      const error = apiErrorFrom(response.status, response.statusText, text, response.headers, label);
      if (attempt >= maxAttempts || !isRetryableStatus(response.status)) throw error;
      const retryAfter = parseRetryAfterMs(response.headers.get('retry-after'), Date.now());
      await sleep(retryDelayMs(attempt, this.#retry, retryAfter, this.#random), options.signal);
    }
  }
}

/** The innermost reason of a failed fetch, e.g. `ECONNREFUSED` (Node wraps it in "fetch failed"). */
function causeOf(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 5; depth++) {
    const cause = (current as { cause?: unknown })?.cause;
    if (!cause) break;
    current = cause;
  }
  const e = current as { code?: unknown; message?: unknown };
  return typeof e?.code === 'string' ? e.code : typeof e?.message === 'string' ? e.message : String(current);
}
