/**
 * Private training without tensors: the plan of a run, what its guarantee does not cover (and the
 * spec fields that cover it), the checks at submit, supplied preprocessing statistics, and the
 * sweep's warning.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UnrecoverableError } from '../../core/platform/errors.ts';
import { sweepWarnings } from '../../core/sweeps/sweep-report.ts';
import { prepareData } from '../../core/training/dataset-prep.ts';
import { encodeRecord, encodeRows, fitPreprocessing } from '../../core/training/preprocess.ts';
import {
  defaultDelta,
  notCovered,
  planPrivacy,
  privacyProblems,
  privacySection,
} from '../../core/training/privacy.ts';
import { epsilonOf } from '../../core/training/privacy-accountant.ts';
import { specOf } from '../helpers/specs.ts';
import { tableOf } from '../helpers/tables.ts';

describe('private training: the plan', () => {
  it('samples at q = batch / rows, ⌈rows / batch⌉ steps an epoch, with the least σ that meets the target', () => {
    const plan = planPrivacy({ targetEpsilon: 2, clipNorm: 1 }, 120, 16, 50);
    assert.equal(plan.sampleRate, 16 / 120);
    assert.equal(plan.stepsPerEpoch, 8);
    assert.equal(plan.plannedSteps, 400);
    assert.equal(plan.epochs, 50);
    assert.equal(plan.delta, 1e-5);
    assert.equal(plan.expectedBatchSize, 16);
    assert.ok(plan.plannedEpsilon <= 2 && plan.plannedEpsilon > 1.99, String(plan.plannedEpsilon));
    const run = { sampleRate: plan.sampleRate, steps: 400, delta: 1e-5 };
    assert.ok(epsilonOf({ ...run, noiseMultiplier: plan.noiseMultiplier * 0.99 }).epsilon > 2);
  });

  it('uses the whole set as one batch for batchSize "full" (q = 1) and a smaller δ for large sets', () => {
    const plan = planPrivacy({ noiseMultiplier: 5, clipNorm: 2 }, 50, 'full', 10);
    assert.equal(plan.sampleRate, 1);
    assert.equal(plan.stepsPerEpoch, 1);
    assert.equal(plan.noiseMultiplier, 5);
    assert.equal(plan.clipNorm, 2);
    assert.equal(defaultDelta(1_000_000), 1e-7);
    assert.equal(planPrivacy({ noiseMultiplier: 5, clipNorm: 1 }, 200_000, 100, 1).delta, 5e-7);
  });

  it('with both σ and a target, plans only the epochs the budget allows', () => {
    const plan = planPrivacy({ noiseMultiplier: 1, targetEpsilon: 3, clipNorm: 1 }, 1000, 50, 500);
    assert.ok(plan.epochs > 0 && plan.epochs < 500, String(plan.epochs));
    assert.ok(plan.plannedEpsilon <= 3);
    const next = epsilonOf({
      sampleRate: 0.05,
      noiseMultiplier: 1,
      steps: (plan.epochs + 1) * 20,
      delta: plan.delta,
    });
    assert.ok(next.epsilon > 3);
  });

  it('fails the job, saying what to change, when the target cannot be met', () => {
    assert.throws(
      () => planPrivacy({ noiseMultiplier: 0.3, targetEpsilon: 0.5, clipNorm: 1 }, 100, 50, 10),
      (e: unknown) =>
        e instanceof UnrecoverableError &&
        e.code === 'PRIVACY_BUDGET_EXCEEDED' &&
        /One epoch/.test(e.message),
    );
    assert.throws(
      () => planPrivacy({ targetEpsilon: 0.05, clipNorm: 1 }, 10, 10, 100_000),
      (e: unknown) => e instanceof UnrecoverableError && e.code === 'PRIVACY_TARGET_UNREACHABLE',
    );
  });
});

describe('private training: what the guarantee covers', () => {
  const rows = [
    [1, 'red', 'a'],
    [2, 'blue', 'b'],
    [3, 'red', 'a'],
    [4, 'blue', 'b'],
  ];
  const fitted = async (preprocessing: object, training: object = {}) => {
    const table = await tableOf(['x', 'colour', 'label'], rows);
    const spec = specOf({ preprocessing, training: { privacy: { targetEpsilon: 1 }, ...training } });
    const data = prepareData(table, spec);
    return { spec, fitted: fitPreprocessing(table, data.features, data.trainRows), table, data };
  };

  it('warns about hold-out rows, fitted statistics and rules on training metrics, naming the fields that fix them', async () => {
    const { spec, fitted: f } = await fitted(
      { scale: 'standardize' },
      { lossThreshold: 0.1, earlyStopping: { monitor: 'loss' } },
    );
    const items = notCovered(spec, f).join('\n');
    assert.match(items, /hold-out rows/);
    assert.match(items, /"x" is scaled \(standardize\).*preprocessing\.columns\["x"\]\.range/);
    assert.match(items, /categories of "colour".*preprocessing\.columns\["colour"\]\.categories/);
    assert.match(items, /training\.lossThreshold watches/);
    assert.match(items, /training\.earlyStopping watches/);
  });

  it('has nothing about preprocessing once the statistics are supplied, and says so for k-fold and test rows', async () => {
    const { spec, fitted: f } = await fitted(
      {
        scale: 'standardize',
        columns: { x: { range: [0, 10] }, colour: { categories: ['red', 'blue', 'green'] } },
      },
      { validation: { type: 'kfold', k: 2 }, testFraction: 0.25, earlyStopping: { monitor: 'valLoss' } },
    );
    const items = notCovered(spec, f).join('\n');
    assert.doesNotMatch(items, /Preprocessing statistics/);
    assert.doesNotMatch(items, /earlyStopping/);
    assert.match(items, /k-fold/);
    assert.match(items, /test rows/);
  });

  it('names a date column, whose scaling and mean date are fitted on the rows', async () => {
    const table = await tableOf(
      ['signup', 'label'],
      [
        ['2024-01-05', 'a'],
        ['2024-03-09', 'b'],
        ['2024-06-30', 'a'],
        ['2024-09-14', 'b'],
      ],
    );
    const spec = specOf({ training: { privacy: { targetEpsilon: 1 }, validation: { type: 'none' } } });
    const data = prepareData(table, spec);
    const items = notCovered(spec, fitPreprocessing(table, data.features, data.trainRows)).join('\n');
    assert.match(items, /"signup" is a date column.*dataset\.exclude/);
  });

  it('reports ε for the steps taken, the planned ε, the accountant and the classic figure', async () => {
    const { spec, fitted: f } = await fitted({});
    const plan = planPrivacy({ targetEpsilon: 1, clipNorm: 1 }, 120, 16, 10);
    const section = privacySection({ plan, steps: 40 }, spec, f);
    assert.equal(section.steps, 40);
    assert.equal(section.plannedSteps, 80);
    assert.ok(section.epsilon < section.plannedEpsilon && section.plannedEpsilon <= 1);
    assert.equal(
      section.epsilon,
      epsilonOf({
        sampleRate: plan.sampleRate,
        noiseMultiplier: plan.noiseMultiplier,
        steps: 40,
        delta: 1e-5,
      }).epsilon,
    );
    assert.ok(section.epsilonClassic > section.epsilon);
    assert.equal(section.accountant, 'rdp');
    assert.equal(section.conversion, 'ckst2020');
    assert.ok(section.orders.includes(section.optimalOrder));
  });
});

describe('private training: checks at submit', () => {
  it('refuses batch normalization and a second gradient clipping, saying why', () => {
    const spec = specOf({
      model: { layers: [{ type: 'dense', units: 4 }, { type: 'batchNormalization' }] },
      training: { privacy: { targetEpsilon: 1 }, gradientClipping: { clipNorm: 1 } },
    });
    const problems = privacyProblems(spec);
    assert.deepEqual(
      problems.map((p) => p.path),
      ['model.layers[1]', 'training.gradientClipping'],
    );
    assert.match(problems[0]?.message ?? '', /statistics of the whole batch/);
    assert.deepEqual(privacyProblems({ ...spec, training: { ...spec.training, privacy: undefined } }), []);
  });
});

describe('supplied preprocessing statistics', () => {
  it('scales with a supplied range, clips into it, and encodes with a fixed vocabulary', async () => {
    const table = await tableOf(
      ['x', 'colour', 'label'],
      [
        [1, 'red', 'a'],
        [30, 'blue', 'b'],
        [-5, 'purple', 'a'],
      ],
    );
    const spec = specOf({
      preprocessing: {
        scale: 'minMax',
        columns: { x: { range: [0, 10] }, colour: { categories: ['red', 'green', 'blue'] } },
      },
      training: { validation: { type: 'none' } },
    });
    const data = prepareData(table, spec);
    const fitted = fitPreprocessing(table, data.features, data.trainRows);
    assert.deepEqual(fitted.columns[0], {
      name: 'x',
      kind: 'numeric',
      scale: 'minMax',
      offset: 0,
      divisor: 10,
      range: [0, 10],
      missing: 'error',
      mean: 5,
    });
    assert.equal(
      'mostFrequent' in (fitted.columns[1] as object),
      false,
      'no statistic of the rows published',
    );
    assert.deepEqual((fitted.columns[1] as { categories: string[] }).categories, ['red', 'green', 'blue']);
    const encoded = Array.from(encodeRows(table, data.features, fitted, Int32Array.of(0, 1, 2)));
    // x: 0.1, clipped 1, clipped 0; colour one-hot in the supplied order, purple unseen.
    assert.deepEqual(
      encoded.map((v) => Number(v.toFixed(6))),
      [0.1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0],
    );
    assert.deepEqual(Array.from(encodeRecord(fitted, { x: 99, colour: 'green' })), [1, 0, 1, 0]);
    const standardized = fitPreprocessing(
      table,
      prepareData(table, specOf({ ...spec, preprocessing: { ...spec.preprocessing, scale: 'standardize' } }))
        .features,
      data.trainRows,
    );
    assert.deepEqual(
      [standardized.columns[0]].map((c) => c?.kind === 'numeric' && [c.offset, c.divisor]),
      [[5, 5]],
    );
  });
});

describe('sweeps of private trials', () => {
  it('warns that tuning on private data spends extra budget, with the trials’ ε summed', () => {
    const record = {
      request: { spec: { training: { privacy: { targetEpsilon: 1 } } }, parameters: {} },
      trials: [{ epsilon: 0.9 }, { epsilon: 1 }, {}],
    } as unknown as Parameters<typeof sweepWarnings>[0];
    const [warning] = sweepWarnings(record);
    assert.match(warning ?? '', /tuning on private data spends extra budget/);
    assert.match(warning ?? '', /1\.900 for the 2 trials/);
    const plain = {
      request: { spec: { training: {} }, parameters: {} },
      trials: [{}],
    } as unknown as Parameters<typeof sweepWarnings>[0];
    assert.deepEqual(sweepWarnings(plain), []);
  });
});
