/**
 * Parsing uploaded datasets (CSV with a header row, or JSON Lines) into a columnar table, chunk by
 * chunk, so a large file is never held as text and rows at once: numeric columns are Float64Arrays
 * (8 bytes a cell). Memory is bounded whatever the file: a line longer than `maxLineChars`, more
 * columns than `maxColumns`, more rows than `maxRows` or a table past `maxTableBytes` stops the parse
 * with a message naming the limit and its setting; fields are cut from the decoded chunks as slices
 * (never grown a character at a time), and the text a table keeps is copied out of its chunk. Every
 * problem is an `UnrecoverableError` naming the row and column; a number beyond float32 (training's
 * precision), such as 1e39 or 1e400, is `INVALID_DATA`.
 */

import type { DatasetFormat } from '../jobs/job-spec.ts';
import { UnrecoverableError } from '../platform/errors.ts';
import { csvCell, detach } from './cells.ts';

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
  /** Memory the cells take, as the parser counted it against its budget. */
  bytes?: number;
}

export type Cell = string | number | boolean | null | number[];

const dataError = (message: string) => new UnrecoverableError('INVALID_DATA', message);
const limitError = (message: string) => new UnrecoverableError('DATASET_TOO_LARGE', message);

/** The largest finite float32: training computes in 32-bit floats, so a larger number is infinite there. */
export const FLOAT32_MAX = 3.4028234663852886e38;

const inFloat32 = (v: number) => Number.isFinite(v) && Math.abs(v) <= FLOAT32_MAX;

/** A number training cannot hold: INVALID_DATA naming the row, the column and the value as written. */
const outOfRange = (row: number, column: string, shown: string) =>
  dataError(
    `Row ${row}, column "${column}": ${shown.length > 40 ? `${shown.slice(0, 40)}…` : shown} is not a finite 32-bit float (training's numbers are within ±3.4e38).`,
  );

function flatten(value: unknown[], out: number[], row: number, column: string): void {
  for (const v of value) {
    if (Array.isArray(v)) flatten(v, out, row, column);
    else if (typeof v === 'number' && inFloat32(v)) out.push(v);
    else if (typeof v === 'number') throw outOfRange(row, column, String(v));
    else
      throw dataError(
        `Row ${row}, column "${column}": arrays may hold only finite numbers (found ${JSON.stringify(v)?.slice(0, 40)}).`,
      );
  }
}

/** What the table holds so far, counted as it grows, against its budget. */
class TableBudget {
  bytes = 0;
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  add(bytes: number, row: number): void {
    this.bytes += bytes;
    if (this.bytes > this.#max)
      throw new UnrecoverableError(
        'RESOURCE_LIMIT',
        `The parsed dataset needs more than ${Math.round(this.#max / 2 ** 20)} MiB of memory by row ${row}, more than a job may use (setting DESCENT_JOB_MEMORY_BYTES): use fewer rows or columns.`,
      );
  }
}

/** Bytes a text cell takes in the table: the characters (up to two bytes each) and V8's overhead. */
const textBytes = (text: string | null) => (text === null ? 8 : 32 + 2 * text.length);

/** Accumulates one column, switching from numeric to text when the first text value arrives. */
class ColumnBuilder {
  readonly name: string;
  kind: Column['kind'] = 'numeric';
  numbers = new Float64Array(1024);
  texts: (string | null)[] = [];
  arrays: (Float32Array | null)[] = [];
  length = 0;
  readonly #budget: TableBudget;

  constructor(name: string, budget: TableBudget) {
    this.name = name;
    this.#budget = budget;
  }

  /** `shown`: the cell as written (for a message about a number out of range). */
  push(cell: Cell | undefined, row: number, shown?: string): void {
    const value = cell === undefined ? null : cell;
    if (typeof value === 'number' && !inFloat32(value))
      throw outOfRange(row, this.name, shown ?? String(value));
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
      this.#budget.add(96 + 4 * flat.length, row);
      this.arrays.push(Float32Array.from(flat));
    } else if (this.kind === 'array') {
      if (value !== null)
        throw dataError(`Row ${row}, column "${this.name}": expected an array like the rows before.`);
      this.#budget.add(8, row);
      this.arrays.push(null);
    } else if (typeof value === 'string' && this.kind === 'numeric') {
      this.kind = 'text';
      this.texts = Array.from(this.numbers.subarray(0, this.length), (n) =>
        Number.isNaN(n) ? null : String(n),
      );
      this.#budget.add(this.texts.reduce((a, t) => a + textBytes(t), 0) + textBytes(value), row);
      this.numbers = new Float64Array(0);
      this.texts.push(value);
    } else if (this.kind === 'text') {
      const text = value === null ? null : String(value);
      this.#budget.add(textBytes(text), row);
      this.texts.push(text);
    } else {
      this.#budget.add(8, row);
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

/** What bounds one CSV record: its characters and its fields (the header's count, once known). */
export interface RecordLimits {
  maxChars: number;
  maxFields: number;
}

/**
 * Incremental RFC 4180 CSV: quotes, doubled quotes, CRLF, fields spanning chunks and lines. A field
 * is kept as slices of the chunks it spans, joined once at its end, and a record longer than
 * `limits.maxChars` or with more than `limits.maxFields` fields stops the parse as soon as it is.
 */
class CsvParser {
  #fields: string[] = [];
  /** Pieces of the current field (slices of chunks). */
  #parts: string[] = [];
  #quoted = false;
  #afterQuote = false;
  #pendingCR = false;
  #line = 1;
  #recordLine = 1;
  #recordChars = 0;
  readonly #onRecord: (fields: string[], line: number) => void;
  readonly limits: RecordLimits;

  constructor(onRecord: (fields: string[], line: number) => void, limits: RecordLimits) {
    this.#onRecord = onRecord;
    this.limits = limits;
  }

  push(text: string): void {
    let start = 0; // where the current field's pending piece starts in `text`
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (this.#pendingCR) {
        this.#pendingCR = false;
        if (c === 10) {
          start = i + 1;
          continue;
        }
      }
      if (this.#quoted) {
        if (c === 34) {
          this.#piece(text, start, i);
          start = i + 1;
          this.#quoted = false;
          this.#afterQuote = true;
        } else if (c === 10) this.#line++;
        continue;
      }
      if (c === 34) {
        if (this.#afterQuote) {
          this.#piece(text, start, i + 1); // a doubled quote inside a quoted field: keep one
          start = i + 1;
          this.#quoted = true;
          this.#afterQuote = false;
        } else if (this.#parts.length === 0 && i === start) {
          start = i + 1;
          this.#quoted = true;
        }
        // else: a quote inside an unquoted field is an ordinary character
        continue;
      }
      this.#afterQuote = false;
      if (c === 44) {
        this.#piece(text, start, i);
        this.#endField();
        start = i + 1;
      } else if (c === 10 || c === 13) {
        this.#piece(text, start, i);
        this.#endRecord();
        start = i + 1;
        if (c === 13) this.#pendingCR = true;
      }
    }
    this.#piece(text, start, text.length);
  }

  #piece(text: string, from: number, to: number): void {
    if (to <= from) return;
    this.#recordChars += to - from;
    if (this.#recordChars > this.limits.maxChars)
      throw limitError(
        `CSV line ${this.#recordLine}: longer than ${this.limits.maxChars} characters, the longest line a dataset may have (setting DESCENT_MAX_LINE_BYTES).`,
      );
    this.#parts.push(text.slice(from, to));
  }

  #endField(): void {
    const parts = this.#parts;
    this.#fields.push(parts.length === 0 ? '' : parts.length === 1 ? (parts[0] as string) : parts.join(''));
    this.#parts = [];
    this.#recordChars++;
    if (this.#fields.length > this.limits.maxFields)
      throw limitError(
        `CSV line ${this.#recordLine}: more than ${this.limits.maxFields} fields (${this.#recordLine === 1 ? 'the most columns a dataset may have, setting DESCENT_MAX_COLUMNS' : 'the header has fewer'}).`,
      );
  }

  #endRecord(): void {
    this.#endField();
    this.#onRecord(this.#fields, this.#recordLine);
    this.#fields = [];
    this.#recordChars = 0;
    this.#line++;
    this.#recordLine = this.#line;
  }

  end(): void {
    if (this.#quoted) throw dataError(`CSV line ${this.#recordLine}: a quoted field is not closed.`);
    if (this.#parts.length > 0 || this.#fields.length > 0) this.#endRecord();
  }
}

/** Splits JSON Lines text into lines as chunks arrive, keeping a line's pieces until its end. */
class LineSplitter {
  #parts: string[] = [];
  #chars = 0;
  line = 0;
  readonly #maxChars: number;

  constructor(maxChars: number) {
    this.#maxChars = maxChars;
  }

  push(text: string, onLine: (line: string, number: number) => void): void {
    let start = 0;
    for (;;) {
      const end = text.indexOf('\n', start);
      this.#add(text, start, end < 0 ? text.length : end);
      if (end < 0) return;
      onLine(this.#take(), this.line);
      start = end + 1;
    }
  }

  end(onLine: (line: string, number: number) => void): void {
    if (this.#parts.length > 0) onLine(this.#take(), this.line);
  }

  #add(text: string, from: number, to: number): void {
    if (to <= from) return;
    this.#chars += to - from;
    if (this.#chars > this.#maxChars)
      throw limitError(
        `JSON Lines line ${this.line + 1}: longer than ${this.#maxChars} characters, the longest line a dataset may have (setting DESCENT_MAX_LINE_BYTES).`,
      );
    this.#parts.push(text.slice(from, to));
  }

  #take(): string {
    const line = this.#parts.join('');
    this.#parts = [];
    this.#chars = 0;
    this.line++;
    return line;
  }
}

export interface ParseOptions {
  /** Refuse files with more data rows than this. @default 5,000,000 */
  maxRows?: number;
  /** Refuse files with more columns than this (CSV header fields, JSON Lines keys). @default 10,000 */
  maxColumns?: number;
  /** Refuse a line (CSV record, JSON Lines line) longer than this many characters. @default 4 MiB */
  maxLineChars?: number;
  /** Refuse a table whose cells would need more memory than this. @default 2 GiB */
  maxTableBytes?: number;
}

const DEFAULT_PARSE: Required<ParseOptions> = {
  maxRows: 5_000_000,
  maxColumns: 10_000,
  maxLineChars: 4 * 1024 * 1024,
  maxTableBytes: 2 * 1024 ** 3,
};

/** Rows and columns of the table being parsed, fed one CSV record or one JSON Lines line at a time. */
class TableBuilder {
  columns: string[] | undefined;
  rowCount = 0;
  readonly builders: ColumnBuilder[] = [];
  readonly #index = new Map<string, number>();
  readonly #jsonColumns: string[] = [];
  readonly #options: Required<ParseOptions>;
  readonly #budget: TableBudget;
  /** The CSV parser's limits: `maxFields` becomes the header's count once it is read. */
  readonly recordLimits: RecordLimits;

  constructor(options: Required<ParseOptions>) {
    this.#options = options;
    this.#budget = new TableBudget(options.maxTableBytes);
    this.recordLimits = { maxChars: options.maxLineChars, maxFields: options.maxColumns };
  }

  #countRow(): void {
    this.rowCount++;
    if (this.rowCount > this.#options.maxRows)
      throw limitError(
        `The dataset has more than ${this.#options.maxRows} rows, the most a job may use (setting DESCENT_MAX_ROWS).`,
      );
  }

  readonly csvRecord = (fields: string[], line: number): void => {
    if (fields.length === 1 && fields[0]?.trim() === '') return;
    const columns = this.columns;
    if (!columns) {
      const names = fields.map((f) => detach(f.trim()));
      names.forEach((name, i) => {
        if (name === '') throw dataError(`CSV header: column ${i + 1} has no name.`);
        if (names.indexOf(name) !== i) throw dataError(`CSV header: column "${name}" appears twice.`);
      });
      this.columns = names;
      this.builders.push(...names.map((c) => new ColumnBuilder(c, this.#budget)));
      this.recordLimits.maxFields = names.length;
      return;
    }
    if (fields.length !== columns.length) {
      throw dataError(
        `CSV line ${line} (row ${this.rowCount + 1}): has ${fields.length} fields, the header has ${columns.length}.`,
      );
    }
    this.#countRow();
    for (let c = 0; c < fields.length; c++) {
      const raw = fields[c] as string;
      (this.builders[c] as ColumnBuilder).push(csvCell(raw), this.rowCount, raw.trim());
    }
  };

  readonly jsonLine = (raw: string, lineNo: number): void => {
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
    this.#countRow();
    const object = value as Record<string, unknown>;
    const columns = this.#jsonColumns;
    for (const key of Object.keys(object)) {
      if (this.#index.has(key)) continue;
      if (columns.length >= this.#options.maxColumns)
        throw limitError(
          `JSON Lines line ${lineNo}: the dataset has more than ${this.#options.maxColumns} columns, the most it may have (setting DESCENT_MAX_COLUMNS).`,
        );
      this.#index.set(key, columns.length);
      columns.push(key);
      const builder = new ColumnBuilder(key, this.#budget);
      for (let r = 1; r < this.rowCount; r++) builder.push(null, r);
      this.builders.push(builder);
    }
    for (let c = 0; c < columns.length; c++) {
      const v = object[columns[c] as string];
      if (v !== undefined && v !== null && typeof v === 'object' && !Array.isArray(v)) {
        throw dataError(
          `Row ${this.rowCount}, column "${columns[c]}": expected a number, string, boolean or array of numbers.`,
        );
      }
      (this.builders[c] as ColumnBuilder).push(v as Cell | undefined, this.rowCount);
    }
  };

  build(format: DatasetFormat): Table {
    const columns = format === 'csv' ? this.columns : this.#jsonColumns;
    if (!columns) throw dataError('The dataset is empty: expected a CSV header row and data rows.');
    if (this.rowCount === 0) {
      throw dataError(
        format === 'csv'
          ? 'The dataset has a header but no data rows.'
          : 'The dataset is empty: expected one JSON object per line.',
      );
    }
    const data = this.builders.map((b) => b.build());
    return { columns, rowCount: this.rowCount, data, bytes: this.#budget.bytes };
  }
}

/** Parses a dataset delivered as chunks (a whole body is one chunk). */
export async function parseTableStream(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  format: DatasetFormat,
  options: ParseOptions = {},
): Promise<Table> {
  const table = new TableBuilder({ ...DEFAULT_PARSE, ...options });
  const decoder = new TextDecoder('utf-8');
  const csv = new CsvParser(table.csvRecord, table.recordLimits);
  const lines = new LineSplitter(table.recordLimits.maxChars);
  let first = true;
  const feed = (text: string) => {
    if (first) {
      text = text.replace(/^\uFEFF/, '');
      first = false;
    }
    if (format === 'csv') csv.push(text);
    else lines.push(text, table.jsonLine);
  };
  for await (const chunk of chunks) feed(decoder.decode(chunk, { stream: true }));
  feed(decoder.decode());
  if (format === 'csv') csv.end();
  else lines.end(table.jsonLine);
  return table.build(format);
}

/** The whole body at once (tests, small files). */
export function parseTable(
  body: Uint8Array,
  format: DatasetFormat,
  options: number | ParseOptions = {},
): Promise<Table> {
  return parseTableStream([body], format, typeof options === 'number' ? { maxRows: options } : options);
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
  const parser = new CsvParser(
    (fields) => {
      header ??= fields.map((f) => f.trim());
    },
    { maxChars: Number.POSITIVE_INFINITY, maxFields: Number.POSITIVE_INFINITY },
  );
  parser.push(text.slice(0, end + 1));
  return header;
}
