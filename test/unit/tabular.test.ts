import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UnrecoverableError } from '../../core/errors.ts';
import { csvCell, parseTable, peekColumns } from '../../core/tabular.ts';

const bytes = (s: string) => new TextEncoder().encode(s);
const dataError = (pattern: RegExp) => (error: unknown) =>
  error instanceof UnrecoverableError && error.code === 'INVALID_DATA' && pattern.test(error.message);

describe('parseTable', () => {
  it('parses CSV with quotes, doubled quotes, CRLF, a BOM and blank lines', () => {
    const table = parseTable(bytes('\uFEFFa,b,"c d"\r\n1,"x, ""y""",3\r\n\r\n2.5,,-1e3\n'), 'csv');
    assert.deepEqual(table.columns, ['a', 'b', 'c d']);
    assert.deepEqual(table.rows, [
      [1, 'x, "y"', 3],
      [2.5, null, -1000],
    ]);
  });
  it('parses JSON Lines, taking the union of keys as columns', () => {
    const table = parseTable(bytes('{"a":1,"b":"x"}\n\n{"a":2,"c":true}\n'), 'jsonl');
    assert.deepEqual(table.columns, ['a', 'b', 'c']);
    assert.deepEqual(table.rows, [
      [1, 'x', null],
      [2, null, true],
    ]);
  });
  it('names the line of a ragged CSV row', () => {
    assert.throws(
      () => parseTable(bytes('a,b\n1,2\n3\n'), 'csv'),
      dataError(/line 3 \(row 2\): has 1 fields, the header has 2/),
    );
  });
  it('rejects an empty file, a duplicate or empty column name and an unclosed quote', () => {
    assert.throws(() => parseTable(bytes(''), 'csv'), dataError(/empty/));
    assert.throws(() => parseTable(bytes('\n\n'), 'jsonl'), dataError(/empty/));
    assert.throws(() => parseTable(bytes('a,a\n1,2\n'), 'csv'), dataError(/"a" appears twice/));
    assert.throws(() => parseTable(bytes('a,\n1,2\n'), 'csv'), dataError(/column 2 has no name/));
    assert.throws(() => parseTable(bytes('a\n"1\n'), 'csv'), dataError(/not closed/));
  });
  it('names the line of invalid JSON and of a non-object line', () => {
    assert.throws(() => parseTable(bytes('{"a":1}\n{oops\n'), 'jsonl'), dataError(/line 2: not valid JSON/));
    assert.throws(() => parseTable(bytes('[1,2]\n'), 'jsonl'), dataError(/line 1: expected an object/));
    assert.throws(() => parseTable(bytes('{"a":{"b":1}}\n'), 'jsonl'), dataError(/Row 1, column "a"/));
  });
  it('refuses more rows than allowed', () => {
    assert.throws(() => parseTable(bytes('a\n1\n2\n3\n'), 'csv', 2), dataError(/more than 2 rows/));
  });
});

describe('csvCell', () => {
  it('reads numbers as numbers and keeps other text', () => {
    assert.equal(csvCell(' 3.5 '), 3.5);
    assert.equal(csvCell('.5'), 0.5);
    assert.equal(csvCell('-2'), -2);
    assert.equal(csvCell(''), null);
    assert.equal(csvCell('Infinity'), 'Infinity');
    assert.equal(csvCell('0x10'), '0x10');
    assert.equal(csvCell('1e-3'), 0.001);
    assert.equal(csvCell('setosa'), 'setosa');
  });
});

describe('peekColumns', () => {
  it('reads the CSV header from the first bytes', () => {
    assert.deepEqual(peekColumns(bytes('a, b ,"c"\n1,2,3\n'), 'csv'), ['a', 'b', 'c']);
    assert.equal(peekColumns(bytes('a,b'), 'csv'), undefined);
  });
});
