/**
 * The CLI's sweep commands: `sweep SPEC [--follow]` submits a sweep and follows it with a live table
 * of its trials; `sweeps list|show|cancel`. `--json` prints the sweep as JSON instead.
 */
import { formatNumber } from '../report.ts';
import type { Sweep, SweepRecord, SweepRequest, SweepStatus, TrialRecord } from '../types.ts';
import { type Command, type Context, readText, str, UsageError, upload } from './commands.ts';
import { bytes, duration, type Output } from './output.ts';

/** The followed sweep ended FAILED or CANCELLED: exit code 1. */
export class SweepNotSucceeded extends Error {
  readonly sweep: SweepRecord;
  constructor(sweep: SweepRecord) {
    super(
      sweep.status === 'FAILED'
        ? `Sweep ${sweep.id} failed: ${sweep.error ? `${sweep.error.message} [${sweep.error.code}]` : 'no trial succeeded'}`
        : `Sweep ${sweep.id} was cancelled.`,
    );
    this.name = 'SweepNotSucceeded';
    this.sweep = sweep;
  }
  toJSON() {
    return {
      code: this.sweep.status === 'FAILED' ? (this.sweep.error?.code ?? 'SWEEP_FAILED') : 'SWEEP_CANCELLED',
      message: this.message,
      sweepId: this.sweep.id,
      status: this.sweep.status,
    };
  }
}

const SWEEP_STATUSES: readonly SweepStatus[] = ['RUNNING', 'CANCELLING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];

/** Column names of the parameters: the last name of each path, or the whole path where two would clash. */
function parameterHeaders(sweep: SweepRecord): { path: string; header: string }[] {
  const paths = Object.keys(sweep.request.parameters);
  const short = (p: string) =>
    p
      .replace(/\[\d+\]/g, '')
      .split('.')
      .at(-1) ?? p;
  return paths.map((path) => ({
    path,
    header: paths.filter((q) => short(q) === short(path)).length > 1 ? path : short(path),
  }));
}

const valueText = (v: unknown) =>
  typeof v === 'number' ? formatNumber(v) : typeof v === 'string' ? v : JSON.stringify(v);

/** The trials table: ranked trials first (best on top), then the others in trial order. */
export function trialTable(
  out: Output,
  sweep: SweepRecord,
  trials: TrialRecord[] = ordered(sweep),
): string[] {
  const params = parameterHeaders(sweep);
  const metric = sweep.request.objective.metric;
  const rows = trials.map((t) => [
    `${t.trial}${t.trial === sweep.best?.trial ? ' *' : ''}`,
    out.status(t.status),
    ...params.map((p) => valueText(t.parameters[p.path])),
    t.objective,
    t.epochs,
    // Finished trials have their duration; a running one has been running since it started.
    t.durationSeconds !== undefined
      ? duration(t.durationSeconds)
      : t.startedAt
        ? duration((Date.now() - Date.parse(t.startedAt)) / 1000)
        : undefined,
    t.jobId,
  ]);
  return out.table(
    ['TRIAL', 'STATUS', ...params.map((p) => p.header), metric.toUpperCase(), 'EPOCHS', 'TIME', 'JOB'],
    rows,
    [0],
  );
}

/** Ranked trials (best first), then the rest in trial order. */
function ordered(sweep: SweepRecord): TrialRecord[] {
  const ranking = (sweep as Partial<Sweep>).ranking ?? [];
  const byTrial = new Map(sweep.trials.map((t) => [t.trial, t]));
  const ranked = ranking.map((n) => byTrial.get(n)).filter((t): t is TrialRecord => t !== undefined);
  return [...ranked, ...sweep.trials.filter((t) => !ranking.includes(t.trial))];
}

/** One line: status, how many trials are done and running, the best so far. */
export function sweepHeadline(out: Output, sweep: SweepRecord, toStderr = false): string {
  const count = (pred: (t: TrialRecord) => boolean) => sweep.trials.filter(pred).length;
  const ended = count((t) => !['PENDING', 'QUEUED', 'RUNNING', 'CANCELLING'].includes(t.status));
  const running = count((t) => t.status === 'RUNNING');
  const { metric, goal } = sweep.request.objective;
  const status = toStderr ? out.statusErr(sweep.status) : out.status(sweep.status);
  const best = sweep.best
    ? `best ${metric} ${formatNumber(sweep.best.objective)} (trial ${sweep.best.trial})`
    : `objective: ${goal} ${metric}`;
  return `Sweep ${sweep.id} ${sweep.name}  ${status}  ${ended}/${sweep.trials.length} trials done, ${running} running  ${best}`;
}

/** A trial's change as a plain line (logs, CI). */
function trialLine(out: Output, sweep: SweepRecord, t: TrialRecord): string {
  const values = Object.entries(t.parameters)
    .map(([p, v]) => `${p}=${valueText(v)}`)
    .join(' ');
  const result =
    t.objective !== undefined
      ? `  ${sweep.request.objective.metric} ${formatNumber(t.objective)}`
      : t.error
        ? `  ${t.error.code}`
        : '';
  return `trial ${t.trial}/${sweep.trials.length}  ${out.statusErr(t.status)}${result}  ${values}`;
}

/** Follows a sweep to its end: a live table on a TTY, a line per trial change elsewhere. */
async function followSweep(context: Context, sweepId: string): Promise<Sweep> {
  const { client, out } = context;
  const seen = new Map<number, string>();
  const stopFollowing = () => {
    out.clearLive();
    out.note(
      `\nStopped following; sweep ${sweepId} keeps running (descent sweeps cancel ${sweepId} stops it).`,
    );
    process.exit(130);
  };
  process.once('SIGINT', stopFollowing);
  try {
    const updates = client.followSweep(sweepId);
    for (;;) {
      const next = await updates.next();
      const sweep = next.value;
      if (!out.json) {
        if (out.live && !next.done)
          out.setLiveBlock([sweepHeadline(out, sweep, true), '', ...trialTable(out, sweep)]);
        else if (!out.live) {
          for (const t of sweep.trials) {
            const key = `${t.status}:${t.objective}`;
            if (t.status !== 'PENDING' && seen.get(t.trial) !== key) {
              seen.set(t.trial, key);
              out.note(trialLine(out, sweep, t));
            }
          }
        }
      }
      if (next.done) {
        out.clearLive();
        return sweep;
      }
    }
  } finally {
    process.off('SIGINT', stopFollowing);
  }
}

/** The final view: headline, the table, the best trial and the report's files. */
function sweepLines(out: Output, sweep: Sweep): string[] {
  const lines = [sweepHeadline(out, sweep), '', ...trialTable(out, sweep)];
  if (sweep.best) {
    const values = Object.entries(sweep.best.parameters)
      .map(([p, v]) => `${p}=${valueText(v)}`)
      .join(', ');
    lines.push('', `Best: trial ${sweep.best.trial} (job ${sweep.best.jobId}): ${values}`);
  }
  if (sweep.error) lines.push('', `Error: ${out.paint(sweep.error.code, 'red')}: ${sweep.error.message}`);
  const files = Object.keys(sweep.artifacts);
  if (files.length > 0)
    lines.push(`Report: ${files.join(', ')} (descent sweeps show ${sweep.id} --json for their URLs)`);
  return lines;
}

function finish(out: Output, sweep: Sweep): number {
  if (out.json) out.data(sweep);
  else for (const line of sweepLines(out, sweep)) out.line(line);
  if (sweep.status !== 'SUCCEEDED') throw new SweepNotSucceeded(sweep);
  return 0;
}

export const SWEEP_COMMANDS: readonly Command[] = [
  {
    name: 'sweep',
    usage: 'sweep SPEC [--data FILE] [--name NAME] [--follow] [--idempotency-key KEY]',
    synopsis: 'sweep SPEC [--data FILE] [--follow]',
    summary: 'Submit a hyperparameter sweep (JSON file, or - for stdin); --follow shows its trials live',
    help: `SPEC holds {"name", "spec": <job spec>, "parameters": {"path": <domain>}, "strategy", "objective",
"maxTrials", "maxParallel", "earlyStopping"}. With --data FILE, the file is uploaded and its dataset id
replaces spec.dataset.id. With --follow, a live table of the trials (a line per change when not on a
terminal) and then the ranked table; the exit code is 1 when the sweep fails or is cancelled.`,
    options: {
      data: { type: 'string' },
      name: { type: 'string' },
      follow: { type: 'boolean', short: 'f' },
      format: { type: 'string' },
      'idempotency-key': { type: 'string' },
    },
    required: ['SPEC'],
    async run(context, v, [specFile]) {
      const { client, out } = context;
      const text = await readText(context, specFile as string);
      let request: Record<string, unknown>;
      try {
        request = JSON.parse(text);
      } catch (error) {
        throw new UsageError(`${specFile} is not valid JSON: ${(error as Error).message}`);
      }
      if (
        !request ||
        typeof request !== 'object' ||
        Array.isArray(request) ||
        typeof request.spec !== 'object'
      )
        throw new UsageError(
          `${specFile} must hold a sweep: a JSON object with a "spec" (a job spec) and "parameters"`,
        );
      const spec = request.spec as Record<string, unknown>;
      const dataset = (spec.dataset && typeof spec.dataset === 'object' ? spec.dataset : {}) as Record<
        string,
        unknown
      >;
      const extra: Record<string, unknown> = {};
      if (typeof v.data === 'string') {
        const uploaded = await upload(context, v.data, undefined, str(v.format));
        extra.dataset = uploaded;
        if (!out.json)
          out.note(`Uploaded ${uploaded.name} (${bytes(uploaded.bytes)}) as dataset ${uploaded.datasetId}`);
        spec.dataset = { ...dataset, id: uploaded.datasetId };
      } else if (typeof dataset.id !== 'string' || /^<.*>$/.test(dataset.id)) {
        throw new UsageError(
          `${specFile} names no dataset (spec.dataset.id is ${JSON.stringify(dataset.id)}); give --data FILE to upload one`,
        );
      }
      if (typeof v.name === 'string') request.name = v.name;
      const key = str(v['idempotency-key']);
      const submitted = await client.submitSweep(
        request as unknown as SweepRequest,
        key ? { idempotencyKey: key } : {},
      );
      const { maxParallel } = submitted.request;
      if (!v.follow) {
        if (out.json) out.data({ ...extra, sweep: submitted });
        else {
          out.line(
            `Submitted sweep ${out.paint(submitted.id, 'bold')} (${submitted.name}): ${submitted.trials.length} trials, ${maxParallel} at a time`,
          );
          out.note(`Follow it with: descent sweeps show ${submitted.id}`);
        }
        return 0;
      }
      if (!out.json)
        out.note(
          `Submitted sweep ${submitted.id} (${submitted.name}): ${submitted.trials.length} trials, ${maxParallel} at a time`,
        );
      return finish(out, await followSweep(context, submitted.id));
    },
  },
  {
    name: 'sweeps list',
    usage: 'sweeps list [--status STATUS] [--limit N]',
    summary: 'List sweeps, newest first',
    options: { status: { type: 'string' }, limit: { type: 'string' } },
    required: [],
    async run({ client, out }, v) {
      const status = str(v.status)?.toUpperCase();
      if (status !== undefined && !SWEEP_STATUSES.includes(status as SweepStatus))
        throw new UsageError(`--status must be one of ${SWEEP_STATUSES.join(', ')}`);
      const limit = v.limit === undefined ? 20 : Number(v.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100)
        throw new UsageError('--limit must be an integer from 1 to 100');
      const page = await client.listSweeps({ ...(status ? { status: status as SweepStatus } : {}), limit });
      if (out.json) {
        out.data(page);
        return 0;
      }
      if (page.sweeps.length === 0) {
        out.line(
          status
            ? `No ${status} sweeps.`
            : 'No sweeps yet: submit one with `descent sweep SPEC --data FILE`.',
        );
        return 0;
      }
      const rows = page.sweeps.map((s) => [
        s.id,
        s.name,
        out.status(s.status),
        `${s.trials - (s.trialStatuses.PENDING ?? 0)}/${s.trials}`,
        s.best ? `${s.objective.metric} ${formatNumber(s.best.objective)}` : undefined,
        s.createdAt.replace('T', ' ').slice(0, 19),
      ]);
      for (const line of out.table(['ID', 'NAME', 'STATUS', 'STARTED', 'BEST', 'CREATED'], rows, [3]))
        out.line(line);
      if (page.nextCursor) out.note('More sweeps: use --limit.');
      return 0;
    },
  },
  {
    name: 'sweeps show',
    usage: 'sweeps show SWEEP',
    summary: "A sweep's status, its trials ranked by the objective, and its best trial",
    options: {},
    required: ['SWEEP'],
    async run({ client, out }, _v, [id]) {
      const sweep = await client.getSweep(id as string);
      if (out.json) out.data(sweep);
      else for (const line of sweepLines(out, sweep)) out.line(line);
      return 0;
    },
  },
  {
    name: 'sweeps cancel',
    usage: 'sweeps cancel SWEEP',
    summary: 'Cancel a sweep: no more trials; queued ones at once, running ones after their epoch',
    options: {},
    required: ['SWEEP'],
    async run({ client, out }, _v, [id]) {
      const sweep = await client.cancelSweep(id as string);
      if (out.json) out.data(sweep);
      else out.line(`Sweep ${sweep.id}: ${out.status(sweep.status)}`);
      return 0;
    },
  },
];
