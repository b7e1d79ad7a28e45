/**
 * The local dashboard (browser code, bundled by `serve.ts`): the job list, and for the selected job
 * its loss curves (uPlot), metrics, confusion matrix and feature importances, refreshed while it
 * trains; the sweep list, and for the selected sweep its ranked trials table and per-parameter
 * plots, refreshed while it runs. It talks to the API through the typed client with the token kept in localStorage.
 * Everything from the API is shown with `textContent`, never parsed as HTML.
 */
import type uPlotType from 'uplot';
import { DescentClient } from '../../client/client.ts';
import { DescentApiError } from '../../client/errors.ts';
import { confusionMatrixOf, featureImportances, formatNumber, metricRows } from '../../client/report.ts';
import {
  type EpochMetrics,
  isSweepFinishedStatus,
  isTerminalStatus,
  type JobRecord,
  type JobResult,
  type JobStatus,
  type ListSweepsResponse,
  type Sweep,
} from '../../client/types.ts';

/** uPlot is loaded by its own script tag (served from node_modules), as the global `uPlot`. */
const UPlot = (globalThis as unknown as { uPlot: typeof uPlotType }).uPlot;

const TOKEN_KEY = 'descent.token';
const LIST_MS = { active: 2000, idle: 10_000 };
const JOB_MS = 1000;
const SWEEP_MS = 1000;

const $ = <T extends HTMLElement = HTMLElement>(selector: string): T => {
  const element = document.querySelector<T>(selector);
  if (!element) throw new Error(`missing ${selector}`);
  return element;
};

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  className?: string,
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (text !== undefined) element.textContent = text;
  if (className) element.className = className;
  return element;
}

// ── Token ──────────────────────────────────────────────────────────────────────────────────────

/** `#token=…` (as a link from `npm start` might carry it) is stored, then removed from the URL. */
function takeTokenFromHash(): void {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (!token) return;
  localStorage.setItem(TOKEN_KEY, token);
  params.delete('token');
  const rest = params.toString();
  history.replaceState(null, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
}

const token = () => localStorage.getItem(TOKEN_KEY) ?? '';

const client = new DescentClient({
  baseUrl: location.origin,
  token: async () => token(),
  // The page polls anyway: one quick retry is enough.
  retry: { maxAttempts: 2 },
});

function showLogin(message = ''): void {
  stopTimers();
  $('#app').hidden = true;
  $('#sign-out').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message;
  $<HTMLInputElement>('#token').focus();
}

function handleError(error: unknown): void {
  if (error instanceof DescentApiError && error.status === 401) {
    localStorage.removeItem(TOKEN_KEY);
    showLogin('That token was refused; paste the one `npm start` printed.');
    return;
  }
  $('#connection').textContent = `⚠ ${error instanceof Error ? error.message : String(error)}`;
}

// ── Job list ───────────────────────────────────────────────────────────────────────────────────

const hashParams = () => new URLSearchParams(location.hash.slice(1));
let selectedId: string | undefined = hashParams().get('job') ?? undefined;
let selectedSweepId: string | undefined = hashParams().get('sweep') ?? undefined;
let listTimer: ReturnType<typeof setTimeout> | undefined;
let jobTimer: ReturnType<typeof setTimeout> | undefined;
let sweepTimer: ReturnType<typeof setTimeout> | undefined;

function stopTimers(): void {
  clearTimeout(listTimer);
  clearTimeout(jobTimer);
  clearTimeout(sweepTimer);
}

/** `#sweep=…&job=…`: what is selected, so that a reload or a shared link shows the same. */
function writeHash(): void {
  const params = new URLSearchParams();
  if (selectedSweepId) params.set('sweep', selectedSweepId);
  if (selectedId) params.set('job', selectedId);
  const rest = params.toString();
  history.replaceState(null, '', rest ? `#${rest}` : `${location.pathname}${location.search}`);
}

function showPlaceholder(): void {
  $('#placeholder').hidden = !$('#detail').hidden || !$('#sweep-detail').hidden;
}

function statusBadge(status: string): HTMLElement {
  return el('span', status, `status ${status}`);
}

/** Jobs per page of the list. */
const PAGE = 25;
/** The cursor of each page shown so far (the first page has none): Newer goes back one. */
const pageCursors: (string | undefined)[] = [undefined];
let pageNext: string | null = null;
/** The last count of the jobs, and of which page and ids it was made. */
const counted = { at: 0, page: 0, total: 0, exact: true as boolean | undefined, ids: '' };

/** A job's headline metric for the list: validation (else test) accuracy or R², or rows predicted. */
function headlineText(job: JobRecord): string {
  if (job.kind === 'predictions')
    return job.predictions?.rows === undefined ? '' : `${job.predictions.rows} rows`;
  const s = job.summary;
  const value = s?.validation ?? s?.test;
  if (!s || value === undefined) return '';
  return `${s.metric === 'r2' ? 'R²' : 'acc'} ${value.toFixed(3)}`;
}

/** `11-30 16:05`: short enough for its column at any width. */
const shortTime = (iso: string): string => {
  const d = new Date(iso);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
};

function jobRow(job: JobRecord): HTMLTableRowElement {
  const row = el('tr');
  row.dataset.jobId = job.id;
  if (job.id === selectedId) row.classList.add('selected');
  const name = el('td', job.kind === 'predictions' ? `⇢ ${job.name}` : job.name);
  name.title = `${job.name} (${job.id})`;
  const status = el('td');
  status.append(statusBadge(job.status));
  const created = el('td', shortTime(job.createdAt), 'num');
  created.title = new Date(job.createdAt).toLocaleString();
  row.append(name, status, el('td', headlineText(job), 'num'), created);
  row.addEventListener('click', () => select(job.id));
  return row;
}

async function refreshList(): Promise<void> {
  clearTimeout(listTimer);
  let active = false;
  try {
    const cursor = pageCursors.at(-1);
    // Counting reads every record: ask for it on a new page, when the page changed, or every 15 s.
    const recount = Date.now() - counted.at > 15_000 || counted.page !== pageCursors.length;
    const [page, { sweeps }] = await Promise.all([
      client.listJobs({
        limit: PAGE,
        trials: 'false',
        ...(recount ? { count: 'true' } : {}),
        ...(cursor ? { cursor } : {}),
      }),
      client.listSweeps({ limit: 20 }),
    ]);
    const { jobs } = page;
    const ids = jobs.map((j) => j.id).join();
    if (page.total !== undefined)
      Object.assign(counted, {
        at: Date.now(),
        page: pageCursors.length,
        total: page.total,
        exact: page.totalIsExact,
        ids,
      });
    else if (ids !== counted.ids) counted.at = 0; // the page changed under us: count again next time
    const first = (pageCursors.length - 1) * PAGE;
    const total = Math.max(counted.total, first + jobs.length);
    $('#jobs-count').textContent =
      jobs.length === 0
        ? ''
        : `${first + 1}–${first + jobs.length} of ${total}${counted.exact === false ? '+' : ''}`;
    $('#connection').textContent = `${total} job${total === 1 ? '' : 's'}`;
    pageNext = page.nextCursor;
    $<HTMLButtonElement>('#jobs-prev').disabled = pageCursors.length === 1;
    $<HTMLButtonElement>('#jobs-next').disabled = !pageNext;
    $('#jobs tbody').replaceChildren(...jobs.map(jobRow));
    $('#no-jobs').hidden = jobs.length > 0 || pageCursors.length > 1;
    showSweeps(sweeps);
    active =
      jobs.some((job) => !isTerminalStatus(job.status)) ||
      sweeps.some((sweep) => !isSweepFinishedStatus(sweep.status));
  } catch (error) {
    handleError(error);
    if ($('#login').hidden === false) return;
  }
  listTimer = setTimeout(refreshList, active ? LIST_MS.active : LIST_MS.idle);
}

// ── One job ────────────────────────────────────────────────────────────────────────────────────

let chart: uPlotType | undefined;
let chartJobId: string | undefined;
let resultShown: string | undefined;

function select(id: string): void {
  selectedId = id;
  writeHash();
  document.querySelectorAll<HTMLElement>('#jobs tbody tr').forEach((row) => {
    row.classList.toggle('selected', row.dataset.jobId === id);
  });
  chart?.destroy();
  chart = undefined;
  chartJobId = undefined;
  resultShown = undefined;
  $('#report').hidden = true;
  $('#downloads').hidden = true;
  $('#chart-block').hidden = true;
  $('#no-epochs').hidden = true;
  void refreshJob();
}

/** The last epochs drawn, to redraw them when the scale changes. */
let lastEpochs: EpochMetrics[] = [];

function drawChart(jobId: string, epochs: EpochMetrics[], ended: boolean): void {
  lastEpochs = epochs;
  // A job that never trained an epoch (failed at once, cancelled while queued) has no curve to show.
  $('#chart-block').hidden = epochs.length === 0;
  $('#no-epochs').hidden = !(epochs.length === 0 && ended);
  if (epochs.length === 0) return;
  const container = $('#chart');
  const data: uPlotType.AlignedData = [
    epochs.map((e) => e.epoch),
    epochs.map((e) => e.loss),
    epochs.map((e) => e.valLoss ?? null),
  ];
  const log = $<HTMLInputElement>('#log-scale').checked;
  if (!chart || chartJobId !== jobId) {
    chart?.destroy();
    container.replaceChildren();
    chart = new UPlot(
      {
        width: Math.max(300, container.clientWidth),
        height: 300,
        // A log scale keeps the late, small improvements visible; losses are positive.
        scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
        axes: [{ label: 'epoch' }, { label: log ? 'loss (log)' : 'loss' }],
        series: [
          { label: 'epoch' },
          { label: 'training loss', stroke: '#2563eb', width: 2 },
          { label: 'validation loss', stroke: '#d97706', width: 2, spanGaps: true },
        ],
      },
      data,
      container,
    );
    chartJobId = jobId;
  } else {
    chart.setData(data);
  }
  container.dataset.epochs = String(epochs.length);
  container.dataset.scale = log ? 'log' : 'linear';
}

function showJob(job: JobRecord): void {
  $('#detail').hidden = false;
  showPlaceholder();
  const title = $('#job-title');
  title.replaceChildren(el('span', `${job.name} `), statusBadge(job.status));
  const parts = [job.id];
  if (job.kind === 'predictions') {
    const p = job.predictions;
    parts.push(`predictions with the model of job ${p?.modelJobId} on dataset ${p?.datasetId}`);
    if (p?.rows !== undefined) parts.push(`${p.rows} rows`);
    if (job.progress.phase) parts.push(job.progress.phase);
  } else {
    parts.push(
      `${job.spec.task}, label "${job.spec.dataset.label}"`,
      `epoch ${job.progress.epoch}/${job.progress.epochs}`,
    );
    if (job.progress.loss !== undefined) parts.push(`loss ${formatNumber(job.progress.loss)}`);
    if (job.progress.valLoss !== undefined) parts.push(`val loss ${formatNumber(job.progress.valLoss)}`);
  }
  if (job.backend) parts.push(`backend ${job.backend}`);
  $('#job-meta').textContent = parts.join(' · ');
  const error = $('#job-error');
  error.hidden = !job.error;
  error.textContent = job.error ? `${job.error.code}: ${job.error.message}` : '';
  const warnings = job.warnings ?? [];
  const list = $('#job-warnings');
  list.hidden = warnings.length === 0;
  list.replaceChildren(...warnings.map((w) => el('li', w)));
  const cancel = $<HTMLButtonElement>('#cancel-job');
  cancel.hidden = !(job.status === 'QUEUED' || job.status === 'RUNNING');
  cancel.disabled = false;
  const fraction = job.status === 'SUCCEEDED' ? 1 : job.progress.epoch / Math.max(1, job.progress.epochs);
  $('#job-progress').style.width = `${Math.round(fraction * 100)}%`;
}

/** Download links of a SUCCEEDED job's files (presigned: they work for the URL lifetime). */
function showDownloads(result: JobResult): void {
  const box = $('#downloads');
  box.replaceChildren(
    el('span', 'Download:', 'muted'),
    ...Object.entries(result.artifacts).map(([name, url]) => {
      const link = el('a', name);
      link.href = url as string;
      link.download = name;
      return link;
    }),
  );
  box.hidden = false;
}

function showMetrics(result: JobResult): void {
  const rows = metricRows(result.report);
  const sets = ['training', 'validation', 'test'].filter((_, i) => rows.some((r) => r[i + 1] !== undefined));
  const keep = ['training', 'validation', 'test'].map((set) => sets.includes(set));
  const head = el('tr');
  for (const h of ['metric', ...sets]) head.append(el('th', h, h === 'metric' ? undefined : 'num'));
  $('#metrics-table').replaceChildren(
    head,
    ...rows.map(([name, ...values]) => {
      const row = el('tr');
      row.append(
        el('td', name),
        ...values.filter((_, i) => keep[i]).map((v) => el('td', formatNumber(v), 'num')),
      );
      return row;
    }),
  );
}

function showConfusion(result: JobResult): void {
  const confusion = confusionMatrixOf(result.report);
  $('#confusion-block').hidden = !confusion;
  if (!confusion) return;
  $('#confusion-title').textContent =
    `Confusion matrix (${confusion.set}; rows = actual, columns = predicted)`;
  const max = Math.max(1, ...confusion.matrix.flat());
  const header = el('tr');
  header.append(el('th'), ...confusion.classes.map((c) => el('th', c, 'num')));
  $('#confusion').replaceChildren(
    header,
    ...confusion.matrix.map((cells, i) => {
      const row = el('tr');
      row.append(el('th', confusion.classes[i] ?? String(i)));
      for (const [j, n] of cells.entries()) {
        const cell = el('td', String(n), 'num');
        const alpha = (0.08 + 0.6 * (n / max)).toFixed(2);
        cell.style.background = n > 0 ? `rgba(${i === j ? '21,128,61' : '185,28,28'},${alpha})` : '';
        row.append(cell);
      }
      return row;
    }),
  );
}

/**
 * Importance as diverging bars: a zero line where the smallest (negative) importance leaves room,
 * positive drops of the metric to its right, negative ones (shuffling helped: noise) to its left.
 */
function showImportances(result: JobResult): void {
  const importances = featureImportances(result.report);
  $('#importance-block').hidden = importances.length === 0;
  const low = Math.min(0, ...importances.map((f) => f.importance));
  const high = Math.max(0, ...importances.map((f) => f.importance));
  const span = high - low || 1;
  const zero = (100 * -low) / span;
  const metric = (result.report.importance as { metric?: string } | undefined)?.metric;
  $('#importance-title').textContent =
    `Feature importance${metric ? ` (drop in ${metric} when shuffled)` : ''}`;
  $('#importances').replaceChildren(
    ...importances.map((f) => {
      const row = el('div', undefined, 'bar-row');
      row.dataset.feature = f.feature;
      const label = el('span', f.feature);
      label.title = f.feature;
      const track = el('div', undefined, 'bar-track');
      const bar = el('div', undefined, f.importance < 0 ? 'bar negative' : 'bar');
      const width = (100 * Math.abs(f.importance)) / span;
      bar.style.left = `${f.importance < 0 ? zero - width : zero}%`;
      bar.style.width = `${Math.max(0.5, width)}%`;
      const line = el('div', undefined, 'zero');
      line.style.left = `${zero}%`;
      track.append(bar, line);
      const value =
        f.std === undefined
          ? formatNumber(f.importance)
          : `${formatNumber(f.importance)} ± ${formatNumber(f.std)}`;
      row.append(label, track, el('span', value, 'num'));
      return row;
    }),
  );
}

function showReport(result: JobResult): void {
  showDownloads(result);
  if ((result as { kind?: string }).kind === 'predictions') return;
  showMetrics(result);
  showConfusion(result);
  showImportances(result);
  $('#report').hidden = false;
}

async function refreshJob(): Promise<void> {
  clearTimeout(jobTimer);
  const id = selectedId;
  if (!id) return;
  let done = false;
  try {
    // The record first: once it is final, the metrics read after it are complete.
    const job = await client.getJob(id);
    const { epochs } = job.kind === 'predictions' ? { epochs: [] } : await client.getMetrics(id);
    if (id !== selectedId) return;
    showJob(job);
    done = isTerminalStatus(job.status);
    if (job.kind === 'predictions') {
      $('#chart-block').hidden = true;
      $('#no-epochs').hidden = true;
    } else drawChart(id, epochs, done);
    if (job.status === 'SUCCEEDED' && resultShown !== id) {
      showReport(await client.getResult(id));
      resultShown = id;
    }
  } catch (error) {
    handleError(error);
    if ($('#login').hidden === false) return;
  }
  if (!done && id === selectedId) jobTimer = setTimeout(refreshJob, JOB_MS);
}

// ── Sweeps ─────────────────────────────────────────────────────────────────────────────────────

type SweepSummary = ListSweepsResponse['sweeps'][number];

/** A trial has ended once its job has (PENDING: not queued yet). */
const trialEnded = (status: string): boolean => status !== 'PENDING' && isTerminalStatus(status as JobStatus);

/** A parameter's value as the sweep gave it: numbers and strings as they are, anything else as JSON. */
const valueText = (value: unknown): string =>
  typeof value === 'number' ? formatNumber(value) : typeof value === 'string' ? value : JSON.stringify(value);

function showSweeps(sweeps: SweepSummary[]): void {
  $('#sweeps tbody').replaceChildren(
    ...sweeps.map((sweep) => {
      const row = el('tr');
      row.dataset.sweepId = sweep.id;
      if (sweep.id === selectedSweepId) row.classList.add('selected');
      const name = el('td', sweep.name);
      name.title = sweep.id;
      const status = el('td');
      status.append(statusBadge(sweep.status));
      const done = Object.entries(sweep.trialStatuses)
        .filter(([s]) => trialEnded(s))
        .reduce((sum, [, n]) => sum + n, 0);
      const best = el('td', formatNumber(sweep.best?.objective), 'num');
      best.title = `${sweep.objective.metric} (${sweep.objective.goal})`;
      row.append(name, status, el('td', `${done}/${sweep.trials}`, 'num'), best);
      row.addEventListener('click', () => selectSweep(sweep.id));
      return row;
    }),
  );
  $('#no-sweeps').hidden = sweeps.length > 0;
}

/** The plots on the page: redrawn only when the report is rewritten (each read signs new URLs). */
let plotsShown: string | undefined;
/** Reads of a finished sweep still waiting for its report (written by the read that finishes it). */
let finishedReads = 0;

function selectSweep(id: string): void {
  selectedSweepId = id;
  writeHash();
  document.querySelectorAll<HTMLElement>('#sweeps tbody tr').forEach((row) => {
    row.classList.toggle('selected', row.dataset.sweepId === id);
  });
  plotsShown = undefined;
  finishedReads = 0;
  $('#trials').replaceChildren();
  $('#sweep-plots').replaceChildren();
  void refreshSweep();
}

function showSweep(sweep: Sweep): void {
  $('#sweep-detail').hidden = false;
  showPlaceholder();
  $('#sweep-title').replaceChildren(el('span', `${sweep.name} `), statusBadge(sweep.status));
  const { objective, strategy } = sweep.request;
  const ended = sweep.trials.filter((t) => trialEnded(t.status)).length;
  const parts = [
    sweep.id,
    `${strategy}, ${objective.goal} ${objective.metric}`,
    `${ended}/${sweep.trials.length} trials done`,
  ];
  if (sweep.best) parts.push(`best: trial ${sweep.best.trial}, ${formatNumber(sweep.best.objective)}`);
  $('#sweep-meta').textContent = parts.join(' · ');
  const error = $('#sweep-error');
  error.hidden = !sweep.error;
  error.textContent = sweep.error ? `${sweep.error.code}: ${sweep.error.message}` : '';

  // Ranked trials first (best first), then the others in trial order.
  const rank = new Map(sweep.ranking.map((trial, i) => [trial, i + 1]));
  const trials = [...sweep.trials].sort(
    (a, b) => (rank.get(a.trial) ?? Infinity) - (rank.get(b.trial) ?? Infinity) || a.trial - b.trial,
  );
  const paths = Object.keys(sweep.request.parameters);
  const head = el('tr');
  head.append(el('th', 'rank', 'num'), el('th', 'trial', 'num'));
  // A column per parameter, headed by the last name of its path (the whole path where two share it).
  const short = (path: string) =>
    path
      .replace(/\[\d+\]/g, '')
      .split('.')
      .pop() ?? path;
  for (const path of paths) {
    const unique = paths.filter((p) => short(p) === short(path)).length === 1;
    const th = el('th', unique ? short(path) : path, 'num');
    th.title = path;
    head.append(th);
  }
  head.append(
    el('th', 'status'),
    el('th', objective.metric, 'num'),
    el('th', 'epochs', 'num'),
    el('th', 'job'),
  );
  $('#trials').replaceChildren(
    head,
    ...trials.map((trial) => {
      const row = el('tr');
      row.dataset.trial = String(trial.trial);
      if (trial.trial === sweep.best?.trial) row.classList.add('best');
      const status = el('td');
      status.append(statusBadge(trial.status));
      if (trial.error) status.title = `${trial.error.code}: ${trial.error.message}`;
      row.append(el('td', String(rank.get(trial.trial) ?? ''), 'num'), el('td', String(trial.trial), 'num'));
      for (const path of paths) row.append(el('td', valueText(trial.parameters[path]), 'num'));
      row.append(
        status,
        el('td', formatNumber(trial.objective), 'num'),
        el('td', trial.epochs === undefined ? '' : String(trial.epochs), 'num'),
      );
      const job = el('td');
      const { jobId } = trial;
      if (jobId) {
        const link = el('a', 'show job', 'job-link');
        link.href = `#${new URLSearchParams({ sweep: sweep.id, job: jobId })}`;
        link.title = jobId;
        link.addEventListener('click', (event) => {
          event.preventDefault();
          select(jobId);
          $('#detail').scrollIntoView({ behavior: 'smooth', block: 'start' });
        });
        job.append(link);
      }
      row.append(job);
      return row;
    }),
  );

  const plotKey = `${sweep.id} ${sweep.reportUpdatedAt ?? ''}`;
  if (sweep.reportUpdatedAt && plotsShown !== plotKey) {
    const prefix = 'objective-vs-';
    $('#sweep-plots').replaceChildren(
      ...Object.entries(sweep.artifacts)
        .filter(([name]) => name.startsWith(prefix) && name.endsWith('.svg'))
        .map(([name, url]) => {
          const figure = el('figure');
          const image = el('img');
          image.src = url;
          image.alt = `${objective.metric} against ${name.slice(prefix.length, -'.svg'.length)}`;
          figure.append(image, el('figcaption', name));
          return figure;
        }),
    );
    plotsShown = plotKey;
  }
}

async function refreshSweep(): Promise<void> {
  clearTimeout(sweepTimer);
  const id = selectedSweepId;
  if (!id) return;
  let done = false;
  try {
    const sweep = await client.getSweep(id);
    if (id !== selectedSweepId) return;
    showSweep(sweep);
    // Finished: one more read or so may still be needed for the report and its plots.
    if (isSweepFinishedStatus(sweep.status)) finishedReads++;
    done = finishedReads > 0 && (sweep.reportUpdatedAt !== undefined || finishedReads > 5);
  } catch (error) {
    handleError(error);
    if ($('#login').hidden === false) return;
  }
  if (!done && id === selectedSweepId) sweepTimer = setTimeout(refreshSweep, SWEEP_MS);
}

// ── Start ──────────────────────────────────────────────────────────────────────────────────────

function start(): void {
  stopTimers();
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#sign-out').hidden = false;
  void refreshList();
  if (selectedSweepId) selectSweep(selectedSweepId);
  if (selectedId) select(selectedId);
}

$('#login').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = $<HTMLInputElement>('#token').value.trim();
  if (!value) return;
  localStorage.setItem(TOKEN_KEY, value);
  start();
});

$('#sign-out').addEventListener('click', () => {
  localStorage.removeItem(TOKEN_KEY);
  showLogin();
});

$('#cancel-job').addEventListener('click', () => {
  const id = selectedId;
  if (!id) return;
  $<HTMLButtonElement>('#cancel-job').disabled = true;
  client
    .cancelJob(id)
    .then(() => refreshJob())
    .catch(handleError);
});

$('#log-scale').addEventListener('change', () => {
  const id = chartJobId;
  chart?.destroy();
  chart = undefined;
  if (id) drawChart(id, lastEpochs, true);
});

$('#jobs-next').addEventListener('click', () => {
  if (!pageNext) return;
  pageCursors.push(pageNext);
  void refreshList();
});

$('#jobs-prev').addEventListener('click', () => {
  if (pageCursors.length > 1) pageCursors.pop();
  void refreshList();
});

window.addEventListener('resize', () => {
  const width = $('#chart').clientWidth;
  if (chart && width > 0) chart.setSize({ width: Math.max(300, width), height: 300 });
});

// A `#token=…`, `#job=…` or `#sweep=…` link opened in this tab changes only the hash: act on it too.
window.addEventListener('hashchange', () => {
  const params = hashParams();
  if (params.has('token')) {
    takeTokenFromHash();
    // The same link may name a job or a sweep to show.
    selectedId = params.get('job') ?? selectedId;
    selectedSweepId = params.get('sweep') ?? selectedSweepId;
    start();
  } else if (token()) {
    const sweep = params.get('sweep');
    if (sweep && sweep !== selectedSweepId) selectSweep(sweep);
    const job = params.get('job');
    if (job && job !== selectedId) select(job);
  }
});

takeTokenFromHash();
if (token()) start();
else showLogin();
