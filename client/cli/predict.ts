/**
 * `descent predict` (a file of raw rows → the same file with prediction columns added: online for
 * small files, as a batch job for large ones), `descent compare` (jobs' metrics side by side) and
 * the `datasets` commands.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { csvLine } from '../../core/datasets/cells.ts';
import { cellAt, parseTable } from '../../core/datasets/tabular.ts';
import { predictionFields } from '../../core/training/transform.ts';
import { formatNumber } from '../report.ts';
import type { DatasetView, JobRecord, JobResult } from '../types.ts';
import { type Command, type Context, JobNotSucceeded, str, UsageError, upload } from './commands.ts';
import { bytes } from './output.ts';

/** At most this many rows go to the predict route; more run as a batch job. */
const ONLINE_ROWS = 1000;
/** …and a body under this many bytes (the route takes 1 MiB). */
const ONLINE_BYTES = 900 * 1024;

type Format = 'csv' | 'jsonl';
const formatOf = (file: string, explicit?: string): Format => {
  if (explicit !== undefined && explicit !== 'csv' && explicit !== 'jsonl')
    throw new UsageError(`--format must be csv or jsonl, not "${explicit}"`);
  return (
    (explicit as Format | undefined) ??
    (['.jsonl', '.ndjson'].includes(extname(file).toLowerCase()) ? 'jsonl' : 'csv')
  );
};

/** Refuses to overwrite a file unless `--force`. */
export async function checkWritable(path: string, force: boolean, what = path): Promise<void> {
  if (force) return;
  if (await stat(path).catch(() => undefined))
    throw new UsageError(`${what} exists; give --force to overwrite it`);
}

async function readRows(context: Context, file: string, format: Format) {
  let body: Buffer;
  try {
    body = await readFile(resolve(context.io.cwd, file));
  } catch {
    throw new UsageError(`cannot read ${file}: no such file`);
  }
  const table = await parseTable(body, format).catch((error: Error) => {
    throw new UsageError(`${file}: ${error.message}`);
  });
  const rows = Array.from({ length: table.rowCount }, (_, r) =>
    Object.fromEntries(table.columns.map((name, c) => [name, cellAt(table, c, r)])),
  );
  return { rows, columns: table.columns, bytes: body.byteLength };
}

function render(format: Format, rows: Record<string, unknown>[]): string {
  if (format === 'jsonl') return rows.map((r) => `${JSON.stringify(r)}\n`).join('');
  const header = Object.keys(rows[0] ?? {});
  return `${[csvLine(header), ...rows.map((r) => csvLine(header.map((h) => r[h])))].join('\n')}\n`;
}

async function predictOnline(
  context: Context,
  jobId: string,
  rows: Record<string, unknown>[],
  explain: boolean,
) {
  const answer = await context.client.predict(jobId, rows, { explain });
  return rows.map((row, i) => ({
    ...row,
    ...predictionFields(answer.label, answer.predictions[i] as never),
  }));
}

async function predictBatch(context: Context, jobId: string, file: string, format: Format, explain: boolean) {
  const { client, out } = context;
  const dataset = await upload(context, file, undefined, format);
  if (!out.json)
    out.note(`Uploaded ${dataset.name} (${bytes(dataset.bytes)}) as dataset ${dataset.datasetId}`);
  const job = await client.submitPredictions(jobId, { datasetId: dataset.datasetId, format, explain });
  if (!out.json) out.note(`Queued predictions job ${job.id}; waiting for a worker…`);
  const done = await client.waitForJob(job.id, {
    onUpdate: (j) => out.setLive(`${out.statusErr(j.status)}  ${j.progress.phase ?? ''}`),
  });
  out.clearLive();
  if (done.status !== 'SUCCEEDED') throw new JobNotSucceeded(done);
  const result = await client.getResult(done.id);
  const url = Object.values(result.artifacts)[0] as string;
  const response = await client.openArtifact(url);
  return { text: await response.text(), job: done };
}

export const PREDICT_COMMANDS: readonly Command[] = [
  {
    name: 'predict',
    usage: 'predict JOB --data FILE [--out FILE] [--explain] [--batch] [--format csv|jsonl] [--force]',
    synopsis: 'predict JOB --data FILE [--out FILE]',
    summary:
      "Predict a CSV or JSON Lines file's rows with a job's model; writes them with prediction columns",
    help: `Rows are raw, as in the training file (extra columns, the label and blanks are fine). Adds
predicted_<label>, probability_<class> per class (classification) and, with --explain,
attribution_<column> per input column. Up to ${ONLINE_ROWS} rows go to POST /jobs/{id}/predict; more
(or --batch) upload the file and run a predictions job on the workers. The output has the input's
format (or --format) and goes to --out FILE (refused if it exists, unless --force) or stdout.`,
    options: {
      data: { type: 'string' },
      out: { type: 'string', short: 'o' },
      explain: { type: 'boolean' },
      batch: { type: 'boolean' },
      format: { type: 'string' },
      force: { type: 'boolean' },
    },
    required: ['JOB'],
    async run(context, v, [jobId]) {
      const { out, io } = context;
      const file = str(v.data);
      if (!file) throw new UsageError('give the rows to predict with --data FILE');
      const inFormat = formatOf(file);
      const outFormat = formatOf(str(v.out) ?? file, str(v.format));
      const target = str(v.out) ? resolve(io.cwd, str(v.out) as string) : undefined;
      if (target) await checkWritable(target, v.force === true, str(v.out));
      const input = await readRows(context, file, inFormat);
      const explain = v.explain === true;
      const online = !v.batch && input.rows.length <= ONLINE_ROWS && input.bytes <= ONLINE_BYTES;
      let text: string;
      let via: string;
      // --json without --out: one JSON document with the rows (predictions added) on stdout.
      const asJson = out.json && !target;
      if (online) {
        const rows = await predictOnline(context, jobId as string, input.rows, explain);
        text = asJson ? '' : render(outFormat, rows);
        via = 'online';
        if (asJson) out.data({ jobId, via, rows });
      } else {
        const batch = await predictBatch(
          context,
          jobId as string,
          file,
          asJson ? 'jsonl' : outFormat,
          explain,
        );
        text = batch.text;
        via = `batch job ${batch.job.id}`;
        if (asJson)
          out.data({
            jobId,
            via,
            rows: text
              .split('\n')
              .filter((l) => l.trim() !== '')
              .map((l) => JSON.parse(l)),
          });
      }
      if (target) await writeFile(target, text);
      else if (!asJson) io.stdout.write(text);
      const summary = `Predicted ${input.rows.length} rows with job ${jobId} (${via})${target ? ` into ${target}` : ''}.`;
      if (out.json && target) out.data({ jobId, rows: input.rows.length, via, out: target });
      else if (!out.json) out.note(summary);
      return 0;
    },
  },
  {
    name: 'compare',
    usage: 'compare JOB JOB...',
    summary: "Jobs' validation and test metrics side by side",
    options: {},
    required: ['JOB', 'JOB'],
    variadic: true,
    async run({ client, out }, _v, ids) {
      const jobs = await Promise.all(ids.map((id) => client.getJob(id)));
      const results = await Promise.all(
        jobs.map((j) =>
          j.status === 'SUCCEEDED' && j.kind !== 'predictions' ? client.getResult(j.id) : undefined,
        ),
      );
      const table = compareRows(jobs, results);
      if (out.json) {
        out.data({ jobs: jobs.map((j) => ({ id: j.id, name: j.name, status: j.status })), metrics: table });
        return 0;
      }
      const rows = table.map((r) => [
        r.metric,
        ...r.values.map((v) => (typeof v === 'number' ? formatNumber(v) : v)),
      ]);
      for (const line of out.table(
        ['', ...jobs.map((j) => j.name)],
        rows,
        jobs.map((_, i) => i + 1),
      ))
        out.line(line);
      return 0;
    },
  },
];

/** `[metric, value per job]`: status and epochs, then every validation and test metric any job has. */
export function compareRows(jobs: JobRecord[], results: (JobResult | undefined)[]) {
  const rows: { metric: string; values: (string | number | undefined)[] }[] = [
    { metric: 'status', values: jobs.map((j) => j.status) },
    { metric: 'epochs', values: jobs.map((j) => j.progress.epoch) },
  ];
  for (const set of ['validation', 'test'] as const) {
    const names = new Set<string>();
    for (const r of results)
      for (const [k, v] of Object.entries((r?.report?.[set] as Record<string, unknown>) ?? {}))
        if (typeof v === 'number' && k !== 'rows') names.add(k);
    for (const name of names)
      rows.push({
        metric: `${set} ${name}`,
        values: results.map((r) => (r?.report?.[set] as Record<string, number> | undefined)?.[name]),
      });
  }
  return rows;
}

export const DATASET_COMMANDS: readonly Command[] = [
  {
    name: 'datasets list',
    usage: 'datasets list [--limit N] [--all]',
    summary: 'List datasets, newest first, with their size and format',
    options: { limit: { type: 'string' }, all: { type: 'boolean' } },
    required: [],
    async run({ client, out }, v) {
      const limit = v.limit === undefined ? 20 : Number(v.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100)
        throw new UsageError('--limit must be an integer from 1 to 100');
      const datasets: DatasetView[] = [];
      let nextCursor: string | null = null;
      if (v.all) for await (const d of client.datasets()) datasets.push(d);
      else {
        const page = await client.listDatasets({ limit });
        datasets.push(...page.datasets);
        nextCursor = page.nextCursor;
      }
      if (out.json) {
        out.data({ datasets, nextCursor });
        return 0;
      }
      if (datasets.length === 0) {
        out.line('No datasets yet: upload one with `descent datasets upload FILE`.');
        return 0;
      }
      const rows = datasets.map((d) => [
        d.id,
        d.name,
        d.format,
        d.uploaded ? bytes(d.bytes) : 'not uploaded',
        d.createdAt.replace('T', ' ').slice(0, 19),
      ]);
      for (const line of out.table(['ID', 'NAME', 'FORMAT', 'SIZE', 'CREATED'], rows, [3])) out.line(line);
      if (nextCursor) out.note('More datasets: use --all, or --limit.');
      return 0;
    },
  },
  {
    name: 'datasets delete',
    usage: 'datasets delete DATASET',
    summary: 'Delete a dataset (refused while a queued or running job uses it)',
    options: {},
    required: ['DATASET'],
    async run({ client, out }, _v, [id]) {
      const deleted = await client.deleteDataset(id as string);
      if (out.json) out.data(deleted);
      else out.line(`Deleted dataset ${deleted.id} (${deleted.deletedObjects} objects).`);
      return 0;
    },
  },
];
