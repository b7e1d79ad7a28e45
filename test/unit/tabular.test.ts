import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  cellAt,
  csvCell,
  parseTable,
  parseTableStream,
  peekColumns,
  type Table,
} from '../../core/datasets/tabular.ts';
import { UnrecoverableError } from '../../core/platform/errors.ts';

const bytes = (s: string) => new TextEncoder().encode(s);
const dataError = (pattern: RegExp) => (error: unknown) =>
  error instanceof UnrecoverableError && error.code === 'INVALID_DATA' && pattern.test(error.message);
const rowsOf = (t: Table) =>
  Array.from({ length: t.rowCount }, (_, r) => t.columns.map((_, c) => cellAt(t, c, r)));

describe('parseTable', () => {
  it('parses CSV with quotes, doubled quotes, CRLF, a BOM and blank lines into typed columns', async () => {
    const table = await parseTable(bytes('\uFEFFa,b,"c d"\r\n1,"x, ""y""",3\r\n\r\n2.5,,-1e3\n'), 'csv');
    assert.deepEqual(table.columns, ['a', 'b', 'c d']);
    assert.deepEqual(rowsOf(table), [
      [1, 'x, "y"', 3],
      [2.5, null, -1000],
    ]);
    assert.equal(table.data[0]?.kind, 'numeric');
    assert.equal(table.data[1]?.kind, 'text');
  });
  it('gives the same table whatever the chunk boundaries (streaming)', async () => {
    const text = 'a,b\n1,"multi\nline"\n2,"q""uote"\n3,plain\n';
    const whole = await parseTable(bytes(text), 'csv');
    const chunks = Array.from(bytes(text)).map((b) => Uint8Array.of(b));
    const streamed = await parseTableStream(chunks, 'csv');
    assert.deepEqual(rowsOf(streamed), rowsOf(whole));
    const jsonl = '{"a":1,"b":"é"}\n{"a":2,"b":"ü"}\n';
    const split = await parseTableStream([bytes(jsonl).slice(0, 9), bytes(jsonl).slice(9)], 'jsonl');
    assert.deepEqual(rowsOf(split), [
      [1, 'é'],
      [2, 'ü'],
    ]);
  });
  it('switches a column to text when a text value arrives after numbers', async () => {
    const table = await parseTable(bytes('a\n1\n2\nthree\n'), 'csv');
    assert.equal(table.data[0]?.kind, 'text');
    assert.deepEqual(rowsOf(table), [['1'], ['2'], ['three']]);
  });
  it('parses JSON Lines with the union of keys, booleans and nested numeric arrays', async () => {
    const table = await parseTable(
      bytes('{"a":1,"b":"x","img":[[1,2],[3,4]]}\n\n{"a":2,"c":true,"img":[[5,6],[7,8]]}\n'),
      'jsonl',
    );
    assert.deepEqual(table.columns, ['a', 'b', 'img', 'c']);
    assert.deepEqual(rowsOf(table), [
      [1, 'x', [1, 2, 3, 4], null],
      [2, null, [5, 6, 7, 8], 1],
    ]);
  });
  it('names the line of a ragged CSV row', async () => {
    await assert.rejects(
      parseTable(bytes('a,b\n1,2\n3\n'), 'csv'),
      dataError(/line 3 \(row 2\): has 1 fields, the header has 2/),
    );
  });
  it('rejects an empty file, a header without rows, a duplicate or empty column name and an unclosed quote', async () => {
    await assert.rejects(parseTable(bytes(''), 'csv'), dataError(/empty/));
    await assert.rejects(parseTable(bytes('a,b\n'), 'csv'), dataError(/no data rows/));
    await assert.rejects(parseTable(bytes('\n\n'), 'jsonl'), dataError(/empty/));
    await assert.rejects(parseTable(bytes('a,a\n1,2\n'), 'csv'), dataError(/"a" appears twice/));
    await assert.rejects(parseTable(bytes('a,\n1,2\n'), 'csv'), dataError(/column 2 has no name/));
    await assert.rejects(parseTable(bytes('a\n"1\n'), 'csv'), dataError(/not closed/));
  });
  it('names the line of invalid JSON, a non-object line, an object cell and a non-numeric array', async () => {
    await assert.rejects(parseTable(bytes('{"a":1}\n{oops\n'), 'jsonl'), dataError(/line 2: not valid JSON/));
    await assert.rejects(parseTable(bytes('[1,2]\n'), 'jsonl'), dataError(/line 1: expected an object/));
    await assert.rejects(parseTable(bytes('{"a":{"b":1}}\n'), 'jsonl'), dataError(/Row 1, column "a"/));
    await assert.rejects(
      parseTable(bytes('{"a":[1,"x"]}\n'), 'jsonl'),
      dataError(/Row 1, column "a": arrays may hold only finite numbers/),
    );
    await assert.rejects(
      parseTable(bytes('{"a":1}\n{"a":[1]}\n'), 'jsonl'),
      dataError(/Row 2, column "a": an array in a column/),
    );
  });
  const limitError = (code: string, pattern: RegExp) => (error: unknown) =>
    error instanceof UnrecoverableError && error.code === code && pattern.test(error.message);

  it('refuses more rows than allowed, naming the setting', async () => {
    await assert.rejects(
      parseTable(bytes('a\n1\n2\n3\n'), 'csv', 2),
      limitError('DATASET_TOO_LARGE', /more than 2 rows.*DESCENT_MAX_ROWS/),
    );
  });

  it('stops at a line longer than the limit before reading the rest of it (CSV and JSON Lines)', async () => {
    for (const format of ['csv', 'jsonl'] as const) {
      let read = 0;
      async function* oneLongLine() {
        yield bytes(format === 'csv' ? 'a,label\n"' : '{"a":"');
        for (let i = 0; i < 1000; i++) {
          read++;
          yield bytes('x'.repeat(1024));
        }
        yield bytes(format === 'csv' ? '",1\n' : '","label":1}\n');
      }
      await assert.rejects(
        parseTableStream(oneLongLine(), format, { maxLineChars: 10_000 }),
        limitError('DATASET_TOO_LARGE', /line [12]: longer than 10000 characters.*DESCENT_MAX_LINE_BYTES/),
      );
      assert.ok(read <= 11, `${format}: read ${read} KiB of a line limited to 10,000 characters`);
    }
  });

  it('refuses more columns than the limit in a CSV header or in JSON Lines keys, and a row with too many fields early', async () => {
    const header = `${Array.from({ length: 30 }, (_, i) => `c${i}`).join(',')}\n`;
    await assert.rejects(
      parseTable(bytes(`${header}${'1,'.repeat(29)}1\n`), 'csv', { maxColumns: 20 }),
      limitError('DATASET_TOO_LARGE', /line 1: more than 20 fields.*DESCENT_MAX_COLUMNS/),
    );
    const wide = JSON.stringify(Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, i])));
    await assert.rejects(
      parseTable(bytes(`${wide}\n`), 'jsonl', { maxColumns: 20 }),
      limitError('DATASET_TOO_LARGE', /more than 20 columns.*DESCENT_MAX_COLUMNS/),
    );
    await assert.rejects(
      parseTable(bytes(`a,b\n1,2\n${',3'.repeat(100_000)}\n`), 'csv'),
      limitError('DATASET_TOO_LARGE', /line 3: more than 2 fields \(the header has fewer\)/),
    );
  });

  it('refuses a table that would need more memory than the budget', async () => {
    const rows = Array.from({ length: 2000 }, (_, i) => `${i},${'t'.repeat(50)}${i}`).join('\n');
    await assert.rejects(
      parseTable(bytes(`n,text\n${rows}\n`), 'csv', { maxTableBytes: 100_000 }),
      limitError('RESOURCE_LIMIT', /needs more than 0 MiB of memory by row \d+.*DESCENT_JOB_MEMORY_BYTES/),
    );
    const table = await parseTable(bytes(`n,text\n${rows}\n`), 'csv', { maxTableBytes: 1_000_000 });
    assert.equal(table.rowCount, 2000);
  });

  it('refuses numbers beyond float32 (1e39, 1e400) naming the row, the column and the number as written', async () => {
    await assert.rejects(
      parseTable(bytes('a,b\n1,2\n3,1e39\n'), 'csv'),
      dataError(/Row 2, column "b": 1e39 is not a finite 32-bit float/),
    );
    await assert.rejects(
      parseTable(bytes('a,b\n-1e400,2\n'), 'csv'),
      dataError(/Row 1, column "a": -1e400 is not a finite 32-bit float/),
    );
    await assert.rejects(
      parseTable(bytes('{"a":1}\n{"a":1e39}\n'), 'jsonl'),
      dataError(/Row 2, column "a": 1e\+39 is not a finite 32-bit float/),
    );
    await assert.rejects(
      parseTable(bytes('{"a":[1,2e300]}\n'), 'jsonl'),
      dataError(/Row 1, column "a": 2e\+300 is not a finite 32-bit float/),
    );
    const edge = await parseTable(bytes('a\n3.4e38\n-3.4e38\n'), 'csv');
    assert.deepEqual(rowsOf(edge), [[3.4e38], [-3.4e38]]);
  });
});

describe('csvCell', () => {
  it('reads decimal numbers as numbers and keeps other text', () => {
    assert.equal(csvCell(' 3.5 '), 3.5);
    assert.equal(csvCell('.5'), 0.5);
    assert.equal(csvCell('-2'), -2);
    assert.equal(csvCell('1e-3'), 0.001);
    assert.equal(csvCell(''), null);
    assert.equal(csvCell('Infinity'), 'Infinity');
    assert.equal(csvCell('0x10'), '0x10');
    assert.equal(csvCell('setosa'), 'setosa');
  });
});

describe('peekColumns', () => {
  it('reads the CSV header from the first bytes', () => {
    assert.deepEqual(peekColumns(bytes('a, b ,"c"\n1,2,3\n'), 'csv'), ['a', 'b', 'c']);
    assert.equal(peekColumns(bytes('a,b'), 'csv'), undefined);
  });
});
