/**
 * The trainer watching its own run and saying what went wrong in words (the article's advice):
 * divergence, a learning rate too small to move the loss, and overfitting.
 */
import type { EpochMetrics } from '../jobs/job-record.ts';

/** A loss this many times the first epoch's is taken as exploding. */
const EXPLODING_FACTOR = 1000;

/** Why the run diverged, or undefined. Called after every epoch. */
export function divergence(history: EpochMetrics[], learningRate: number): string | undefined {
  const last = history[history.length - 1];
  const first = history[0];
  if (!last || !first) return undefined;
  const advice = `lower the learning rate (now ${learningRate}), scale the features (preprocessing.scale "standardize"), or clip gradients`;
  if (!Number.isFinite(last.loss))
    return `The training loss became ${last.loss} at epoch ${last.epoch}: ${advice}.`;
  if (
    history.length >= 3 &&
    Number.isFinite(first.loss) &&
    first.loss > 0 &&
    last.loss > EXPLODING_FACTOR * first.loss
  ) {
    return `The training loss exploded from ${first.loss.toPrecision(3)} to ${last.loss.toPrecision(3)} by epoch ${last.epoch}: ${advice}.`;
  }
  return undefined;
}

/**
 * A loss that barely moved over the run: under 5% over at least 20 epochs (the article's own example,
 * 1,000 steps of gradient descent at 0.01 on a mean over 1,000 values, moves it by 4%).
 */
export function plateauWarning(history: EpochMetrics[], learningRate: number): string | undefined {
  if (history.length < 20) return undefined;
  const first = history[0]?.loss as number;
  const last = history[history.length - 1]?.loss as number;
  if (!(first > 1e-6) || !Number.isFinite(last)) return undefined;
  const change = (first - last) / first;
  if (Math.abs(change) >= 0.05) return undefined;
  return `The training loss moved only ${(change * 100).toFixed(1)}% in ${history.length} epochs (${first.toPrecision(3)} → ${last.toPrecision(3)}): the learning rate (${learningRate}) is likely too small; try a larger one, or an adaptive optimizer such as adam.`;
}

const REMEDIES = 'more data, a smaller model, L1/L2 regularization, dropout, or early stopping';

/**
 * Overfitting seen in the curves: the validation loss rose well above its best while the training loss
 * kept falling; or, at the end, a large train/validation gap in the headline metric.
 */
export function overfittingWarning(
  history: EpochMetrics[],
  gap?: { metric: string; train: number; validation: number },
): string | undefined {
  const withVal = history.filter((h) => typeof h.valLoss === 'number' && Number.isFinite(h.valLoss));
  if (withVal.length >= 10) {
    let best = withVal[0] as EpochMetrics;
    for (const h of withVal) if ((h.valLoss as number) < (best.valLoss as number)) best = h;
    const last = withVal[withVal.length - 1] as EpochMetrics;
    const epochsSince = last.epoch - best.epoch;
    if (
      epochsSince >= 5 &&
      (last.valLoss as number) > 1.2 * (best.valLoss as number) &&
      last.loss < best.loss
    ) {
      return `Overfitting: the validation loss was lowest at epoch ${best.epoch} (${(best.valLoss as number).toPrecision(3)}) and rose to ${(last.valLoss as number).toPrecision(3)} by epoch ${last.epoch} while the training loss kept falling. Remedies: ${REMEDIES}.`;
    }
  }
  if (gap) {
    const lowerIsBetter = gap.metric !== 'accuracy' && gap.metric !== 'r2';
    const worse = lowerIsBetter ? gap.validation - gap.train : gap.train - gap.validation;
    const scale = lowerIsBetter ? Math.max(Math.abs(gap.train), 1e-9) : 1;
    const large = lowerIsBetter ? worse / scale > 0.5 && worse > 1e-6 : worse > 0.1;
    if (large) {
      return `Overfitting: ${gap.metric} is ${gap.train.toPrecision(3)} on the training rows but ${gap.validation.toPrecision(3)} on the validation rows. Remedies: ${REMEDIES}.`;
    }
  }
  return undefined;
}
