import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTable } from '../../core/datasets/tabular.ts';
import { delimiterHint, identifierReason, prepareData } from '../../core/training/dataset-prep.ts';
import { specOf } from '../helpers/specs.ts';

const csv = (text: string) => parseTable(new TextEncoder().encode(text), 'csv');
const none = { validation: { type: 'none' } };

/** `n` rows: id, name (unique text), age (a number), city (few values), label. */
function people(n: number, extra = (_i: number) => ''): string {
  const lines = ['customer_id,name,age,city,joined,label'];
  for (let i = 0; i < n; i++)
    lines.push(
      `${1000 + i},Person ${i},${20 + (i % 30)},${['x', 'y', 'z'][i % 3]},2021-0${1 + (i % 9)}-1${i % 10}${extra(i)},${i % 2 ? 'a' : 'b'}`,
    );
  return `${lines.join('\n')}\n`;
}

describe('real-world tables', () => {
  it('leaves identifier columns out of the default features, with a warning naming each', async () => {
    const data = prepareData(await csv(people(30)), specOf({ training: none }));
    assert.deepEqual(
      data.features.map((f) => f.name),
      ['age', 'city', 'joined'],
    );
    assert.deepEqual(
      data.excluded.map((e) => e.name),
      ['customer_id', 'name'],
    );
    assert.ok(data.warnings.some((w) => w.includes('"customer_id"') && w.includes('identifier')));
    assert.ok(data.warnings.some((w) => w.includes('"name"')));
    assert.equal(data.features.find((f) => f.name === 'joined')?.kind, 'date');
  });

  it('keeps a detected identifier when its type is declared, and a listed one with a warning', async () => {
    const table = await csv(people(30));
    const forced = prepareData(
      table,
      specOf({ training: none, preprocessing: { columns: { name: { type: 'categorical' } } } }),
    );
    assert.ok(forced.features.some((f) => f.name === 'name'));
    const listed = prepareData(
      table,
      specOf({
        training: none,
        dataset: { id: '01M8JH2TQYPMBNJ50HMGRP3N6M', label: 'label', features: ['customer_id', 'age'] },
      }),
    );
    assert.deepEqual(
      listed.features.map((f) => f.name),
      ['customer_id', 'age'],
    );
    assert.ok(
      listed.warnings.some((w) =>
        /"customer_id" looks like an identifier.*dataset.features names it/.test(w),
      ),
    );
  });

  it('does not take ordinary columns for identifiers', async () => {
    const table = await csv(people(30));
    assert.equal(identifierReason(table, 'age'), undefined);
    assert.equal(identifierReason(table, 'city'), undefined);
    assert.equal(identifierReason(table, 'joined'), undefined, 'a unique date is a date, not an id');
    const paid = await csv(`paid,label\n${Array.from({ length: 12 }, (_, i) => `${i},a`).join('\n')}\n`);
    assert.equal(identifierReason(paid, 'paid'), undefined, '"paid" is not named like an id');
    const numbered = await csv(
      `n,label\n${Array.from({ length: 60 }, (_, i) => `${59 - i},a`).join('\n')}\n`,
    );
    assert.match(identifierReason(numbered, 'n') ?? '', /row number/);
    const years = await csv(
      `year,label\n${Array.from({ length: 30 }, (_, i) => `${1990 + i},a`).join('\n')}\n`,
    );
    assert.equal(identifierReason(years, 'year'), undefined, 'thirty consecutive years are data');
    const stray = await csv(
      `x,label\n${Array.from({ length: 20 }, (_, i) => `${i === 5 ? 'oops' : i * 1.5},a`).join('\n')}\n`,
    );
    assert.equal(
      identifierReason(stray, 'x'),
      undefined,
      'numbers with one stray word: a data error, not an id',
    );
  });

  it('excludes the columns dataset.exclude names, and refuses one the file does not have', async () => {
    const table = await csv(people(30));
    const data = prepareData(
      table,
      specOf({
        training: none,
        dataset: { id: '01M8JH2TQYPMBNJ50HMGRP3N6M', label: 'label', exclude: ['city'] },
      }),
    );
    assert.ok(!data.features.some((f) => f.name === 'city'));
    assert.throws(
      () =>
        prepareData(
          table,
          specOf({
            training: none,
            dataset: { id: '01M8JH2TQYPMBNJ50HMGRP3N6M', label: 'label', exclude: ['town'] },
          }),
        ),
      /dataset.exclude names "town"/,
    );
  });

  it('says a date declared numeric is declared numeric, and suggests the date type', async () => {
    const table = await csv(people(12));
    assert.throws(
      () =>
        prepareData(
          table,
          specOf({ training: none, preprocessing: { columns: { joined: { type: 'numeric' } } } }),
        ),
      (e: Error) =>
        /"2021-01-10" is not a number \(the column is declared numeric.*use type "date"/.test(e.message) &&
        !/other values are numbers/.test(e.message),
    );
  });

  it('hints at drop for a missing label and counts the rows it drops', async () => {
    const text = 'x,label\n1,a\n2,\n3,b\n,a\n5,b\n';
    assert.throws(
      () => prepareData(parseTableSync(text), specOf({ training: none })),
      /the label is missing \(set preprocessing.columns\["label"\].missing to "drop"/,
    );
    const data = prepareData(await csv(text), specOf({ training: none, preprocessing: { missing: 'drop' } }));
    assert.deepEqual(data.dropped, { missingLabel: 1, missingValues: 1 });
    assert.ok(data.warnings.some((w) => w.startsWith('2 of 5 rows were left out')));
  });

  it('hints at the delimiter of a semicolon-separated file', async () => {
    const table = await csv('a;b;label\n1;2;x\n');
    assert.throws(
      () => prepareData(table, specOf({ training: none })),
      /separated by semicolons, not commas/,
    );
    assert.equal(delimiterHint(['a', 'b']), '');
  });
});

/** The throwing case needs the table first; parsing is async, so it is awaited before. */
let pending: Awaited<ReturnType<typeof csv>> | undefined;
function parseTableSync(_text: string) {
  return pending as Awaited<ReturnType<typeof csv>>;
}
pending = await csv('x,label\n1,a\n2,\n3,b\n,a\n5,b\n');
