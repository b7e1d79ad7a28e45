/**
 * Parsing uploaded datasets (CSV with a header row, or JSON Lines) into a columnar table, chunk by
 * chunk, so a large file is never held as text and rows at once: numeric columns are Float64Arrays
 * (8 bytes a cell). Every problem is an `UnrecoverableError` naming the row and column.
 */

import type { DatasetFormat } from '../jobs/job-spec.ts';
import { UnrecoverableError } from '../platform/errors.ts';
import { csvCell } from './cells.ts';

export { csvCell };
/** A numeric column keeps NaN for a missing value; a text column null; an array column null. */
export type Column =
  | { kind: 'numeric'; values: Float64Array }
  | { kind: 'text'; values: (string | null)[] }
  | { kind: 'array'; values: (Float32Array | null)[] };

export interface Table {
  columns: string[];
  rowCount: number;
  data: Column[];
}

export type Cell = string | number | boolean | null | number[];

const dataError = (message: string) => new UnrecoverableError('INVALID_DATA', message);

function flatten(value: unknown[], out: number[], row: number, column: string): void {
  for (const v of value) {
    if (Array.isArray(v)) flatten(v, out, row, column);
    else if (typeof v === 'number' && Number.isFinite(v)) out.push(v);
    else
      throw dataError(
        `Row ${row}, column "${column}": arrays may hold only finite numbers (found ${JSON.stringify(v)}).`,
      );
  }
}

/** Accumulates one column, switching from numeric to text when the first text value arrives. */
class ColumnBuilder {
  readonly name: string;
  kind: Column['kind'] = 'numeric';
  numbers = new Float64Array(1024);
  texts: (string | null)[] = [];
  arrays: (Float32Array | null)[] = [];
  length = 0;

  constructor(name: string) {
    this.name = name;
  }

  push(cell: Cell | undefined, row: number): void {
    const value = cell === undefined ? null : cell;
    if (Array.isArray(value)) {
      if (this.kind !== 'array') {
        if (this.length > 0 && !this.#allMissing()) {
          throw dataError(`Row ${row}, column "${this.name}": an array in a column of ${this.kind} values.`);
        }
        this.kind = 'array';
        this.arrays = new Array(this.length).fill(null);
      }
      const flat: number[] = [];
      flatten(value, flat, row, this.name);
      this.arrays.push(Float32Array.from(flat));
    } else if (this.kind === 'array') {
      if (value !== null)
        throw dataError(`Row ${row}, column "${this.name}": expected an array like the rows before.`);
      this.arrays.push(null);
    } else if (typeof value === 'string' && this.kind === 'numeric') {
      this.kind = 'text';
      this.texts = Array.from(this.numbers.subarray(0, this.length), (n) =>
        Number.isNaN(n) ? null : String(n),
      );
      this.texts.push(value);
    } else if (this.kind === 'text') {
      this.texts.push(value === null ? null : String(value));
    } else {
      if (this.length === this.numbers.length) {
        const grown = new Float64Array(this.numbers.length * 2);
        grown.set(this.numbers);
        this.numbers = grown;
      }
      this.numbers[this.length] =
        value === null ? Number.NaN : typeof value === 'boolean' ? Number(value) : (value as number);
    }
    this.length++;
  }

  #allMissing(): boolean {
    if (this.kind === 'numeric') return this.numbers.subarray(0, this.length).every(Number.isNaN);
    return this.texts.every((t) => t === null);
  }

  build(): Column {
    if (this.kind === 'numeric') return { kind: 'numeric', values: this.numbers.slice(0, this.length) };
    if (this.kind === 'text') return { kind: 'text', values: this.texts };
    return { kind: 'array', values: this.arrays };
  }
}

/** Incremental RFC 4180 CSV: quotes, doubled quotes, CRLF, fields spanning chunks and lines. */
class CsvParser {
  #fields: string[] = [];
  #field = '';
  #quoted = false;
  #afterQuote = false;
  #line = 1;
  #recordLine = 1;
  readonly #onRecord: (fields: string[], line: number) => void;
  #pendingCR = false;

  constructor(onRecord: (fields: string[], line: number) => void) {
    this.#onRecord = onRecord;
  }

  push(text: string): void {
    for (let i = 0; i < text.length; i++) {
      const ch = text[i] as string;
      if (this.#pendingCR) {
        this.#pendingCR = false;
        if (ch === '\n') continue;
      }
      if (this.#quoted) {
        if (ch === '"') {
          this.#quoted = false;
          this.#afterQuote = true;
        } else {
          if (ch === '\n') this.#line++;
          this.#field += ch;
        }
        continue;
      }
      if (ch === '"') {
        if (this.#afterQuote) {
          this.#field += '"'; // a doubled quote inside a quoted field
          this.#quoted = true;
          this.#afterQuote = false;
        } else if (this.#field === '') {
          this.#quoted = true;
        } else {
          this.#field += ch;
        }
        continue;
      }
      this.#afterQuote = false;
      if (ch === ',') {
        this.#fields.push(this.#field);
        this.#field = '';
      } else if (ch === '\n' || ch === '\r') {
        this.#endRecord();
        if (ch === '\r') this.#pendingCR = true;
      } else {
        this.#field += ch;
      }
    }
  }

  #endRecord(): void {
    this.#fields.push(this.#field);
    this.#onRecord(this.#fields, this.#recordLine);
    this.#fields = [];
    this.#field = '';
    this.#line++;
    this.#recordLine = this.#line;
  }

  end(): void {
    if (this.#quoted) throw dataError(`CSV line ${this.#recordLine}: a quoted field is not closed.`);
    if (this.#field !== '' || this.#fields.length > 0) this.#endRecord();
  }
}

export interface ParseOptions {
  /** Refuse files with more data rows than this. */
  maxRows?: number;
}

/** Parses a dataset delivered as chunks (a whole body is one chunk). */
export async function parseTableStream(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  format: DatasetFormat,
  options: ParseOptions = {},
): Promise<Table> {
  const maxRows = options.maxRows ?? 5_000_000;
  const decoder = new TextDecoder('utf-8');
  let columns: string[] | undefined;
  let builders: ColumnBuilder[] = [];
  const index = new Map<string, number>();
  let rowCount = 0;
  let first = true;
  const countRow = () => {
    rowCount++;
    if (rowCount > maxRows)
      throw dataError(`The dataset has more than ${maxRows} rows, the most a job may use.`);
  };

  const onCsvRecord = (fields: string[], line: number) => {
    if (fields.length === 1 && fields[0]?.trim() === '') return;
    if (!columns) {
      columns = fields.map((f) => f.trim());
      columns.forEach((name, i) => {
        if (name === '') throw dataError(`CSV header: column ${i + 1} has no name.`);
        if (columns?.indexOf(name) !== i) throw dataError(`CSV header: column "${name}" appears twice.`);
      });
      builders = columns.map((c) => new ColumnBuilder(c));
      return;
    }
    if (fields.length !== columns.length) {
      throw dataError(
        `CSV line ${line} (row ${rowCount + 1}): has ${fields.length} fields, the header has ${columns.length}.`,
      );
    }
    countRow();
    for (let c = 0; c < fields.length; c++)
      (builders[c] as ColumnBuilder).push(csvCell(fields[c] as string), rowCount);
  };
  const csv = new CsvParser(onCsvRecord);

  let lineNo = 0;
  let carry = '';
  const jsonColumns: string[] = [];
  const onJsonLine = (raw: string) => {
    lineNo++;
    const line = raw.trim();
    if (line === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw dataError(`JSON Lines line ${lineNo}: not valid JSON.`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw dataError(`JSON Lines line ${lineNo}: expected an object like {"column": value}.`);
    }
    countRow();
    const object = value as Record<string, unknown>;
    for (const key of Object.keys(object)) {
      if (!index.has(key)) {
        index.set(key, jsonColumns.length);
        jsonColumns.push(key);
        const builder = new ColumnBuilder(key);
        for (let r = 1; r < rowCount; r++) builder.push(null, r);
        builders.push(builder);
      }
    }
    for (let c = 0; c < jsonColumns.length; c++) {
      const v = object[jsonColumns[c] as string];
      if (v !== undefined && v !== null && typeof v === 'object' && !Array.isArray(v)) {
        throw dataError(
          `Row ${rowCount}, column "${jsonColumns[c]}": expected a number, string, boolean or array of numbers.`,
        );
      }
      (builders[c] as ColumnBuilder).push(v as Cell | undefined, rowCount);
    }
  };

  const feed = (text: string) => {
    if (first) {
      text = text.replace(/^\uFEFF/, '');
      first = false;
    }
    if (format === 'csv') {
      csv.push(text);
      return;
    }
    const parts = (carry + text).split('\n');
    carry = parts.pop() ?? '';
    for (const part of parts) onJsonLine(part);
  };
  for await (const chunk of chunks) feed(decoder.decode(chunk, { stream: true }));
  feed(decoder.decode());
  if (format === 'csv') csv.end();
  else if (carry.trim() !== '') onJsonLine(carry);

  if (format === 'csv') {
    if (!columns) throw dataError('The dataset is empty: expected a CSV header row and data rows.');
  } else {
    columns = jsonColumns;
  }
  if (rowCount === 0) {
    throw dataError(
      format === 'csv'
        ? 'The dataset has a header but no data rows.'
        : 'The dataset is empty: expected one JSON object per line.',
    );
  }
  return { columns, rowCount, data: builders.map((b) => b.build()) };
}

/** The whole body at once (tests, small files). */
export function parseTable(body: Uint8Array, format: DatasetFormat, maxRows?: number): Promise<Table> {
  return parseTableStream([body], format, maxRows === undefined ? {} : { maxRows });
}

/** A cell as a plain value (for messages and tests). */
export function cellAt(table: Table, column: number, row: number): Cell {
  const col = table.data[column];
  if (!col) return null;
  if (col.kind === 'numeric') {
    const v = col.values[row] as number;
    return Number.isNaN(v) ? null : v;
  }
  if (col.kind === 'text') return col.values[row] ?? null;
  const a = col.values[row];
  return a ? Array.from(a) : null;
}

/** The column names from the start of a file (for checks at submit time). */
export function peekColumns(head: Uint8Array, format: DatasetFormat): string[] | undefined {
  const text = new TextDecoder().decode(head).replace(/^\uFEFF/, '');
  if (format !== 'csv') return undefined; // JSON Lines rows may add columns later
  const end = text.search(/\r?\n/);
  if (end < 0) return undefined;
  let header: string[] | undefined;
  const parser = new CsvParser((fields) => {
    header ??= fields.map((f) => f.trim());
  });
  parser.push(text.slice(0, end + 1));
  return header;
}
