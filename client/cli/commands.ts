/** The CLI's commands: each parses nothing itself (main does), calls the client, prints the answer. */
import { createWriteStream, openAsBlob } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ParseArgsOptionsConfig } from 'node:util';
import type { DescentClient } from '../client.ts';
import {
  configPath,
  type ResolvedConfig,
  readConfig,
  resetConfig,
  type StoredConfig,
  writeConfig,
} from '../config.ts';
import { DescentApiError } from '../errors.ts';
import { formatNumber } from '../report.ts';
import type { DatasetFormat, JobRecord, JobSpecRequest, JobStatus } from '../types.ts';
import { epochLine, eventLine, followJob } from './follow.ts';
import type { CliIO } from './main.ts';
import { bar, bytes, type Output } from './output.ts';
import { jobLines, resultLines } from './summary.ts';

/** A mistake in the command line itself: exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The followed job ended FAILED or CANCELLED: exit code 1. */
export class JobNotSucceeded extends Error {
  readonly job: JobRecord;
  constructor(job: JobRecord) {
    super(
      job.status === 'FAILED'
        ? `Job ${job.id} failed: ${job.error ? `${job.error.message} [${job.error.code}]` : 'no reason given'}`
        : job.status === 'STOPPED_EARLY'
          ? `Job ${job.id} was stopped early at epoch ${job.progress.epoch} by its sweep's median stopping rule.`
          : `Job ${job.id} was cancelled${job.progress.epoch ? ` at epoch ${job.progress.epoch}` : ''}.`,
    );
    this.name = 'JobNotSucceeded';
    this.job = job;
  }
  toJSON() {
    return {
      code:
        this.job.status === 'FAILED'
          ? (this.job.error?.code ?? 'JOB_FAILED')
          : this.job.status === 'STOPPED_EARLY'
            ? 'JOB_STOPPED_EARLY'
            : 'JOB_CANCELLED',
      message: this.message,
      jobId: this.job.id,
      status: this.job.status,
    };
  }
}

export interface Context {
  readonly io: CliIO;
  readonly out: Output;
  readonly config: ResolvedConfig;
  readonly client: DescentClient;
}

type Values = Record<string, string | boolean | undefined>;

export interface Command {
  /** One or two words: `train`, `jobs list`. */
  readonly name: string;
  readonly usage: string;
  /** A shorter usage for the command list. @default usage */
  readonly synopsis?: string;
  readonly summary: string;
  readonly help?: string;
  readonly options: ParseArgsOptionsConfig;
  /** Names of the required positional arguments, then the optional ones. */
  readonly required: readonly string[];
  readonly optional?: readonly string[];
  /** Takes any number of positionals past the required ones. */
  readonly variadic?: boolean;
  run(context: Context, values: Values, positionals: string[]): Promise<number>;
}

const STATUSES: readonly JobStatus[] = [
  'QUEUED',
  'RUNNING',
  'CANCELLING',
  'SUCCEEDED',
  'FAILED',
  'CANCELLED',
  'STOPPED_EARLY',
];

export const str = (v: string | boolean | undefined): string | undefined =>
  typeof v === 'string' ? v : undefined;

/** `.jsonl` / `.ndjson` files are JSON Lines; anything else is CSV unless `--format` says otherwise. */
function formatOf(file: string, explicit: string | undefined): DatasetFormat {
  if (explicit !== undefined) {
    if (explicit !== 'csv' && explicit !== 'jsonl')
      throw new UsageError(`--format must be csv or jsonl, not "${explicit}"`);
    return explicit;
  }
  return ['.jsonl', '.ndjson'].includes(extname(file).toLowerCase()) ? 'jsonl' : 'csv';
}

export async function upload(
  context: Context,
  file: string,
  name: string | undefined,
  format: string | undefined,
) {
  const path = resolve(context.io.cwd, file);
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) throw new UsageError(`cannot read ${file}: no such file`);
  // A file-backed Blob: read as it is sent, and again if the PUT is retried.
  const blob = await openAsBlob(path);
  const dataset = await context.client.uploadDataset(blob, {
    name: name ?? basename(file),
    format: formatOf(file, format),
  });
  return { datasetId: dataset.datasetId, name: dataset.name, format: dataset.format, bytes: dataset.bytes };
}

export async function readText(context: Context, file: string): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of context.io.stdin ?? process.stdin) chunks.push(Buffer.from(chunk as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(resolve(context.io.cwd, file), 'utf8');
  } catch (error) {
    throw new UsageError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`,
    );
  }
}

/** Stops following on Ctrl-C with a note that the job goes on. */
function onInterrupt(context: Context, jobId: string): () => void {
  const handler = () => {
    context.out.clearLive();
    context.out.note(
      `\nStopped following; job ${jobId} keeps running (descent jobs cancel ${jobId} stops it).`,
    );
    process.exit(130);
  };
  process.once('SIGINT', handler);
  return () => process.off('SIGINT', handler);
}

/** Follows a job to its end; prints the summary (or the JSON) and returns the exit code. */
async function followToEnd(
  context: Context,
  job: JobRecord,
  extra: Record<string, unknown>,
): Promise<number> {
  const { client, out } = context;
  const stop = onInterrupt(context, job.id);
  let final: JobRecord;
  try {
    final = await followJob(client, out, job.id, 'progress');
  } finally {
    stop();
  }
  const result = final.status === 'SUCCEEDED' ? await client.getResult(final.id) : undefined;
  if (out.json) out.data({ ...extra, job: final, ...(result ? { result } : {}) });
  else if (result) for (const line of resultLines(out, final, result)) out.line(line);
  if (final.status !== 'SUCCEEDED') throw new JobNotSucceeded(final);
  return 0;
}

/** Where `download` puts a job's files by default (ignored by git and Biome in this repository). */
export const DOWNLOADS = 'descent-models';

/** The headline validation metric of a job (its test one without validation), for lists. */
export function headline(job: JobRecord): string {
  const s = job.summary;
  if (job.kind === 'predictions')
    return job.predictions?.rows === undefined ? '–' : `${job.predictions.rows} rows`;
  const value = s?.validation ?? s?.test;
  if (!s || value === undefined) return '–';
  return `${s.metric === 'r2' ? 'R²' : s.metric} ${formatNumber(value)}${s.validation === undefined ? ' (test)' : ''}`;
}

const mask = (token: string) => (token.length <= 8 ? '****' : `${token.slice(0, 6)}…${token.slice(-2)}`);

export const COMMANDS: readonly Command[] = [
  {
    name: 'config',
    usage:
      'config [--url URL] [--token TOKEN | --token-url URL --client-id ID --client-secret S [--scope S]] [--reset]',
    synopsis: 'config [--url URL] [--token TOKEN] …',
    summary: 'Show or set the endpoint and credentials',
    help: [
      'Without options, shows where the endpoint and token come from. With options, saves them to',
      '$XDG_CONFIG_HOME/descent/config.json (default ~/.config/descent/config.json, mode 0600).',
      'DESCENT_URL and DESCENT_TOKEN override the file. For a deployment on AWS, give the Cognito app',
      "client's token endpoint, id and secret: the CLI fetches a client-credentials token and caches it",
      'until it expires.',
    ].join('\n'),
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      'token-url': { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      scope: { type: 'string' },
      reset: { type: 'boolean' },
    },
    required: [],
    async run({ io, out, config }, v) {
      if (v.reset) {
        await resetConfig(io.env);
        if (out.json) out.data({ configFile: configPath(io.env), reset: true });
        else out.line(`Removed ${configPath(io.env)}.`);
        return 0;
      }
      const cognitoFlags = ['token-url', 'client-id', 'client-secret', 'scope'].filter(
        (k) => v[k] !== undefined,
      );
      const changing = v.url !== undefined || v.token !== undefined || cognitoFlags.length > 0;
      if (changing) {
        if (v.url !== undefined) {
          try {
            new URL(str(v.url) ?? '');
          } catch {
            throw new UsageError(`--url must be an absolute URL, not "${v.url}"`);
          }
        }
        if (v.token !== undefined && cognitoFlags.length > 0)
          throw new UsageError('give either --token or the Cognito options, not both');
        const next: StoredConfig = { ...(await readConfig(io.env)) };
        if (v.url !== undefined) next.url = str(v.url) as string;
        if (v.token !== undefined) {
          next.token = str(v.token) as string;
          delete next.cognito;
        }
        if (cognitoFlags.length > 0) {
          const merged = {
            tokenUrl: str(v['token-url']) ?? next.cognito?.tokenUrl,
            clientId: str(v['client-id']) ?? next.cognito?.clientId,
            clientSecret: str(v['client-secret']) ?? next.cognito?.clientSecret,
            scope: str(v.scope) ?? next.cognito?.scope,
          };
          if (!merged.tokenUrl || !merged.clientId || !merged.clientSecret) {
            throw new UsageError('Cognito credentials need --token-url, --client-id and --client-secret');
          }
          next.cognito = {
            tokenUrl: merged.tokenUrl,
            clientId: merged.clientId,
            clientSecret: merged.clientSecret,
            ...(merged.scope ? { scope: merged.scope } : {}),
          };
          delete next.token;
        }
        const path = await writeConfig(next, io.env);
        if (out.json) out.data({ configFile: path, saved: true });
        else out.line(`Saved to ${path}.`);
        return 0;
      }
      const token =
        typeof config.token === 'string'
          ? mask(config.token)
          : config.token
            ? '(fetched from Cognito)'
            : '(none)';
      const view = {
        configFile: config.configFile,
        configFileExists: config.stored !== undefined,
        url: config.url,
        urlSource: config.urlSource,
        tokenSource: config.tokenSource,
        ...(config.stored?.cognito
          ? {
              cognito: {
                tokenUrl: config.stored.cognito.tokenUrl,
                clientId: config.stored.cognito.clientId,
                ...(config.stored.cognito.scope ? { scope: config.stored.cognito.scope } : {}),
              },
            }
          : {}),
      };
      if (out.json) {
        out.data(view);
        return 0;
      }
      out.line(`Config file  ${config.configFile}${config.stored ? '' : ' (none)'}`);
      out.line(`URL          ${config.url}  (${config.urlSource})`);
      out.line(
        `Token        ${token}  (${config.tokenSource === 'local stack' ? config.localTokenFile : config.tokenSource})`,
      );
      if (view.cognito)
        out.line(
          `Cognito      ${view.cognito.clientId} at ${view.cognito.tokenUrl}${view.cognito.scope ? `, scope ${view.cognito.scope}` : ''}`,
        );
      return 0;
    },
  },
  {
    name: 'datasets upload',
    usage: 'datasets upload FILE [--name NAME] [--format csv|jsonl]',
    synopsis: 'datasets upload FILE',
    summary: 'Upload a CSV or JSON Lines file as a new dataset; prints its id',
    options: { name: { type: 'string' }, format: { type: 'string' } },
    required: ['FILE'],
    async run(context, v, [file]) {
      const dataset = await upload(context, file as string, str(v.name), str(v.format));
      if (context.out.json) context.out.data(dataset);
      else
        context.out.line(
          `Uploaded ${dataset.name} (${bytes(dataset.bytes)}) as dataset ${context.out.paint(dataset.datasetId, 'bold')}`,
        );
      return 0;
    },
  },
  {
    name: 'train',
    usage: 'train SPEC [--data FILE | --dataset ID] [--name NAME] [--follow] [--idempotency-key KEY]',
    synopsis: 'train SPEC [--data FILE | --dataset ID] [--follow]',
    summary: 'Submit a job spec (JSON file, or - for stdin); --data uploads its dataset first',
    help: `With --data FILE, the spec is checked first (POST /jobs?dryRun=true), then the file is uploaded
and its dataset id replaces the spec's dataset.id; --dataset ID uses an uploaded dataset instead.
With --follow, shows the progress per epoch (loss, validation loss, ETA) and ends with the report;
the exit code is then 1 when the job fails or is cancelled.`,
    options: {
      data: { type: 'string' },
      dataset: { type: 'string' },
      name: { type: 'string' },
      follow: { type: 'boolean', short: 'f' },
      format: { type: 'string' },
      'idempotency-key': { type: 'string' },
    },
    required: ['SPEC'],
    async run(context, v, [specFile]) {
      const { client, out } = context;
      const text = await readText(context, specFile as string);
      let spec: Record<string, unknown>;
      try {
        spec = JSON.parse(text);
      } catch (error) {
        throw new UsageError(`${specFile} is not valid JSON: ${(error as Error).message}`);
      }
      if (!spec || typeof spec !== 'object' || Array.isArray(spec))
        throw new UsageError(`${specFile} must hold a JSON object (a job spec)`);
      const extra: Record<string, unknown> = {};
      const dataset = (spec.dataset && typeof spec.dataset === 'object' ? spec.dataset : {}) as Record<
        string,
        unknown
      >;
      if (typeof v.name === 'string') spec.name = v.name;
      if (typeof v.data === 'string' && typeof v.dataset === 'string')
        throw new UsageError('give --data FILE or --dataset ID, not both');
      if (typeof v.dataset === 'string') spec.dataset = { ...dataset, id: v.dataset };
      if (typeof v.data === 'string') {
        // Check the spec before uploading, so that a mistake does not leave an orphan dataset behind.
        await client.validateJob(spec as unknown as JobSpecRequest);
        const uploaded = await upload(context, v.data, undefined, str(v.format));
        extra.dataset = uploaded;
        if (!out.json)
          out.note(`Uploaded ${uploaded.name} (${bytes(uploaded.bytes)}) as dataset ${uploaded.datasetId}`);
        spec.dataset = { ...dataset, id: uploaded.datasetId };
      } else if (
        typeof v.dataset !== 'string' &&
        (typeof dataset.id !== 'string' || /^<.*>$/.test(dataset.id))
      ) {
        throw new UsageError(
          `${specFile} names no dataset (dataset.id is ${JSON.stringify(dataset.id)}); give --data FILE to upload one, or --dataset ID`,
        );
      }
      const key = str(v['idempotency-key']);
      // The spec is checked by the API, which lists every problem with its path.
      const job = await client.submitJob(
        spec as unknown as JobSpecRequest,
        key ? { idempotencyKey: key } : {},
      );
      if (!v.follow) {
        if (out.json) out.data({ ...extra, job });
        else {
          out.line(`Submitted job ${out.paint(job.id, 'bold')} (${job.name}): ${out.status(job.status)}`);
          out.note(`Follow it with: descent logs ${job.id} --follow`);
        }
        return 0;
      }
      if (!out.json) out.note(`Submitted job ${job.id} (${job.name})`);
      return followToEnd(context, job, extra);
    },
  },
  {
    name: 'jobs list',
    usage: 'jobs list [--status STATUS] [--kind training|predictions] [--sweep SWEEP] [--limit N] [--all]',
    synopsis: 'jobs list [--status S] [--sweep SWEEP] [--all]',
    summary: "List jobs, newest first, with their headline validation metric (--sweep: a sweep's trials)",
    options: {
      status: { type: 'string' },
      kind: { type: 'string' },
      sweep: { type: 'string' },
      limit: { type: 'string' },
      all: { type: 'boolean' },
    },
    required: [],
    async run({ client, out }, v) {
      const status = str(v.status)?.toUpperCase();
      if (status !== undefined && !STATUSES.includes(status as JobStatus)) {
        throw new UsageError(`--status must be one of ${STATUSES.join(', ')}`);
      }
      const limit = v.limit === undefined ? 20 : Number(v.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100)
        throw new UsageError('--limit must be an integer from 1 to 100');
      const sweepId = str(v.sweep);
      const kind = str(v.kind);
      if (kind !== undefined && kind !== 'training' && kind !== 'predictions')
        throw new UsageError('--kind must be training or predictions');
      const query = {
        ...(status ? { status: status as JobStatus } : {}),
        ...(kind ? { kind: kind as 'training' | 'predictions' } : {}),
        ...(sweepId ? { sweepId } : {}),
        limit,
      };
      let jobs: JobRecord[] = [];
      let nextCursor: string | null = null;
      if (v.all) {
        for await (const job of client.jobs(query)) jobs.push(job);
      } else {
        const page = await client.listJobs(query);
        jobs = page.jobs;
        nextCursor = page.nextCursor;
      }
      if (out.json) {
        out.data({ jobs, nextCursor });
        return 0;
      }
      if (jobs.length === 0) {
        out.line(
          status ? `No ${status} jobs.` : 'No jobs yet: submit one with `descent train SPEC --data FILE`.',
        );
        return 0;
      }
      const rows = jobs.map((j) => [
        j.id,
        j.name,
        out.status(j.status),
        j.kind === 'predictions' ? 'predict' : `${j.progress.epoch}/${j.progress.epochs}`,
        j.progress.loss,
        j.progress.valLoss,
        headline(j),
        j.createdAt.replace('T', ' ').slice(0, 19),
      ]);
      for (const line of out.table(
        ['ID', 'NAME', 'STATUS', 'EPOCH', 'LOSS', 'VAL LOSS', 'METRIC', 'CREATED'],
        rows,
        [3, 6],
      ))
        out.line(line);
      if (nextCursor) out.note('More jobs: use --all, or --limit.');
      return 0;
    },
  },
  {
    name: 'jobs show',
    usage: 'jobs show JOB',
    summary: "A job's status, progress, timings and error",
    options: {},
    required: ['JOB'],
    async run({ client, out }, _v, [id]) {
      const job = await client.getJob(id as string);
      if (out.json) out.data(job);
      else for (const line of jobLines(out, job)) out.line(line);
      return 0;
    },
  },
  {
    name: 'jobs cancel',
    usage: 'jobs cancel JOB',
    summary: 'Cancel a queued job at once, or a running one after its current epoch',
    options: {},
    required: ['JOB'],
    async run({ client, out }, _v, [id]) {
      const job = await client.cancelJob(id as string);
      if (out.json) out.data(job);
      else
        out.line(
          `Job ${job.id}: ${out.status(job.status)}${job.status === 'CANCELLING' ? ' (stops after the current epoch)' : ''}`,
        );
      return 0;
    },
  },
  {
    name: 'jobs delete',
    usage: 'jobs delete JOB',
    summary: "Delete a finished job's record, metrics and artifacts",
    options: {},
    required: ['JOB'],
    async run({ client, out }, _v, [id]) {
      const deleted = await client.deleteJob(id as string);
      if (out.json) out.data(deleted);
      else out.line(`Deleted job ${deleted.id} (${deleted.deletedObjects} objects).`);
      return 0;
    },
  },
  {
    name: 'logs',
    usage: 'logs JOB [--follow]',
    summary: "A job's events and per-epoch metrics; --follow streams them until it ends",
    help: 'With --json, prints one JSON object per line: {"kind": "event", …} or {"kind": "epoch", …}.',
    options: { follow: { type: 'boolean', short: 'f' } },
    required: ['JOB'],
    async run(context, v, [id]) {
      const { client, out } = context;
      const jobId = id as string;
      if (v.follow) {
        const stop = onInterrupt(context, jobId);
        try {
          const job = await followJob(client, out, jobId, 'logs');
          if (job.status !== 'SUCCEEDED') throw new JobNotSucceeded(job);
        } finally {
          stop();
        }
        return 0;
      }
      const [job, { events }, { epochs }] = await Promise.all([
        client.getJob(jobId),
        client.getEvents(jobId),
        client.getMetrics(jobId),
      ]);
      if (out.json) {
        for (const event of events) out.jsonLine({ kind: 'event', ...event });
        for (const metrics of epochs) out.jsonLine({ kind: 'epoch', ...metrics });
        return 0;
      }
      for (const event of events) out.line(eventLine(out, event));
      for (const metrics of epochs) out.line(epochLine(metrics, job.progress.epochs));
      return 0;
    },
  },
  {
    name: 'result',
    usage: 'result JOB',
    summary: "A finished job's report: metrics, confusion matrix, feature importances, artifacts",
    options: {},
    required: ['JOB'],
    async run({ client, out }, _v, [id]) {
      const jobId = id as string;
      const job = await client.getJob(jobId);
      if (job.status === 'FAILED' || job.status === 'CANCELLED' || job.status === 'STOPPED_EARLY')
        throw new JobNotSucceeded(job);
      const result = await client.getResult(jobId);
      if (out.json) out.data(result);
      else for (const line of resultLines(out, job, result)) out.line(line);
      return 0;
    },
  },
  {
    name: 'download',
    usage: 'download JOB [DIR] [--force]',
    summary: `Download a finished job's model, report and loss curve (into DIR, default ./${DOWNLOADS}/JOB)`,
    help: `Files that exist already are not overwritten unless --force. The default folder,
./${DOWNLOADS}/, is ignored by git and the linter in this repository.`,
    options: { force: { type: 'boolean' } },
    required: ['JOB'],
    optional: ['DIR'],
    async run(context, v, [id, dirArg]) {
      const { client, out, io } = context;
      const jobId = id as string;
      const job = await client.getJob(jobId);
      if (job.status === 'FAILED' || job.status === 'CANCELLED' || job.status === 'STOPPED_EARLY')
        throw new JobNotSucceeded(job);
      const result = await client.getResult(jobId);
      const dir = resolve(io.cwd, dirArg ?? join(DOWNLOADS, jobId));
      const names = Object.keys(result.artifacts).filter((n) => n === basename(n) && !n.startsWith('.'));
      if (v.force !== true) {
        const existing = [];
        for (const name of names) if (await stat(join(dir, name)).catch(() => undefined)) existing.push(name);
        if (existing.length)
          throw new UsageError(`${dir} already holds ${existing.join(', ')}; give --force to overwrite`);
      }
      await mkdir(dir, { recursive: true });
      const files: { name: string; path: string; bytes: number }[] = [];
      for (const [name, url] of Object.entries(result.artifacts)) {
        // Names come from the server: keep them inside DIR.
        if (name !== basename(name) || name.startsWith('.')) continue;
        const path = join(dir, name);
        const size = await downloadTo(client, out, url, path, name);
        files.push({ name, path, bytes: size });
        if (!out.json) out.line(`${name.padEnd(16)} ${bytes(size).padStart(9)}  ${path}`);
      }
      if (out.json) out.data({ jobId, dir, files });
      return 0;
    },
  },
];

/** Files at least this big get a progress bar on a TTY. */
const PROGRESS_BYTES = 1024 * 1024;

async function downloadTo(
  client: DescentClient,
  out: Output,
  url: string,
  path: string,
  name: string,
): Promise<number> {
  const response = await client.openArtifact(url);
  const total = Number(response.headers.get('content-length') ?? '') || undefined;
  const showBar = out.live && (total === undefined || total >= PROGRESS_BYTES);
  let received = 0;
  let lastDraw = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      if (showBar && Date.now() - lastDraw > 100) {
        lastDraw = Date.now();
        out.setLive(
          total
            ? `${name}  ${bar(received / total)} ${String(Math.floor((100 * received) / total)).padStart(3)}%  ${bytes(received)} / ${bytes(total)}`
            : `${name}  ${bytes(received)}`,
        );
      }
      callback(null, chunk);
    },
  });
  const partial = `${path}.part`;
  try {
    if (!response.body)
      throw new DescentApiError(response.status, 'EMPTY_BODY', `${name}: the download had no body.`);
    await pipeline(Readable.fromWeb(response.body as never), counter, createWriteStream(partial));
    await rename(partial, path);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  } finally {
    out.clearLive();
  }
  return received;
}

/** Finds the command named by the first one or two words. */
export function findCommand(
  words: readonly string[],
  commands: readonly Command[] = COMMANDS,
): { command: Command } | undefined {
  const two = words.slice(0, 2).join(' ');
  const one = words[0] ?? '';
  const command = commands.find((c) => c.name === two) ?? commands.find((c) => c.name === one);
  return command ? { command } : undefined;
}
