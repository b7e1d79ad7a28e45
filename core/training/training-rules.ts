/**
 * The rules that steer a training run epoch by epoch, as pure state machines so that they can be
 * tested alone and checkpointed: learning-rate schedules, early stopping, the loss threshold.
 */
import type { EpochMetrics } from '../jobs/job-record.ts';
import type { JobSpec, Monitor, ScheduleSpec } from '../jobs/job-spec.ts';

/** Accuracy-like metrics improve upwards; losses and errors downwards. */
export const higherIsBetter = (monitor: Monitor): boolean =>
  monitor === 'accuracy' || monitor === 'valAccuracy';

export function monitored(metrics: EpochMetrics, monitor: Monitor): number | undefined {
  const value = metrics[monitor];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

export interface ScheduleState {
  rate: number;
  best?: number;
  wait: number;
}

/** Learning rate for each epoch (1-based) from the optimizer's base rate and the schedule. */
export class LearningRateSchedule {
  readonly #base: number;
  readonly #spec: ScheduleSpec | undefined;
  readonly #epochs: number;
  state: ScheduleState;

  constructor(base: number, spec: ScheduleSpec | undefined, epochs: number, state?: ScheduleState) {
    this.#base = base;
    this.#spec = spec;
    this.#epochs = epochs;
    this.state = state ?? { rate: base, wait: 0 };
  }

  /** The rate to train epoch `epoch` with. */
  rateFor(epoch: number): number {
    const s = this.#spec;
    const e = epoch - 1;
    if (!s) return this.#base;
    switch (s.type) {
      case 'step':
        return this.#base * s.gamma ** Math.floor(e / s.stepSize);
      case 'exponential':
        return this.#base * s.gamma ** e;
      case 'cosine': {
        const period = s.periodEpochs ?? this.#epochs;
        const t = Math.min(e, period - 1) / Math.max(period - 1, 1);
        return s.minLearningRate + (this.#base - s.minLearningRate) * 0.5 * (1 + Math.cos(Math.PI * t));
      }
      case 'reduceOnPlateau':
        return this.state.rate;
    }
  }

  /** Feeds an epoch's metrics (only `reduceOnPlateau` listens); returns the new rate when it changed. */
  observe(metrics: EpochMetrics): number | undefined {
    const s = this.#spec;
    if (s?.type !== 'reduceOnPlateau') return undefined;
    const value = monitored(metrics, s.monitor);
    if (value === undefined) return undefined;
    const sign = higherIsBetter(s.monitor) ? -1 : 1;
    if (this.state.best === undefined || sign * (value - this.state.best) < -s.minDelta) {
      this.state = { ...this.state, best: value, wait: 0 };
      return undefined;
    }
    const wait = this.state.wait + 1;
    if (wait < s.patience) {
      this.state = { ...this.state, wait };
      return undefined;
    }
    const rate = Math.max(this.state.rate * s.factor, s.minLearningRate);
    const changed = rate !== this.state.rate;
    this.state = { ...this.state, rate, wait: 0 };
    return changed ? rate : undefined;
  }
}

export interface EarlyStoppingState {
  best?: number;
  bestEpoch: number;
  wait: number;
}

/** Stops when `monitor` has not improved by more than `minDelta` for `patience` epochs. */
export class EarlyStopping {
  readonly #spec: NonNullable<JobSpec['training']['earlyStopping']>;
  state: EarlyStoppingState;

  constructor(spec: NonNullable<JobSpec['training']['earlyStopping']>, state?: EarlyStoppingState) {
    this.#spec = spec;
    this.state = state ?? { bestEpoch: 0, wait: 0 };
  }

  /** `improved`: this epoch is the best so far (save its weights); `stop`: patience ran out. */
  observe(metrics: EpochMetrics): { improved: boolean; stop: boolean } {
    const value = monitored(metrics, this.#spec.monitor);
    if (value === undefined) return { improved: false, stop: false };
    const sign = higherIsBetter(this.#spec.monitor) ? -1 : 1;
    if (this.state.best === undefined || sign * (value - this.state.best) < -this.#spec.minDelta) {
      this.state = { best: value, bestEpoch: metrics.epoch, wait: 0 };
      return { improved: true, stop: false };
    }
    this.state = { ...this.state, wait: this.state.wait + 1 };
    return { improved: false, stop: this.state.wait >= this.#spec.patience };
  }
}

/** True when the spec's `lossThreshold` is met by this epoch. */
export function thresholdReached(
  threshold: JobSpec['training']['lossThreshold'],
  metrics: EpochMetrics,
): boolean {
  if (threshold === undefined) return false;
  if (typeof threshold === 'number') return metrics.loss < threshold;
  const value = monitored(metrics, threshold.metric);
  if (value === undefined) return false;
  const mode = threshold.mode ?? (higherIsBetter(threshold.metric) ? 'above' : 'below');
  return mode === 'below' ? value < threshold.value : value > threshold.value;
}
