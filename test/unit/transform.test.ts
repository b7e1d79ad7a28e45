import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { csvLine, parseIsoDate } from '../../core/datasets/cells.ts';
import { parseTable } from '../../core/datasets/tabular.ts';
import { prepareData } from '../../core/training/dataset-prep.ts';
import { encodeRows, fitPreprocessing } from '../../core/training/preprocess.ts';
import {
  baselineRecord,
  columnSlices,
  decodeOutputs,
  encodeRecord,
  encodeRecords,
  type FittedPreprocessing,
  predictionFields,
  RowError,
} from '../../core/training/transform.ts';
import { specOf } from '../helpers/specs.ts';

const csv = (text: string) => parseTable(new TextEncoder().encode(text), 'csv');
const none = { validation: { type: 'none' } };

async function fitted(text: string, preprocessing: object = {}) {
  const table = await csv(text);
  const data = prepareData(table, specOf({ preprocessing, training: none }));
  const rows = Int32Array.from(data.rows);
  const fit = fitPreprocessing(table, data.features, rows, { source: 'csv', excluded: data.excluded });
  return { table, data, fit, rows };
}

describe('the shared raw-row transform', () => {
  it('encodes a raw CSV row exactly as training encoded the same row of the file', async () => {
    const text =
      'size,colour,code,when,label\n1.5, red ,007,2024-03-01,a\n,blue,12,2024-03-09T10:00:00Z,b\n3,,7,,a\n';
    const { table, data, fit, rows } = await fitted(text, { missing: 'mean', scale: 'standardize' });
    const trained = encodeRows(table, data.features, fit, rows);
    const raw = [
      { size: '1.5', colour: ' red ', code: '007', when: '2024-03-01', label: 'a' },
      { size: '', colour: 'blue', code: '12', when: '2024-03-09T10:00:00Z' },
      { size: 3, colour: '', code: 7, when: '', extra: 'ignored' },
    ];
    assert.deepEqual(Array.from(encodeRecords(fit, raw)), Array.from(trained));
  });

  it('reads a code column as text the way the CSV parser did ("007" is category 7)', async () => {
    const { fit } = await fitted('code,label\n007,a\nx,b\ny,a\n');
    const column = fit.columns[0];
    assert.ok(column?.kind === 'categorical');
    assert.deepEqual(column.categories, ['7', 'x', 'y']);
    assert.deepEqual(Array.from(encodeRecord(fit, { code: '007' })), [1, 0, 0]);
    assert.deepEqual(Array.from(encodeRecord(fit, { code: 7 })), [1, 0, 0]);
    assert.deepEqual(Array.from(encodeRecord(fit, { code: 'unseen' })), [0, 0, 0]);
  });

  it('names the row and column of a cell it cannot use', async () => {
    const { fit } = await fitted('size,when,label\n1,2024-01-01,a\n2,2024-02-01,b\n');
    assert.throws(
      () =>
        encodeRecords(fit, [
          { size: 1, when: '2024-01-01' },
          { size: 'big', when: '2024-01-01' },
        ]),
      (e: RowError) =>
        e instanceof RowError &&
        e.row === 2 &&
        e.column === 'size' &&
        /"big" is not a number/.test(e.message),
    );
    assert.throws(
      () => encodeRecords(fit, [{ size: 1, when: '01/02/2024' }]),
      /column "when".*not an ISO-8601 date/,
    );
    // Trained with missing "error": a blank cannot be filled in.
    assert.throws(() => encodeRecords(fit, [{ size: '', when: '2024-01-01' }]), /missing.*"error"/);
    assert.throws(
      () => encodeRecords(fit, ['not an object']),
      (e: RowError) => e.column === '*',
    );
  });

  it('fills a blank of a column trained with "drop" with the training mean or most frequent category', async () => {
    const { fit } = await fitted('x,c,label\n1,u,a\n3,v,b\n,v,a\n5,,b\n2,v,a\n', { missing: 'drop' });
    assert.deepEqual(Array.from(encodeRecord(fit, { x: '', c: '' })), [2, 0, 1]);
  });

  it('turns a date into days since 1970, year, month and weekday, scaled on the training rows', async () => {
    const { fit } = await fitted('when,label\n2024-03-01,a\n2024-03-03,b\n2024-03-05,a\n', { scale: 'none' });
    const date = fit.columns[0];
    assert.ok(date?.kind === 'date');
    assert.equal(date.scale, 'standardize', 'dates are standardized unless the spec says how');
    const values = Array.from(encodeRecord(fit, { when: '2024-03-03' }));
    assert.ok(Math.abs(values[0] as number) < 1e-6, 'the middle day is the mean');
    assert.equal(parseIsoDate('2023-02-30'), undefined);
    assert.equal(parseIsoDate('2024-03-01T01:00:00+01:00'), Date.UTC(2024, 2, 1));
  });

  it('decodes outputs into labels with probabilities (a sigmoid unit is the second class) or values', () => {
    assert.deepEqual(
      decodeOutputs({ task: 'classification', classes: ['no', 'yes'] }, Float32Array.of(0.25), 1),
      [{ label: 'no', probabilities: { no: 0.75, yes: 0.25 } }],
    );
    const [p] = decodeOutputs(
      { task: 'classification', classes: [1, 2, 3] },
      Float32Array.of(0.1, 0.7, 0.2),
      1,
    );
    assert.equal((p as { label: number }).label, 2);
    assert.deepEqual(decodeOutputs({ task: 'regression' }, Float32Array.of(4, 5), 2), [
      { value: 4 },
      { value: 5 },
    ]);
    assert.deepEqual(predictionFields('y', { value: 4, attributions: { a: 1 } }), {
      predicted_y: 4,
      attribution_a: 1,
    });
  });

  it('groups one-hot inputs back into their column, and builds the baseline from training statistics', () => {
    const fit: FittedPreprocessing = {
      version: 1,
      inputShape: [4],
      columns: [
        { name: 'x', kind: 'numeric', scale: 'none', offset: 0, divisor: 1, mean: 2.5, missing: 'error' },
        {
          name: 'c',
          kind: 'categorical',
          encoding: 'oneHot',
          categories: ['a', 'b', 'c'],
          mostFrequent: 'b',
        },
      ],
    };
    assert.deepEqual(columnSlices(fit), [
      { name: 'x', start: 0, width: 1 },
      { name: 'c', start: 1, width: 3 },
    ]);
    assert.deepEqual(baselineRecord(fit), { x: 2.5, c: 'b' });
    assert.equal(csvLine(['a,b', 'say "hi"', null, 3]), '"a,b","say ""hi""",,3');
  });
});
