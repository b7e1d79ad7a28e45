/**
 * The local dashboard (browser code, bundled by `serve.ts`): the job list, and for the selected job
 * its loss curves (uPlot), metrics, confusion matrix and feature importances, refreshed while it
 * trains. It talks to the API through the typed client with the token kept in localStorage.
 * Everything from the API is shown with `textContent`, never parsed as HTML.
 */
import type uPlotType from 'uplot';
import { DescentClient } from '../../client/client.ts';
import { DescentApiError } from '../../client/errors.ts';
import { confusionMatrixOf, featureImportances, formatNumber, metricRows } from '../../client/report.ts';
import { type EpochMetrics, isTerminalStatus, type JobRecord, type JobResult } from '../../client/types.ts';

/** uPlot is loaded by its own script tag (served from node_modules), as the global `uPlot`. */
const UPlot = (globalThis as unknown as { uPlot: typeof uPlotType }).uPlot;

const TOKEN_KEY = 'descent.token';
const LIST_MS = { active: 2000, idle: 10_000 };
const JOB_MS = 1000;

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

let selectedId: string | undefined = new URLSearchParams(location.hash.slice(1)).get('job') ?? undefined;
let listTimer: ReturnType<typeof setTimeout> | undefined;
let jobTimer: ReturnType<typeof setTimeout> | undefined;

function stopTimers(): void {
  clearTimeout(listTimer);
  clearTimeout(jobTimer);
}

function statusBadge(status: string): HTMLElement {
  return el('span', status, `status ${status}`);
}

async function refreshList(): Promise<void> {
  clearTimeout(listTimer);
  let active = false;
  try {
    const { jobs } = await client.listJobs({ limit: 50 });
    $('#connection').textContent = `${jobs.length} job${jobs.length === 1 ? '' : 's'}`;
    const body = $('#jobs tbody');
    body.replaceChildren(
      ...jobs.map((job) => {
        const row = el('tr');
        row.dataset.jobId = job.id;
        if (job.id === selectedId) row.classList.add('selected');
        const name = el('td', job.name);
        name.title = job.id;
        const status = el('td');
        status.append(statusBadge(job.status));
        row.append(
          name,
          status,
          el('td', `${job.progress.epoch}/${job.progress.epochs}`, 'num'),
          el('td', new Date(job.createdAt).toLocaleString()),
        );
        row.addEventListener('click', () => select(job.id));
        return row;
      }),
    );
    $('#no-jobs').hidden = jobs.length > 0;
    active = jobs.some((job) => !isTerminalStatus(job.status));
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
  history.replaceState(null, '', `#job=${encodeURIComponent(id)}`);
  document.querySelectorAll<HTMLElement>('#jobs tbody tr').forEach((row) => {
    row.classList.toggle('selected', row.dataset.jobId === id);
  });
  chart?.destroy();
  chart = undefined;
  chartJobId = undefined;
  resultShown = undefined;
  $('#report').hidden = true;
  void refreshJob();
}

function drawChart(jobId: string, epochs: EpochMetrics[]): void {
  const container = $('#chart');
  const data: uPlotType.AlignedData = [
    epochs.map((e) => e.epoch),
    epochs.map((e) => e.loss),
    epochs.map((e) => e.valLoss ?? null),
  ];
  if (!chart || chartJobId !== jobId) {
    chart?.destroy();
    container.replaceChildren();
    chart = new UPlot(
      {
        width: Math.max(320, container.clientWidth),
        height: 300,
        scales: { x: { time: false } },
        axes: [{ label: 'epoch' }, { label: 'loss' }],
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
}

function showJob(job: JobRecord): void {
  $('#placeholder').hidden = true;
  $('#detail').hidden = false;
  const title = $('#job-title');
  title.replaceChildren(el('span', `${job.name} `), statusBadge(job.status));
  const parts = [
    job.id,
    `${job.spec.task}, label "${job.spec.dataset.label}"`,
    `epoch ${job.progress.epoch}/${job.progress.epochs}`,
  ];
  if (job.progress.loss !== undefined) parts.push(`loss ${formatNumber(job.progress.loss)}`);
  if (job.progress.valLoss !== undefined) parts.push(`val loss ${formatNumber(job.progress.valLoss)}`);
  if (job.backend) parts.push(`backend ${job.backend}`);
  $('#job-meta').textContent = parts.join(' · ');
  const error = $('#job-error');
  error.hidden = !job.error;
  error.textContent = job.error ? `${job.error.code}: ${job.error.message}` : '';
  const fraction = job.status === 'SUCCEEDED' ? 1 : job.progress.epoch / Math.max(1, job.progress.epochs);
  $('#job-progress').style.width = `${Math.round(fraction * 100)}%`;
}

function showReport(result: JobResult): void {
  const report = result.report;
  const rows = metricRows(report);
  const hasValidation = rows.some(([, , v]) => v !== undefined);
  const table = $('#metrics-table');
  const head = el('tr');
  for (const h of hasValidation ? ['metric', 'training', 'validation'] : ['metric', 'training'])
    head.append(el('th', h, h === 'metric' ? undefined : 'num'));
  table.replaceChildren(
    head,
    ...rows.map(([name, t, v]) => {
      const row = el('tr');
      row.append(el('td', name), el('td', formatNumber(t), 'num'));
      if (hasValidation) row.append(el('td', formatNumber(v), 'num'));
      return row;
    }),
  );

  const confusion = confusionMatrixOf(report);
  $('#confusion-block').hidden = !confusion;
  if (confusion) {
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

  const importances = featureImportances(report);
  $('#importance-block').hidden = importances.length === 0;
  const top = Math.max(...importances.map((f) => Math.abs(f.importance)), Number.MIN_VALUE);
  $('#importances').replaceChildren(
    ...importances.map((f) => {
      const row = el('div', undefined, 'bar-row');
      const bar = el('div', undefined, f.importance < 0 ? 'bar negative' : 'bar');
      bar.style.width = `${Math.max(1, (100 * Math.abs(f.importance)) / top)}%`;
      const value =
        f.std === undefined
          ? formatNumber(f.importance)
          : `${formatNumber(f.importance)} ± ${formatNumber(f.std)}`;
      row.append(el('span', f.feature), bar, el('span', value, 'num'));
      return row;
    }),
  );
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
    const { epochs } = await client.getMetrics(id);
    if (id !== selectedId) return;
    showJob(job);
    drawChart(id, epochs);
    done = isTerminalStatus(job.status);
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

// ── Start ──────────────────────────────────────────────────────────────────────────────────────

function start(): void {
  stopTimers();
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#sign-out').hidden = false;
  void refreshList();
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

window.addEventListener('resize', () => {
  const width = $('#chart').clientWidth;
  if (chart && width > 0) chart.setSize({ width: Math.max(320, width), height: 300 });
});

// A `#token=…` or `#job=…` link opened in this tab changes only the hash: act on it too.
window.addEventListener('hashchange', () => {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.has('token')) {
    takeTokenFromHash();
    start();
  } else {
    const job = params.get('job');
    if (job && job !== selectedId && token()) select(job);
  }
});

takeTokenFromHash();
if (token()) start();
else showLogin();
