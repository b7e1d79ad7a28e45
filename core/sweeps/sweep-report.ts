/**
 * A sweep's report: the trials ranked by the objective, and per parameter a small SVG of the
 * objective against the parameter's value (`report.json` and `plots/objective-vs-<path>.svg` under the
 * sweep's prefix). Pure functions of the sweep record.
 */
import { sweepPlotName } from '../platform/keys.ts';
import { rankTrials, type SweepRecord } from './sweep-record.ts';
import type { Domain, ParameterValue } from './sweep-spec.ts';

export function sweepReport(record: SweepRecord, generatedAt: Date) {
  const ranked = rankTrials(record);
  const count = (status: string) => record.trials.filter((t) => t.status === status).length;
  return {
    sweepId: record.id,
    name: record.name,
    status: record.status,
    objective: record.request.objective,
    strategy: record.request.strategy,
    seed: record.request.seed,
    trials: record.trials.length,
    succeeded: count('SUCCEEDED'),
    stoppedEarly: count('STOPPED_EARLY'),
    failed: count('FAILED'),
    cancelled: count('CANCELLED'),
    best: record.best ?? null,
    ranking: ranked.map((t, i) => ({
      rank: i + 1,
      trial: t.trial,
      jobId: t.jobId,
      objective: t.objective,
      parameters: t.parameters,
      epochs: t.epochs,
      durationSeconds: t.durationSeconds,
      ...(t.epsilon !== undefined ? { epsilon: t.epsilon } : {}),
    })),
    warnings: sweepWarnings(record),
    unranked: record.trials
      .filter((t) => !ranked.includes(t))
      .map((t) => ({
        trial: t.trial,
        status: t.status,
        ...(t.jobId ? { jobId: t.jobId } : {}),
        parameters: t.parameters,
        ...(t.epochs !== undefined ? { epochs: t.epochs } : {}),
        ...(t.error ? { error: t.error } : {}),
      })),
    parameters: Object.entries(record.request.parameters).map(([path, domain]) => ({
      path,
      domain,
      plot: `plots/${sweepPlotName(path)}`,
    })),
    generatedAt: generatedAt.toISOString(),
  };
}

/**
 * A sweep of private trials: each trial's ε covers its own model, but picking the best of them by
 * metrics of the same rows spends more budget than any one trial.
 */
export function sweepWarnings(record: SweepRecord): string[] {
  const training = (record.request.spec as { training?: { privacy?: unknown } }).training;
  const private_ =
    training?.privacy !== undefined ||
    Object.keys(record.request.parameters).some((p) => p.startsWith('training.privacy'));
  const epsilons = record.trials.flatMap((t) => (t.epsilon !== undefined ? [t.epsilon] : []));
  if (!private_ && epsilons.length === 0) return [];
  const total = epsilons.reduce((a, b) => a + b, 0);
  return [
    `The trials train with differential privacy on the same rows. Each trial's ε (in its report and in this ranking) covers that trial's model alone; tuning on private data spends extra budget: choosing the best trial by its metrics is covered only by all the trials together, at most the sum of their ε by basic composition (${total.toFixed(3)} for the ${epsilons.length} trial${epsilons.length === 1 ? '' : 's'} that reported one) at the sum of their δ. Tune on public or synthetic data where you can, and train the chosen configuration once.`,
  ];
}

const W = 480;
const H = 300;
const PAD = { left: 60, right: 20, top: 40, bottom: 46 };
const escapeXml = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (v: number) =>
  Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0)
    ? v.toExponential(1)
    : Number(v.toPrecision(3)).toString();
const label = (v: ParameterValue) => (typeof v === 'string' ? v : JSON.stringify(v));

/**
 * The objective of each SUCCEEDED trial against the value of the parameter at `path`: a scatter plot,
 * on a log axis for `logUniform` domains (and choices of positive numbers spanning 20× or more), with
 * evenly spaced categories for values that are not numbers. The best trial is drawn larger, in green.
 */
export function objectivePlotSvg(record: SweepRecord, path: string): string {
  const domain = record.request.parameters[path] as Domain;
  const { metric, goal } = record.request.objective;
  const ranked = rankTrials(record);
  const points = ranked.map((t) => ({
    value: t.parameters[path] as ParameterValue,
    objective: t.objective as number,
    best: t.trial === record.best?.trial,
  }));
  const values: ParameterValue[] = domain.type === 'choice' ? domain.values : points.map((p) => p.value);
  const numeric = values.every((v) => typeof v === 'number' && Number.isFinite(v));
  const nums = numeric ? (values as number[]) : [];
  const lo = domain.type === 'choice' ? Math.min(...nums) : domain.min;
  const hi = domain.type === 'choice' ? Math.max(...nums) : domain.max;
  const log =
    numeric && lo > 0 && (domain.type === 'logUniform' || (domain.type === 'choice' && hi / lo >= 20));
  const categories = numeric ? [] : [...new Set(values.map(label))];

  const plotW = W - PAD.left - PAD.right;
  /** Points keep clear of the axes' ends. */
  const inset = 14;
  const plotH = H - PAD.top - PAD.bottom;
  const t = (v: number) => (log ? Math.log10(v) : v);
  const span = t(hi) - t(lo) || 1;
  const x = (v: ParameterValue): number => {
    if (!numeric) {
      const i = categories.indexOf(label(v));
      return PAD.left + ((i + 0.5) / Math.max(categories.length, 1)) * plotW;
    }
    if (lo === hi) return PAD.left + plotW / 2;
    return PAD.left + inset + ((t(v as number) - t(lo)) / span) * (plotW - 2 * inset);
  };
  const ys = points.map((p) => p.objective);
  let bottom = Math.min(...ys);
  let top = Math.max(...ys);
  if (!Number.isFinite(bottom)) [bottom, top] = [0, 1];
  if (bottom === top) [bottom, top] = [bottom - Math.abs(bottom || 1) * 0.1, top + Math.abs(top || 1) * 0.1];
  const margin = (top - bottom) * 0.08;
  bottom -= margin;
  top += margin;
  const y = (v: number) => PAD.top + plotH - ((v - bottom) / (top - bottom)) * plotH;

  const xTicks: { at: number; text: string }[] = numeric
    ? lo === hi || (domain.type === 'choice' && nums.length <= 8)
      ? [...new Set(nums.length ? nums : [lo])].map((v) => ({ at: x(v), text: fmt(v) }))
      : Array.from({ length: 5 }, (_, i) => {
          const v = log ? 10 ** (t(lo) + (i / 4) * span) : lo + (i / 4) * (hi - lo);
          return { at: x(v), text: fmt(v) };
        })
    : categories.map((c) => ({ at: x(c), text: c.length > 14 ? `${c.slice(0, 13)}…` : c }));
  const yTicks = Array.from({ length: 5 }, (_, i) => bottom + (i / 4) * (top - bottom));
  const dots = points
    .map(
      (p) =>
        `<circle cx="${x(p.value).toFixed(1)}" cy="${y(p.objective).toFixed(1)}" r="${p.best ? 6 : 4}" fill="${p.best ? '#16a34a' : '#2563eb'}" fill-opacity="0.8"><title>${escapeXml(`${path} = ${label(p.value)}: ${metric} ${fmt(p.objective)}`)}</title></circle>`,
    )
    .join('\n  ');
  const missing = record.trials.length - points.length;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
  <rect width="${W}" height="${H}" fill="#ffffff"/>
  <text x="${PAD.left}" y="18" font-size="13" fill="#111827">${escapeXml(`${metric} (${goal}) vs ${path}`)}</text>
  <text x="${PAD.left}" y="32" font-size="11" fill="#6b7280">${escapeXml(`${points.length} trial${points.length === 1 ? '' : 's'} with an objective${missing ? `; ${missing} without (not finished, stopped early or failed)` : ''}${log ? '; log scale' : ''}`)}</text>
  ${yTicks
    .map(
      (v) =>
        `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e7eb"/><text x="${PAD.left - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="10" text-anchor="end" fill="#374151">${fmt(v)}</text>`,
    )
    .join('\n  ')}
  <line x1="${PAD.left}" x2="${W - PAD.right}" y1="${PAD.top + plotH}" y2="${PAD.top + plotH}" stroke="#6b7280"/>
  ${xTicks
    .map(
      (tick) =>
        `<text x="${tick.at.toFixed(1)}" y="${PAD.top + plotH + 14}" font-size="10" text-anchor="middle" fill="#374151">${escapeXml(tick.text)}</text>`,
    )
    .join('\n  ')}
  <text x="${PAD.left + plotW / 2}" y="${H - 8}" font-size="11" text-anchor="middle" fill="#374151">${escapeXml(path)}</text>
  ${dots}
</svg>
`;
}
