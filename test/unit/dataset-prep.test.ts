import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UnrecoverableError } from '../../core/platform/errors.ts';
import { prepareData, sortClasses } from '../../core/training/dataset-prep.ts';
import { specOf } from '../helpers/specs.ts';
import { tableOf } from '../helpers/tables.ts';

const dataError = (pattern: RegExp) => (e: unknown) =>
  e instanceof UnrecoverableError && pattern.test(e.message);
const many = (n: number, label: (i: number) => string | number) =>
  tableOf(
    ['a', 'b', 'label'],
    Array.from({ length: n }, (_, i) => [i, i * 2, label(i)]),
  );
const none = { validation: { type: 'none' } };

describe('sortClasses', () => {
  it('sorts numeric labels numerically and others as strings', () => {
    assert.deepEqual(sortClasses([10, 2, 1, 2]), [1, 2, 10]);
    assert.deepEqual(sortClasses(['b', 'a', 'c', 'a']), ['a', 'b', 'c']);
    assert.deepEqual(sortClasses([10, 'x', 2]), ['10', '2', 'x']);
  });
});

describe('prepareData', () => {
  it('maps classes to output units in sorted order', async () => {
    const data = prepareData(await many(10, (i) => (i % 2 ? 'yes' : 'no')), specOf({ training: none }));
    assert.deepEqual(data.classes, ['no', 'yes']);
    assert.deepEqual(
      data.features.map((f) => [f.name, f.kind]),
      [
        ['a', 'numeric'],
        ['b', 'numeric'],
      ],
    );
    assert.deepEqual(Array.from(data.y.slice(0, 3)), [0, 1, 0]);
    assert.equal(data.trainRows.length, 10);
    assert.equal(data.validationRows.length, 0);
  });

  it('splits hold-out stratified and reproducibly from the seed', async () => {
    const t = await many(100, (i) => (i < 80 ? 'a' : 'b'));
    const holdout = (seed: number) =>
      prepareData(t, specOf({ training: { validation: { type: 'holdout', fraction: 0.2 }, seed } }));
    const one = holdout(5);
    assert.deepEqual(one.validationRows, holdout(5).validationRows);
    assert.notDeepEqual(one.validationRows, holdout(6).validationRows);
    assert.equal(one.validationRows.length, 20);
    assert.equal(
      Array.from(one.validationRows).filter((r) => r >= 80).length,
      4,
      'class b keeps its 20% share',
    );
    assert.equal(new Set([...one.trainRows, ...one.validationRows]).size, 100);
  });

  it('k-fold splits partition the rows exactly once, each fold stratified', async () => {
    const t = await many(53, (i) => (i % 3 === 0 ? 'x' : 'y'));
    const data = prepareData(t, specOf({ training: { validation: { type: 'kfold', k: 5 } } }));
    const folds = data.folds ?? [];
    assert.equal(folds.length, 5);
    const seen = folds.flatMap((f) => Array.from(f.validation));
    assert.equal(seen.length, 53);
    assert.equal(new Set(seen).size, 53);
    for (const f of folds) {
      assert.equal(f.train.length + f.validation.length, 53);
      assert.ok(!Array.from(f.train).some((r) => f.validation.includes(r)));
      const xs = Array.from(f.validation).filter((r) => r % 3 === 0).length;
      assert.ok(xs >= 3 && xs <= 4, `fold has ${xs} of class x`);
    }
    assert.equal(data.trainRows.length, 53, 'the delivered model trains on every row');
  });

  it('sets a test split aside before validation', async () => {
    const data = prepareData(
      await many(50, (i) => i % 2),
      specOf({ training: { testFraction: 0.2, validation: { type: 'holdout', fraction: 0.25 } } }),
    );
    assert.equal(data.testRows.length, 10);
    assert.equal(data.validationRows.length, 10);
    assert.equal(data.trainRows.length, 30);
    assert.equal(new Set([...data.testRows, ...data.validationRows, ...data.trainRows]).size, 50);
  });

  it('uses the listed features only, in their order', async () => {
    const data = prepareData(
      await many(4, (i) => i),
      specOf({
        task: 'regression',
        dataset: { id: '01M8JH2TQYPMBNJ50HMGRP3N6M', label: 'label', features: ['b'] },
        training: none,
      }),
    );
    assert.deepEqual(
      data.features.map((f) => f.name),
      ['b'],
    );
    assert.deepEqual(Array.from(data.y), [0, 1, 2, 3]);
    assert.equal(data.classes, undefined);
  });

  it('names the row and column of every data problem', async () => {
    const spec = specOf({ training: none });
    await assert.rejects(
      async () =>
        prepareData(
          await tableOf(
            ['a', 'b', 'label'],
            [
              [1, 2, 'a'],
              [null, 3, 'b'],
            ],
          ),
          spec,
        ),
      dataError(/Row 2, column "a": the value is missing/),
    );
    await assert.rejects(
      async () =>
        prepareData(
          await tableOf(
            ['a', 'label'],
            [
              [1, 'a'],
              [2, null],
            ],
          ),
          spec,
        ),
      dataError(/Row 2, column "label": the label is missing/),
    );
    await assert.rejects(
      async () =>
        prepareData(
          await tableOf(
            ['a', 'label'],
            [
              [1, 'a'],
              [2, 'a'],
            ],
          ),
          spec,
        ),
      dataError(/only one class/),
    );
    await assert.rejects(
      async () => prepareData(await tableOf(['a', 'label'], [[1, 'a']]), spec),
      dataError(/at least 2/),
    );
    await assert.rejects(
      async () =>
        prepareData(
          await tableOf(
            ['a', 'y'],
            [
              [1, 'a'],
              [2, 'b'],
            ],
          ),
          spec,
        ),
      dataError(/no label column "label"/),
    );
    const regression = specOf({ task: 'regression', training: none });
    await assert.rejects(
      async () =>
        prepareData(
          await tableOf(
            ['a', 'label'],
            [
              [1, 3],
              [2, 'big'],
            ],
          ),
          regression,
        ),
      dataError(/Row 2, column "label": "big" is not a number; regression/),
    );
    await assert.rejects(
      async () =>
        prepareData(
          await tableOf(
            ['img', 'label'],
            [
              [[1, 2], 'a'],
              [[3, 4], 'b'],
            ],
          ),
          spec,
        ),
      dataError(/Column "img" holds arrays: declare it/),
    );
  });

  it('drops rows with missing values when told to, features and label alike', async () => {
    const t = await tableOf(
      ['a', 'label'],
      [
        [1, 'x'],
        [null, 'y'],
        [3, null],
        [4, 'y'],
        [5, 'x'],
      ],
    );
    const data = prepareData(t, specOf({ preprocessing: { missing: 'drop' }, training: none }));
    assert.deepEqual(Array.from(data.rows), [0, 3, 4]);
  });

  it('refuses a hold-out that leaves no validation rows', async () => {
    await assert.rejects(
      async () =>
        prepareData(
          await many(3, (i) => ['a', 'b', 'c'][i] as string),
          specOf({ training: { validation: { type: 'holdout', fraction: 0.1 } } }),
        ),
      dataError(/leaves no validation rows/),
    );
  });
});
