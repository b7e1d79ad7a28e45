/** Readable summaries of a job and its result, for `jobs show`, `result` and `train --follow`. */
import { confusionMatrixOf, featureImportances, formatNumber, metricRows, warningsOf } from '../report.ts';
import type { JobRecord, JobResult } from '../types.ts';
import { bar, duration, type Output } from './output.ts';

/** How many feature importances `result` lists. */
const TOP_FEATURES = 10;

export function jobLines(out: Output, job: JobRecord): string[] {
  const { progress } = job;
  const spec = job.spec;
  const lines = [
    `Job        ${job.id}  ${out.paint(job.name, 'bold')}`,
    `Status     ${out.status(job.status)}${job.attempt > 1 ? `  (attempt ${job.attempt})` : ''}`,
    job.kind === 'predictions'
      ? `Predicts   with the model of job ${job.predictions?.modelJobId} on dataset ${job.predictions?.datasetId}${job.predictions?.rows === undefined ? '' : `: ${job.predictions.rows} rows`}`
      : `Task       ${spec.task}, label "${spec.dataset.label}", dataset ${spec.dataset.id}`,
    `Progress   epoch ${progress.epoch}/${progress.epochs}` +
      (progress.loss === undefined ? '' : `  loss ${formatNumber(progress.loss)}`) +
      (progress.valLoss === undefined ? '' : `  val loss ${formatNumber(progress.valLoss)}`),
    `Created    ${job.createdAt}`,
  ];
  if (job.startedAt) lines.push(`Started    ${job.startedAt}`);
  if (job.finishedAt) lines.push(`Finished   ${job.finishedAt}`);
  if (job.backend) lines.push(`Backend    ${job.backend}`);
  const r = job.resources;
  if (r) {
    const parts: string[] = [];
    if (r.trainingSeconds !== undefined) parts.push(`${duration(r.trainingSeconds)} training`);
    if (r.samplesPerSecond !== undefined) parts.push(`${formatNumber(r.samplesPerSecond)} samples/s`);
    if (r.rows) parts.push(`${r.rows.training} training + ${r.rows.validation} validation rows`);
    if (r.parameters !== undefined) parts.push(`${r.parameters} parameters`);
    if (parts.length > 0) lines.push(`Resources  ${parts.join(', ')}`);
  }
  if (job.classes) lines.push(`Classes    ${job.classes.join(', ')}`);
  // Diagnostics in words, from trainers that give them.
  const warnings = (job as { warnings?: unknown }).warnings;
  if (Array.isArray(warnings))
    for (const w of warnings) lines.push(`Warning    ${out.paint(String(w), 'yellow')}`);
  if (job.error) lines.push(`Error      ${out.paint(job.error.code, 'red')}: ${job.error.message}`);
  return lines;
}

export function resultLines(out: Output, job: JobRecord | undefined, result: JobResult): string[] {
  const report = result.report;
  if (job?.kind === 'predictions') {
    const p = job.predictions;
    return [
      `Job ${result.id} ${out.paint(job.name, 'bold')}: ${out.status(result.status)}, ${p?.rows ?? '?'} rows predicted with the model of job ${p?.modelJobId}`,
      `Artifacts  ${Object.keys(result.artifacts).join(', ')}  (descent download ${result.id})`,
    ];
  }
  const lines: string[] = [];
  const epochs = report.epochsRun ?? job?.progress.epoch;
  const head = [
    `Job ${result.id}${job ? ` ${out.paint(job.name, 'bold')}` : ''}: ${out.status(result.status)}`,
    epochs === undefined ? '' : ` after ${epochs} epoch${epochs === 1 ? '' : 's'}`,
    report.stoppedBy ? ` (stopped by ${report.stoppedBy})` : '',
    job?.resources?.trainingSeconds === undefined ? '' : ` in ${duration(job.resources.trainingSeconds)}`,
    report.backend ? `, backend ${report.backend}` : '',
  ];
  lines.push(head.join(''), '');
  const p = report.privacy;
  if (p) {
    lines.push(
      `Privacy    (ε = ${formatNumber(p.epsilon)}, δ = ${p.delta})-differentially private${p.targetEpsilon === undefined ? '' : ` (target ε ${p.targetEpsilon})`}: σ = ${formatNumber(p.noiseMultiplier)}, clip ${p.clipNorm}, q = ${formatNumber(p.sampleRate)}, ${p.steps} steps (${p.accountant} accountant)`,
      '',
    );
  }

  const rows = metricRows(report);
  if (rows.length > 0) {
    const sets = ['training', 'validation', 'test'].filter((_, i) =>
      rows.some((r) => r[i + 1] !== undefined),
    );
    const columns = ['training', 'validation', 'test'].map((set) => sets.includes(set));
    lines.push(
      ...out.table(
        ['metric', ...sets],
        rows.map(([name, ...values]) => [name, ...values.filter((_, i) => columns[i])]),
        sets.map((_, i) => i + 1),
      ),
      '',
    );
  }
  const data = report.data as
    | { rows?: number; used?: number; excluded?: { name: string; reason: string }[] }
    | undefined;
  if (data?.excluded?.length)
    lines.push(`Not used   ${data.excluded.map((e) => `${e.name} (${e.reason})`).join(', ')}`, '');
  const warnings = warningsOf(report, job);
  for (const w of warnings) lines.push(`${out.paint('Warning', 'yellow')}  ${w}`);
  if (warnings.length) lines.push('');

  if (result.reportOmitted?.length)
    lines.push(
      `Not shown  ${result.reportOmitted.join(', ')} (too large for one answer; report.json has them: descent download ${result.id})`,
      '',
    );

  const confusion = confusionMatrixOf(report);
  if (confusion) {
    lines.push(`Confusion matrix (${confusion.set} rows; rows = actual, columns = predicted)`);
    lines.push(
      ...out.table(
        ['', ...confusion.classes],
        confusion.matrix.map((row, i) => [confusion.classes[i] ?? String(i), ...row]),
        confusion.classes.map((_, i) => i + 1),
      ),
      '',
    );
  }

  const importances = featureImportances(report).slice(0, TOP_FEATURES);
  if (importances.length > 0) {
    const max = Math.max(...importances.map((f) => Math.abs(f.importance)), Number.MIN_VALUE);
    lines.push('Top feature importances');
    lines.push(
      ...out.table(
        ['feature', 'importance', ''],
        importances.map((f) => [
          f.feature,
          f.std === undefined
            ? formatNumber(f.importance)
            : `${formatNumber(f.importance)} ± ${formatNumber(f.std)}`,
          bar(Math.abs(f.importance) / max, 20),
        ]),
        [1],
      ),
      '',
    );
  }

  const names = Object.keys(result.artifacts);
  lines.push(`Artifacts  ${names.join(', ')}  (descent download ${result.id})`);
  return lines;
}
