import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EpochMetrics } from '../../core/jobs/job-record.ts';
import { divergence, overfittingWarning, plateauWarning } from '../../core/training/diagnostics.ts';
import { EarlyStopping, LearningRateSchedule, thresholdReached } from '../../core/training/training-rules.ts';

const epochs = (losses: number[], valLosses?: number[]): EpochMetrics[] =>
  losses.map((loss, i) => ({
    epoch: i + 1,
    loss,
    ...(valLosses ? { valLoss: valLosses[i] as number } : {}),
  }));

describe('learning-rate schedules', () => {
  it('step: multiplies by gamma every stepSize epochs', () => {
    const s = new LearningRateSchedule(0.1, { type: 'step', stepSize: 2, gamma: 0.5 }, 10);
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((e) => s.rateFor(e)),
      [0.1, 0.1, 0.05, 0.05, 0.025],
    );
  });
  it('exponential: lr · gamma^(epoch − 1)', () => {
    const s = new LearningRateSchedule(1, { type: 'exponential', gamma: 0.9 }, 10);
    assert.ok(Math.abs(s.rateFor(3) - 0.81) < 1e-12);
  });
  it('cosine: from lr to the minimum over the run', () => {
    const s = new LearningRateSchedule(1, { type: 'cosine', minLearningRate: 0 }, 11);
    assert.equal(s.rateFor(1), 1);
    assert.ok(Math.abs(s.rateFor(6) - 0.5) < 1e-12);
    assert.ok(s.rateFor(11) < 1e-12);
  });
  it('reduceOnPlateau: multiplies by factor after patience epochs without improvement, down to the minimum', () => {
    const s = new LearningRateSchedule(
      1,
      {
        type: 'reduceOnPlateau',
        monitor: 'valLoss',
        factor: 0.5,
        patience: 2,
        minDelta: 0,
        minLearningRate: 0.3,
      },
      100,
    );
    const changes = [1, 0.9, 0.95, 0.92, 0.93, 0.99, 0.98].map((v, i) =>
      s.observe({ epoch: i + 1, loss: 1, valLoss: v }),
    );
    assert.deepEqual(changes, [undefined, undefined, undefined, 0.5, undefined, 0.3, undefined]);
    assert.equal(s.rateFor(8), 0.3);
  });
  it('no schedule: the optimizer rate throughout', () => {
    assert.equal(new LearningRateSchedule(0.01, undefined, 5).rateFor(5), 0.01);
  });
});

describe('early stopping', () => {
  it('stops after patience epochs without an improvement larger than minDelta and remembers the best epoch', () => {
    const stop = new EarlyStopping({
      monitor: 'valLoss',
      patience: 2,
      minDelta: 0.01,
      restoreBestWeights: true,
    });
    const verdicts = [1, 0.5, 0.495, 0.6, 0.7].map((v, i) =>
      stop.observe({ epoch: i + 1, loss: 1, valLoss: v }),
    );
    assert.deepEqual(
      verdicts.map((v) => [v.improved, v.stop]),
      [
        [true, false],
        [true, false],
        [false, false],
        [false, true],
        [false, true],
      ],
    );
    assert.equal(stop.state.bestEpoch, 2);
  });
  it('treats accuracy as higher-is-better', () => {
    const stop = new EarlyStopping({
      monitor: 'valAccuracy',
      patience: 1,
      minDelta: 0,
      restoreBestWeights: false,
    });
    assert.equal(stop.observe({ epoch: 1, loss: 1, valAccuracy: 0.5 }).improved, true);
    assert.equal(stop.observe({ epoch: 2, loss: 1, valAccuracy: 0.7 }).improved, true);
    assert.equal(stop.observe({ epoch: 3, loss: 1, valAccuracy: 0.6 }).stop, true);
  });
});

describe('loss threshold', () => {
  it('a number watches the training loss; an object watches a named metric', () => {
    assert.equal(thresholdReached(0.1, { epoch: 1, loss: 0.09 }), true);
    assert.equal(thresholdReached(0.1, { epoch: 1, loss: 0.1 }), false);
    assert.equal(
      thresholdReached({ metric: 'valAccuracy', value: 0.9 }, { epoch: 1, loss: 1, valAccuracy: 0.95 }),
      true,
    );
    assert.equal(
      thresholdReached({ metric: 'valLoss', value: 0.2 }, { epoch: 1, loss: 0, valLoss: 0.3 }),
      false,
    );
    assert.equal(thresholdReached(undefined, { epoch: 1, loss: 0 }), false);
  });
});

describe('diagnostics', () => {
  it('calls a NaN or exploding loss divergence and suggests a smaller learning rate', () => {
    assert.match(
      divergence(epochs([1, Number.NaN]), 10) ?? '',
      /became NaN at epoch 2: lower the learning rate \(now 10\)/,
    );
    assert.match(divergence(epochs([1, 50, 5000]), 1) ?? '', /exploded/);
    assert.equal(divergence(epochs([1, 0.5, 0.2]), 1), undefined);
  });
  it("warns that the learning rate is too small on the article's own example (loss moves 4% in 1,000 steps)", () => {
    // Gradient descent at lr 0.01 on the mean squared error over N = 1,000 values: (1 − 2·lr/N)^k.
    const losses = Array.from({ length: 1000 }, (_, k) => 29.6 * (1 - (2 * 0.01) / 1000) ** (2 * k));
    assert.match(
      plateauWarning(epochs(losses), 0.01) ?? '',
      /moved only 3\.9% in 1000 epochs \(29\.6 → 28\.4\).*learning rate \(0\.01\) is likely too small/,
    );
    assert.equal(plateauWarning(epochs(Array.from({ length: 30 }, (_, k) => 10 / (k + 1))), 0.1), undefined);
  });
  it('warns of overfitting when validation loss rises while training loss falls, and on a large metric gap', () => {
    const train = Array.from({ length: 20 }, (_, i) => 1 / (i + 1));
    const val = Array.from({ length: 20 }, (_, i) => (i < 8 ? 1 - i * 0.05 : 0.65 + (i - 8) * 0.05));
    assert.match(
      overfittingWarning(epochs(train, val)) ?? '',
      /Overfitting: the validation loss was lowest at epoch 8.*more data, a smaller model, L1\/L2/,
    );
    assert.match(
      overfittingWarning([], { metric: 'accuracy', train: 1, validation: 0.7 }) ?? '',
      /accuracy is 1\.00 on the training rows but 0\.700/,
    );
    assert.equal(overfittingWarning([], { metric: 'accuracy', train: 0.95, validation: 0.93 }), undefined);
  });
});
