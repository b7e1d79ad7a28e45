/** The report builder is a pure function of what training and evaluation measured. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FittedPreprocessing } from '../../core/training/preprocess.ts';
import {
  buildReport,
  gapOf,
  kfoldSection,
  resourcesOf,
  validationSummary,
} from '../../core/training/report.ts';
import { specOf } from '../helpers/specs.ts';

const preprocessing = {
  columns: [{ name: 'a' }, { name: 'b' }],
  inputShape: [2],
} as unknown as FittedPreprocessing;

describe('report builder', () => {
  it('summarises k folds by mean and standard deviation of each metric, leaving out the bookkeeping', () => {
    const kfold = kfoldSection(
      [
        { fold: 1, trainingRows: 8, validationRows: 2, epochsRun: 3, accuracy: 0.5, loss: 1 },
        { fold: 2, trainingRows: 8, validationRows: 2, epochsRun: 3, accuracy: 1, loss: 0 },
      ],
      10,
    );
    assert.deepEqual(Object.keys(kfold.summary).sort(), ['accuracy', 'loss']);
    assert.equal(kfold.summary.accuracy?.mean, 0.75);
    assert.match(kfold.deliveredModel, /all 10 rows/);
    assert.deepEqual(validationSummary(undefined, kfold), { accuracy: 0.75, loss: 0.5 });
  });

  it('computes resources from timestamps: queue, training and wall time, and the cost estimate', () => {
    const r = resourcesOf({
      createdAt: 0,
      startedAt: 10_000,
      finishedAt: 3_610_000,
      epochsRun: 3,
      samplesPerSecond: 100,
      peakRssBytes: 1,
      peakTensorBytes: 2,
      backend: 'wasm',
      device: 'cpu',
      engine: 'eager',
      engineReason: 'the eager engine was asked for',
      hourlyPriceUsd: 2,
      rows: { training: 8, validation: 2, test: 0 },
      parameters: 42,
    });
    assert.deepEqual([r.queueSeconds, r.trainingSeconds, r.wallSeconds], [10, 3600, 3610]);
    assert.equal(r.estimatedCostUsd, 2);
  });

  it('builds the same report from the same inputs, with the gap in the headline metric', () => {
    const input = {
      jobId: 'J',
      spec: specOf(),
      classes: ['x', 'y'],
      loss: 'categoricalCrossentropy' as const,
      backend: 'wasm',
      history: [{ epoch: 1, loss: 0.5 }],
      stoppedBy: 'epochs',
      training: { accuracy: 0.9 },
      validation: { accuracy: 0.7 },
      featureImportance: [],
      importance: { metric: 'accuracy', set: 'validation' as const, rows: 2 },
      warnings: [],
      resources: resourcesOf({
        createdAt: 0,
        startedAt: 0,
        finishedAt: 1000,
        epochsRun: 1,
        samplesPerSecond: 1,
        peakRssBytes: 0,
        peakTensorBytes: 0,
        backend: 'wasm',
        device: 'cpu',
        engine: 'eager',
        engineReason: 'the eager engine was asked for',
        hourlyPriceUsd: 0,
        rows: { training: 8, validation: 2, test: 0 },
        parameters: 1,
      }),
      lineage: { seed: 1 },
      preprocessing,
    };
    const report = buildReport(input);
    assert.deepEqual(report, buildReport(structuredClone(input)));
    assert.deepEqual(report.features, ['a', 'b']);
    assert.deepEqual((report.gap as { difference: number }).difference.toFixed(2), '0.20');
    assert.equal(gapOf(undefined, { r2: 1 }, undefined), undefined);
  });
});
