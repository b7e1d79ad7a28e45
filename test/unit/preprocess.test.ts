import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UnrecoverableError } from '../../core/platform/errors.ts';
import { prepareData } from '../../core/training/dataset-prep.ts';
import { encodeRecord, encodeRows, fitPreprocessing } from '../../core/training/preprocess.ts';
import { specOf } from '../helpers/specs.ts';
import { tableOf } from '../helpers/tables.ts';

const none = { validation: { type: 'none' } };
const close = (a: ArrayLike<number>, b: number[]) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++)
    assert.ok(Math.abs((a[i] as number) - (b[i] as number)) < 1e-6, `${Array.from(a)} vs ${b}`);
};

async function prepared(columns: string[], rows: unknown[][], preprocessing: object, extra: object = {}) {
  const table = await tableOf(columns, rows);
  const data = prepareData(table, specOf({ preprocessing, training: none, ...extra }));
  return { table, data };
}

describe('preprocessing', () => {
  it('standardizes with the statistics of the training rows only (no leakage)', async () => {
    const { table, data } = await prepared(
      ['x', 'label'],
      [
        [1, 'a'],
        [3, 'b'],
        [100, 'a'],
      ],
      { scale: 'standardize' },
    );
    const train = Int32Array.of(0, 1);
    const fitted = fitPreprocessing(table, data.features, train);
    assert.deepEqual(fitted.columns[0], {
      name: 'x',
      kind: 'numeric',
      scale: 'standardize',
      offset: 2,
      divisor: 1,
      missing: 'error',
      mean: 2,
    });
    close(encodeRows(table, data.features, fitted, Int32Array.of(0, 1, 2)), [-1, 1, 98]);
  });

  it('min-max scales to [0, 1] over the training rows', async () => {
    const { table, data } = await prepared(
      ['x', 'label'],
      [
        [2, 'a'],
        [4, 'b'],
        [6, 'a'],
        [10, 'b'],
      ],
      { scale: 'minMax' },
    );
    const fitted = fitPreprocessing(table, data.features, Int32Array.of(0, 1, 2));
    close(encodeRows(table, data.features, fitted, Int32Array.of(0, 1, 2, 3)), [0, 0.5, 1, 2]);
  });

  it('one-hot encodes text columns with the training vocabulary; an unseen category is all zeros', async () => {
    const { table, data } = await prepared(
      ['color', 'label'],
      [
        ['red', 'a'],
        ['blue', 'b'],
        ['red', 'a'],
        ['green', 'b'],
      ],
      {},
    );
    const fitted = fitPreprocessing(table, data.features, Int32Array.of(0, 1, 2));
    assert.deepEqual(fitted.inputShape, [2]);
    close(encodeRows(table, data.features, fitted, Int32Array.of(0, 1, 3)), [0, 1, 1, 0, 0, 0]);
  });

  it('index-encodes categories 1-based with 0 for unseen ones, per column', async () => {
    const { table, data } = await prepared(
      ['color', 'n', 'label'],
      [
        ['red', 1, 'a'],
        ['blue', 2, 'b'],
        ['green', 3, 'a'],
      ],
      {
        columns: { color: { categorical: 'index' }, n: { type: 'categorical' } },
      },
    );
    const fitted = fitPreprocessing(table, data.features, Int32Array.of(0, 1));
    assert.deepEqual(fitted.inputShape, [3]);
    close(encodeRows(table, data.features, fitted, Int32Array.of(0, 2)), [2, 1, 0, 0, 0, 0]);
  });

  it('fills missing values with the training mean or most frequent value', async () => {
    const { table, data } = await prepared(
      ['x', 'c', 'label'],
      [
        [1, 'u', 'a'],
        [3, 'v', 'b'],
        [null, 'v', 'a'],
        [7, null, 'b'],
      ],
      {
        columns: { x: { missing: 'mean' }, c: { missing: 'mostFrequent' } },
      },
    );
    const fitted = fitPreprocessing(table, data.features, Int32Array.of(0, 1, 2, 3));
    assert.deepEqual(fitted.columns[0], {
      name: 'x',
      kind: 'numeric',
      scale: 'none',
      offset: 0,
      divisor: 1,
      fill: 11 / 3,
      missing: 'mean',
      mean: 11 / 3,
    });
    close(encodeRows(table, data.features, fitted, Int32Array.of(2, 3)), [11 / 3, 0, 1, 7, 0, 1]);
  });

  it('fails on a missing value by default, naming row and column and the options', async () => {
    await assert.rejects(
      prepared(
        ['x', 'label'],
        [
          [1, 'a'],
          [null, 'b'],
        ],
        {},
      ),
      (e: unknown) =>
        e instanceof UnrecoverableError &&
        /Row 2, column "x": the value is missing \(set preprocessing.missing/.test(e.message),
    );
  });

  it('treats a word in a numeric column as a data error, not a category', async () => {
    await assert.rejects(
      prepared(
        ['x', 'label'],
        [
          [1, 'a'],
          ['2', 'b'],
          ['oops', 'a'],
          [4, 'b'],
        ],
        {},
      ),
      (e: unknown) =>
        e instanceof UnrecoverableError && /Row 3, column "x": "oops" is not a number/.test(e.message),
    );
  });

  it('encodes one raw record exactly like the training rows (saved preprocessing)', async () => {
    const { table, data } = await prepared(
      ['x', 'color', 'label'],
      [
        [1, 'red', 'a'],
        [5, 'blue', 'b'],
        [9, 'red', 'a'],
      ],
      { scale: 'standardize' },
    );
    const fitted = fitPreprocessing(table, data.features, Int32Array.of(0, 1, 2));
    const restored = JSON.parse(JSON.stringify(fitted));
    close(
      encodeRecord(restored, { x: 5, color: 'blue' }),
      Array.from(encodeRows(table, data.features, fitted, Int32Array.of(1))),
    );
  });

  it('passes a declared array feature through with its shape', async () => {
    const { table, data } = await prepared(
      ['img', 'label'],
      [
        [[1, 2, 3, 4], 'a'],
        [[5, 6, 7, 8], 'b'],
      ],
      {},
      {
        dataset: {
          id: '01M8JH2TQYPMBNJ50HMGRP3N6M',
          label: 'label',
          features: [{ name: 'img', shape: [2, 2, 1] }],
        },
      },
    );
    const fitted = fitPreprocessing(table, data.features, Int32Array.of(0, 1));
    assert.deepEqual(fitted.inputShape, [2, 2, 1]);
    close(encodeRows(table, data.features, fitted, Int32Array.of(1)), [5, 6, 7, 8]);
    await assert.rejects(
      async () => {
        const bad = await tableOf(
          ['img', 'label'],
          [
            [[1, 2, 3], 'a'],
            [[5, 6, 7, 8], 'b'],
          ],
        );
        const d = prepareData(
          bad,
          specOf({
            dataset: {
              id: '01M8JH2TQYPMBNJ50HMGRP3N6M',
              label: 'label',
              features: [{ name: 'img', shape: [2, 2, 1] }],
            },
            training: none,
          }),
        );
        fitPreprocessing(bad, d.features, Int32Array.of(0, 1));
      },
      (e: unknown) =>
        e instanceof UnrecoverableError &&
        /Row 1, column "img": the array has 3 numbers; shape \[2, 2, 1\] needs 4/.test(e.message),
    );
  });
});
