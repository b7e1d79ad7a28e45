import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { prepareData, sortClasses } from '../../core/dataset-prep.ts';
import { UnrecoverableError } from '../../core/errors.ts';
import type { Table } from '../../core/tabular.ts';
import { specOf } from '../helpers/specs.ts';

const table = (rows: Table['rows'], columns = ['a', 'b', 'label']): Table => ({ columns, rows });
const many = (n: number, label: (i: number) => string | number) =>
  table(Array.from({ length: n }, (_, i) => [i, i * 2, label(i)]));
const dataError = (pattern: RegExp) => (e: unknown) =>
  e instanceof UnrecoverableError && pattern.test(e.message);

describe('sortClasses', () => {
  it('sorts numeric labels numerically and others as strings', () => {
    assert.deepEqual(sortClasses([10, 2, 1, 2]), [1, 2, 10]);
    assert.deepEqual(sortClasses(['b', 'a', 'c', 'a']), ['a', 'b', 'c']);
    assert.deepEqual(sortClasses([10, 'x', 2]), ['10', '2', 'x']);
  });
});

describe('prepareData', () => {
  it('maps classes to output units in sorted order and keeps features row-major', () => {
    const data = prepareData(
      many(10, (i) => (i % 2 ? 'yes' : 'no')),
      specOf({ training: { validation: { type: 'none' } } }),
    );
    assert.deepEqual(data.classes, ['no', 'yes']);
    assert.deepEqual(data.features, ['a', 'b']);
    assert.deepEqual(Array.from(data.x.slice(0, 4)), [0, 0, 1, 2]);
    assert.deepEqual(Array.from(data.y.slice(0, 3)), [0, 1, 0]);
    assert.equal(data.trainRows.length, 10);
    assert.equal(data.validationRows.length, 0);
  });
  it('splits stratified and reproducibly from the seed', () => {
    const t = many(100, (i) => (i < 80 ? 'a' : 'b'));
    const one = prepareData(
      t,
      specOf({ training: { validation: { type: 'holdout', fraction: 0.2 }, seed: 5 } }),
    );
    const two = prepareData(
      t,
      specOf({ training: { validation: { type: 'holdout', fraction: 0.2 }, seed: 5 } }),
    );
    const other = prepareData(
      t,
      specOf({ training: { validation: { type: 'holdout', fraction: 0.2 }, seed: 6 } }),
    );
    assert.deepEqual(one.validationRows, two.validationRows);
    assert.notDeepEqual(one.validationRows, other.validationRows);
    assert.equal(one.validationRows.length, 20);
    assert.equal(
      Array.from(one.validationRows).filter((r) => r >= 80).length,
      4,
      'class b keeps its 20% share',
    );
    const all = new Set([...one.trainRows, ...one.validationRows]);
    assert.equal(all.size, 100);
  });
  it('uses the listed features only, in their order', () => {
    const data = prepareData(
      many(4, (i) => i),
      specOf({
        task: 'regression',
        dataset: { id: '01M8JH2TQYPMBNJ50HMGRP3N6M', label: 'label', features: ['b'] },
        training: { validation: { type: 'none' } },
      }),
    );
    assert.deepEqual(data.features, ['b']);
    assert.deepEqual(Array.from(data.x), [0, 2, 4, 6]);
    assert.deepEqual(Array.from(data.y), [0, 1, 2, 3]);
    assert.equal(data.classes, undefined);
  });
  it('names the row and column of every data problem', () => {
    const spec = specOf({ training: { validation: { type: 'none' } } });
    assert.throws(
      () =>
        prepareData(
          table([
            [1, 'x', 'a'],
            [2, 3, 'b'],
          ]),
          spec,
        ),
      dataError(/Row 1, column "b": "x" is not a number/),
    );
    assert.throws(
      () =>
        prepareData(
          table([
            [1, 2, 'a'],
            [null, 3, 'b'],
          ]),
          spec,
        ),
      dataError(/Row 2, column "a": the value is missing/),
    );
    assert.throws(
      () =>
        prepareData(
          table([
            [1, 2, 'a'],
            [2, 3, null],
          ]),
          spec,
        ),
      dataError(/Row 2, column "label": the label is missing/),
    );
    assert.throws(
      () =>
        prepareData(
          table([
            [1, 2, 'a'],
            [2, 3, 'a'],
          ]),
          spec,
        ),
      dataError(/only one class/),
    );
    assert.throws(() => prepareData(table([[1, 2, 'a']]), spec), dataError(/at least 2/));
    assert.throws(
      () =>
        prepareData(
          table(
            [
              [1, 2, 'a'],
              [2, 3, 'b'],
            ],
            ['a', 'b', 'y'],
          ),
          spec,
        ),
      dataError(/no label column "label"/),
    );
    const regression = specOf({ task: 'regression', training: { validation: { type: 'none' } } });
    assert.throws(
      () =>
        prepareData(
          table([
            [1, 2, 3],
            [2, 3, 'big'],
          ]),
          regression,
        ),
      dataError(/Row 2, column "label": "big" is not a number; regression/),
    );
  });
  it('refuses a hold-out that leaves no validation rows', () => {
    assert.throws(
      () =>
        prepareData(
          many(3, (i) => (i === 0 ? 'a' : 'b')),
          specOf({ training: { validation: { type: 'holdout', fraction: 0.1 } } }),
        ),
      dataError(/leaves no validation rows/),
    );
  });
});
