/**
 * Sweep specs: the grid is exactly the product of the choices, random draws are reproducible from
 * their seed, and a domain that can produce an invalid job spec is a 400 naming the parameter.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '../../core/platform/errors.ts';
import { median, medianStop, runningBest } from '../../core/sweeps/median-stopping.ts';
import {
  type Domain,
  gridAssignments,
  randomAssignments,
  resolveSweep,
  type SweepRequestInput,
  setPath,
  sweepRequest,
  trialSpec,
} from '../../core/sweeps/sweep-spec.ts';
import { DATASET_ID } from '../helpers/specs.ts';

const LIMITS = { maxActiveJobs: 20 };

/** A sweep request over a small iris-like spec, with `overrides` merged at the top level. */
const request = (overrides: Partial<SweepRequestInput> = {}): SweepRequestInput => ({
  name: 'lr-units',
  spec: {
    task: 'classification',
    dataset: { id: DATASET_ID, label: 'species' },
    model: { layers: [{ type: 'dense', units: 16 }] },
    training: { optimizer: { type: 'adam', learningRate: 0.01 }, epochs: 5, seed: 42 },
  },
  parameters: {
    'training.optimizer.learningRate': { type: 'choice', values: [0.001, 0.01, 0.1] },
    'model.layers[0].units': { type: 'choice', values: [4, 8, 16, 32] },
  },
  ...overrides,
});
const resolve = (overrides: Partial<SweepRequestInput> = {}) =>
  resolveSweep(sweepRequest.parse(request(overrides)), LIMITS);

/** Asserts that `fn` throws a 400 whose message and details name `parameter`. */
function assertNames(fn: () => unknown, parameter: string, pattern?: RegExp) {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ValidationError, String(error));
    assert.equal(error.status, 400);
    assert.ok(error.message.includes(parameter), error.message);
    assert.equal((error.details as { parameter?: string }).parameter, parameter);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

describe('sweep strategies', () => {
  it('grid enumerates exactly the product of the choices, first parameter slowest', () => {
    const { sweep, assignments } = resolve();
    assert.equal(sweep.strategy, 'grid');
    assert.equal(assignments.length, 12);
    const keys = assignments.map((a) => JSON.stringify(a));
    assert.equal(new Set(keys).size, 12, 'no combination twice');
    for (const lr of [0.001, 0.01, 0.1])
      for (const units of [4, 8, 16, 32])
        assert.ok(
          keys.includes(
            JSON.stringify({ 'training.optimizer.learningRate': lr, 'model.layers[0].units': units }),
          ),
        );
    assert.deepEqual(assignments[0], {
      'training.optimizer.learningRate': 0.001,
      'model.layers[0].units': 4,
    });
    assert.deepEqual(assignments[4], { 'training.optimizer.learningRate': 0.01, 'model.layers[0].units': 4 });
    assert.equal(sweep.maxTrials, 12);
    assert.deepEqual(
      gridAssignments({ a: { type: 'choice', values: [1, 2] }, b: { type: 'choice', values: ['x'] } }),
      [
        { a: 1, b: 'x' },
        { a: 2, b: 'x' },
      ],
    );
  });

  it('random is reproducible from its seed and stays inside every domain', () => {
    const parameters: Record<string, Domain> = {
      lr: { type: 'logUniform', min: 1e-4, max: 0.1 },
      units: { type: 'intUniform', min: 4, max: 64 },
      l2: { type: 'uniform', min: 0, max: 0.01 },
      optimizer: { type: 'choice', values: ['adam', 'sgd'] },
    };
    const a = randomAssignments(parameters, 50, 1234);
    assert.deepEqual(randomAssignments(parameters, 50, 1234), a, 'same seed, same trials');
    assert.notDeepEqual(randomAssignments(parameters, 50, 1235), a, 'another seed, other trials');
    for (const t of a) {
      assert.ok((t.lr as number) >= 1e-4 && (t.lr as number) <= 0.1);
      assert.ok(Number.isInteger(t.units) && (t.units as number) >= 4 && (t.units as number) <= 64);
      assert.ok((t.l2 as number) >= 0 && (t.l2 as number) <= 0.01);
      assert.ok(['adam', 'sgd'].includes(t.optimizer as string));
    }
    // Log-uniform: about as many draws below 1e-2.5 (the middle decade in log space) as above.
    const below = a.filter((t) => (t.lr as number) < 10 ** -2.5).length;
    assert.ok(below > 10 && below < 40, `${below} of 50 below the log midpoint`);

    const resolved = resolve({
      strategy: 'random',
      seed: 7,
      maxTrials: 6,
      parameters: { 'training.optimizer.learningRate': { type: 'logUniform', min: 1e-3, max: 0.3 } },
    });
    assert.equal(resolved.sweep.seed, 7);
    assert.equal(resolved.assignments.length, 6);
    assert.deepEqual(
      resolve({
        strategy: 'random',
        seed: 7,
        maxTrials: 6,
        parameters: { 'training.optimizer.learningRate': { type: 'logUniform', min: 1e-3, max: 0.3 } },
      }).assignments,
      resolved.assignments,
    );
  });

  it('sets values at paths into objects and array items, and builds each trial spec from the sweep spec', () => {
    const { sweep, assignments } = resolve();
    const spec = trialSpec(sweep, assignments[11] as Record<string, unknown>) as any;
    assert.equal(spec.training.optimizer.learningRate, 0.1);
    assert.equal(spec.model.layers[0].units, 32);
    assert.equal(spec.training.seed, 42, 'every trial shares the training seed');
    const target: Record<string, unknown> = { a: [{ b: 1 }] };
    assert.equal(setPath(target, 'a[0].c', 2), undefined);
    assert.deepEqual(target, { a: [{ b: 1, c: 2 }] });
    assert.match(setPath(target, 'a[1].b', 2) ?? '', /no a\[1\] \(it has 1 item\)/);
    assert.match(setPath(target, 'x.y', 2) ?? '', /no x/);
    assert.match(setPath(target, '__proto__.polluted', 1) ?? '', /not a path/);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('sweep validation at submit', () => {
  it('refuses a choice that gives an invalid spec, naming the parameter', () => {
    assertNames(
      () =>
        resolve({
          parameters: { 'model.layers[0].units': { type: 'choice', values: [8, 0] } },
        }),
      'model.layers[0].units',
      /the value 0 gives an invalid job spec/,
    );
  });

  it('checks both bounds of a continuous domain', () => {
    // learningRate must be positive: a range starting at 0 can produce 0.
    assertNames(
      () =>
        resolve({ parameters: { 'training.optimizer.learningRate': { type: 'uniform', min: 0, max: 0.1 } } }),
      'training.optimizer.learningRate',
      /the value 0 /,
    );
    // ...and at most 10,000: the upper bound is checked too.
    assertNames(
      () =>
        resolve({
          parameters: { 'training.optimizer.learningRate': { type: 'logUniform', min: 0.01, max: 1e5 } },
        }),
      'training.optimizer.learningRate',
      /the value 100000 /,
    );
    // A real-valued domain on an integer field fails on its inside values.
    assertNames(
      () => resolve({ parameters: { 'model.layers[0].units': { type: 'uniform', min: 4, max: 64 } } }),
      'model.layers[0].units',
    );
    assert.doesNotThrow(() =>
      resolve({ parameters: { 'model.layers[0].units': { type: 'intUniform', min: 4, max: 64 } } }),
    );
  });

  it('refuses paths that are not in the spec, and grids over ranges', () => {
    assertNames(
      () => resolve({ parameters: { 'model.layers[1].units': { type: 'choice', values: [8] } } }),
      'model.layers[1].units',
      /no model\.layers\[1\]/,
    );
    assertNames(
      () => resolve({ parameters: { 'training.earlyStopping.patience': { type: 'choice', values: [3] } } }),
      'training.earlyStopping.patience',
    );
    assertNames(
      () => resolve({ parameters: { 'training.bogus': { type: 'choice', values: [3] } } }),
      'training.bogus',
      /unknown field|Unrecognized/i,
    );
    assertNames(
      () =>
        resolve({
          strategy: 'grid',
          parameters: { 'training.optimizer.learningRate': { type: 'uniform', min: 0.001, max: 0.1 } },
        }),
      'training.optimizer.learningRate',
      /choice domains only/,
    );
  });

  it('checks the objective, the limits and the stopping rule against the spec', () => {
    assert.throws(
      () => resolve({ objective: { metric: 'r2' } }),
      /not a validation metric of classification/,
    );
    assert.throws(() => resolve({ maxTrials: 5 }), /12 combinations, more than maxTrials \(5\)/);
    assert.throws(() => resolve({ maxParallel: 25 }), /over this account's limit of 20/);
    assert.throws(
      () => resolve({ earlyStopping: { type: 'median', metric: 'valMae' } }),
      /valMae is not recorded for classification/,
    );
    const { sweep } = resolve({ objective: { metric: 'loss' }, earlyStopping: { type: 'median' } });
    assert.deepEqual(sweep.objective, { metric: 'loss', goal: 'minimize' });
    assert.deepEqual(sweep.earlyStopping, { type: 'median', minEpochs: 5, minTrials: 3, metric: 'valLoss' });
    assert.deepEqual(resolve().sweep.objective, { metric: 'accuracy', goal: 'maximize' });
    assert.equal(resolve().sweep.maxParallel, 4);
  });
});

describe('median stopping rule', () => {
  it('stops a trial whose best by epoch e is worse than the median of the completed trials at e', () => {
    const history = (values: number[]) => values.map((v, i) => ({ epoch: i + 1, loss: v, valLoss: v }));
    assert.deepEqual(runningBest(history([3, 2, 2.5, 1]), 'valLoss', 'minimize'), [3, 2, 2, 1]);
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
    const completed = [
      [1.0, 0.5, 0.3, 0.2],
      [1.1, 0.6, 0.4, 0.3],
      [0.9, 0.4, 0.2],
    ];
    const options = { minEpochs: 2, minTrials: 2 };
    assert.equal(medianStop([1.2], completed, 'minimize', options), undefined, 'before minEpochs');
    assert.equal(medianStop([1.2, 0.9], completed.slice(0, 1), 'minimize', options), undefined, 'too few');
    const bad = medianStop([1.2, 0.9], completed, 'minimize', options);
    assert.deepEqual(bad, { stop: true, epoch: 2, best: 0.9, median: 0.5, completed: 3 });
    assert.equal(medianStop([1.2, 0.45], completed, 'minimize', options)?.stop, false);
    // A completed trial shorter than e counts with its final best (0.2 at e = 4).
    assert.equal(medianStop([1, 0.5, 0.3, 0.25], completed, 'minimize', options)?.median, 0.2);
    assert.equal(
      medianStop(
        [0.5, 0.6],
        [
          [0.9, 0.95],
          [0.7, 0.8],
        ],
        'maximize',
        options,
      )?.stop,
      true,
    );
  });
});
