/**
 * The median stopping rule (Golovin et al., "Google Vizier", 2017): stop a trial at epoch e when its
 * best value of the watched metric by epoch e is worse than the median of the completed trials' best
 * values by the same epoch. Pure functions; the trainer calls them through `core/sweeps/sweep-controller.ts`.
 */
import type { EpochMetrics } from '../jobs/job-record.ts';
import { better, type Goal, type StoppingMonitor } from './sweep-spec.ts';

/** Lower is better for losses and errors, higher for accuracy. */
export const monitorGoal = (monitor: StoppingMonitor): Goal =>
  monitor === 'valAccuracy' ? 'maximize' : 'minimize';

/** `best[e - 1]` = the best value of `metric` over epochs 1…e (an epoch without it keeps the best so far). */
export function runningBest(history: readonly EpochMetrics[], metric: StoppingMonitor, goal: Goal): number[] {
  const out: number[] = [];
  let best = Number.NaN;
  for (const epoch of history) {
    const value = epoch[metric];
    if (
      typeof value === 'number' &&
      Number.isFinite(value) &&
      (Number.isNaN(best) || better(goal, value, best))
    )
      best = value;
    out.push(best);
  }
  return out;
}

export const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

export interface MedianDecision {
  readonly stop: boolean;
  readonly epoch: number;
  /** This trial's best value by `epoch`. */
  readonly best: number;
  /** The median of the completed trials' best values by `epoch`. */
  readonly median: number;
  readonly completed: number;
}

/**
 * The rule's verdict for a trial whose running best is `current` (one value per epoch so far), given
 * the running bests of the completed trials; `undefined` while it does not apply yet (fewer than
 * `minEpochs` epochs or `minTrials` completed trials). A completed trial that ended before epoch e
 * (its own early stopping) counts with its best over its whole run.
 */
export function medianStop(
  current: readonly number[],
  completed: readonly (readonly number[])[],
  goal: Goal,
  options: { minEpochs: number; minTrials: number },
): MedianDecision | undefined {
  const epoch = current.length;
  const best = current[epoch - 1];
  if (epoch < options.minEpochs || best === undefined || !Number.isFinite(best)) return undefined;
  const values = completed
    .filter((c) => c.length > 0)
    .map((c) => c[Math.min(epoch, c.length) - 1] as number)
    .filter(Number.isFinite);
  if (values.length < options.minTrials) return undefined;
  const m = median(values);
  return { stop: better(goal, m, best), epoch, best, median: m, completed: values.length };
}
