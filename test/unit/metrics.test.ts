import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classificationMetrics, regressionMetrics } from '../../core/training/metrics.ts';

describe('classificationMetrics', () => {
  it('computes accuracy, per-class precision/recall/F1 and the confusion matrix', () => {
    const m = classificationMetrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ['a', 'b', 'c']);
    assert.equal(m.accuracy, 3 / 5);
    assert.deepEqual(m.confusionMatrix, [
      [1, 1, 0],
      [0, 2, 0],
      [1, 0, 0],
    ]);
    assert.deepEqual(m.perClass[1], { class: 'b', precision: 2 / 3, recall: 1, f1: 0.8, support: 2 });
    assert.equal(m.perClass[2]?.f1, 0);
    assert.ok(Math.abs(m.macroF1 - (0.5 + 0.8 + 0) / 3) < 1e-12);
  });
});

describe('regressionMetrics', () => {
  it('computes MAE, RMSE and R²', () => {
    const m = regressionMetrics([1, 2, 3, 4], [1, 2, 3, 6]);
    assert.equal(m.mae, 0.5);
    assert.equal(m.rmse, 1);
    assert.equal(m.r2, 1 - 4 / 5);
  });
  it('gives R² = 1 for a perfect fit', () => {
    assert.equal(regressionMetrics([1, 2, 3], [1, 2, 3]).r2, 1);
  });
});
