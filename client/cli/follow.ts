/**
 * Following a job from the terminal: a live progress bar (epoch, loss, val loss, ETA) on a TTY,
 * throttled plain lines elsewhere, JSON lines for `logs --json`.
 */
import type { DescentClient } from '../client.ts';
import { formatNumber } from '../report.ts';
import type { EpochMetrics, JobEvent, JobRecord } from '../types.ts';
import { bar, duration, type Output } from './output.ts';

export type FollowMode =
  /** `train --follow`: progress on stderr, the summary comes after. */
  | 'progress'
  /** `logs --follow`: every event and epoch on stdout. */
  | 'logs';

/** Plain (non-TTY) progress lines are at most this often, plus the last one. */
const PLAIN_INTERVAL_MS = 1000;

/** An event as a line; `toStderr` picks the colour rule of the stream it goes to. */
export function eventLine(out: Output, event: JobEvent, toStderr = false): string {
  const pad = (text: string) => text.padEnd(10);
  const tag =
    event.type === 'state' && event.status
      ? toStderr
        ? out.statusErr(event.status) + ' '.repeat(Math.max(0, 10 - event.status.length))
        : out.status(event.status) + ' '.repeat(Math.max(0, 10 - event.status.length))
      : event.type === 'warning'
        ? (toStderr ? out.paintErr : out.paint).call(out, pad('WARNING'), 'yellow')
        : pad('INFO');
  return `${event.at}  ${tag}  ${event.message}`;
}

export function epochLine(metrics: EpochMetrics, epochs?: number): string {
  const extra = Object.entries(metrics)
    .filter(([k, v]) => !['epoch', 'loss', 'valLoss'].includes(k) && typeof v === 'number')
    .map(([k, v]) => `  ${k} ${formatNumber(v as number)}`)
    .join('');
  return (
    `epoch ${epochs ? `${metrics.epoch}/${epochs}` : metrics.epoch}  loss ${formatNumber(metrics.loss)}` +
    (metrics.valLoss === undefined ? '' : `  val loss ${formatNumber(metrics.valLoss)}`) +
    extra
  );
}

/** Estimates the time left from the epochs seen since following began. */
class Eta {
  #start?: { epoch: number; at: number };
  seconds(epoch: number, epochs: number, now = Date.now()): number | undefined {
    if (!this.#start) {
      this.#start = { epoch, at: now };
      return undefined;
    }
    const done = epoch - this.#start.epoch;
    if (done <= 0) return undefined;
    return ((epochs - epoch) * (now - this.#start.at)) / done / 1000;
  }
}

/** Follows until the job has finished; returns its final record. */
export async function followJob(
  client: DescentClient,
  out: Output,
  jobId: string,
  mode: FollowMode,
  signal?: AbortSignal,
): Promise<JobRecord> {
  const eta = new Eta();
  let job: JobRecord | undefined;
  let latest: EpochMetrics | undefined;
  let lastPlain = 0;
  let pendingPlain: string | undefined;

  let lastRender = 0;
  /** Redraws the progress line, at most every 100 ms unless `force`d (a burst of epochs draws once). */
  const render = (force = false) => {
    if (!job || !out.live || mode !== 'progress') return;
    const now = Date.now();
    if (!force && now - lastRender < 100) return;
    lastRender = now;
    if (job.status === 'QUEUED') return out.setLive(`${out.statusErr('QUEUED')}  waiting for a worker…`);
    const epochs = job.progress.epochs;
    const epoch = Math.max(job.progress.epoch, latest?.epoch ?? 0);
    const loss = latest?.loss ?? job.progress.loss;
    const valLoss = latest?.valLoss ?? job.progress.valLoss;
    const left = eta.seconds(epoch, epochs);
    out.setLive(
      `${out.statusErr(job.status)}  epoch ${String(epoch).padStart(String(epochs).length)}/${epochs} ` +
        `${bar(epoch / epochs)} ${String(Math.floor((100 * epoch) / epochs)).padStart(3)}%` +
        (loss === undefined ? '' : `  loss ${formatNumber(loss)}`) +
        (valLoss === undefined ? '' : `  val ${formatNumber(valLoss)}`) +
        (left === undefined ? '' : `  ETA ${duration(left)}`),
    );
  };

  const updates = client.follow(jobId, signal ? { signal } : {});
  for (;;) {
    const next = await updates.next();
    if (next.done) {
      job = next.value;
      break;
    }
    const update = next.value;
    if (update.type === 'job') {
      job = update.job;
      render(true);
    } else if (update.type === 'epoch') {
      latest = update.metrics;
      if (out.json) {
        if (mode === 'logs') out.jsonLine({ kind: 'epoch', ...update.metrics });
      } else if (mode === 'logs') {
        out.line(epochLine(update.metrics, job?.progress.epochs));
      } else if (out.live) {
        render();
      } else {
        // Plain progress for logs and CI: at most one line a second, and the last one at the end.
        pendingPlain = epochLine(update.metrics, job?.progress.epochs);
        if (Date.now() - lastPlain >= PLAIN_INTERVAL_MS) {
          out.note(pendingPlain);
          pendingPlain = undefined;
          lastPlain = Date.now();
        }
      }
    } else if (out.json) {
      if (mode === 'logs') out.jsonLine({ kind: 'event', ...update.event });
    } else if (mode === 'logs') {
      out.line(eventLine(out, update.event));
    } else {
      out.note(eventLine(out, update.event, true));
      render(true);
    }
  }
  if (pendingPlain) out.note(pendingPlain);
  out.clearLive();
  return job;
}
