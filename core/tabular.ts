/**
 * Parsing uploaded datasets (CSV with a header row, or JSON Lines) into a table. Every problem is an
 * `UnrecoverableError` whose message names the row and column, so a job fails saying what to fix.
 */
import { UnrecoverableError } from './errors.ts';
import type { DatasetFormat } from './job-spec.ts';

export type Cell = string | number | boolean | null;

export interface Table {
  columns: string[];
  /** One array per row, in column order. */
  rows: Cell[][];
}

const dataError = (message: string) => new UnrecoverableError('INVALID_DATA', message);

/** Splits CSV text into records of raw fields (RFC 4180: quotes, doubled quotes, CRLF). */
export function* csvRecords(text: string): Generator<{ line: number; fields: string[] }> {
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let startLine = 1;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        if (ch === '\n') line++;
        field += ch;
      }
      i++;
      continue;
    }
    if (ch === '"' && field === '') {
      quoted = true;
    } else if (ch === ',') {
      fields.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      fields.push(field);
      yield { line: startLine, fields };
      fields = [];
      field = '';
      if (ch === '\r' && text[i + 1] === '\n') i++;
      line++;
      startLine = line;
    } else {
      field += ch;
    }
    i++;
  }
  if (quoted) throw dataError(`CSV line ${startLine}: a quoted field is not closed.`);
  if (field !== '' || fields.length > 0) {
    fields.push(field);
    yield { line: startLine, fields };
  }
}

const isBlank = (fields: string[]) => fields.length === 1 && fields[0]?.trim() === '';

const DECIMAL = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** A CSV field as a cell: numbers become numbers, empty becomes null, anything else stays text. */
export function csvCell(raw: string): Cell {
  const s = raw.trim();
  if (s === '') return null;
  return DECIMAL.test(s) ? Number(s) : s;
}

function parseCsv(text: string, maxRows: number): Table {
  const records = csvRecords(text);
  let header: string[] | undefined;
  const rows: Cell[][] = [];
  for (const { line, fields } of records) {
    if (isBlank(fields)) continue;
    if (!header) {
      header = fields.map((f) => f.trim());
      header.forEach((name, i) => {
        if (name === '') throw dataError(`CSV header: column ${i + 1} has no name.`);
        if (header?.indexOf(name) !== i) throw dataError(`CSV header: column "${name}" appears twice.`);
      });
      continue;
    }
    if (fields.length !== header.length) {
      throw dataError(
        `CSV line ${line} (row ${rows.length + 1}): has ${fields.length} fields, the header has ${header.length}.`,
      );
    }
    rows.push(fields.map(csvCell));
    if (rows.length > maxRows)
      throw dataError(`The dataset has more than ${maxRows} rows, the most a job may use.`);
  }
  if (!header) throw dataError('The dataset is empty: expected a CSV header row and data rows.');
  return { columns: header, rows };
}

function parseJsonLines(text: string, maxRows: number): Table {
  const columns: string[] = [];
  const index = new Map<string, number>();
  const objects: Record<string, unknown>[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw dataError(`JSON Lines line ${i + 1}: not valid JSON.`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw dataError(`JSON Lines line ${i + 1}: expected an object like {"column": value}.`);
    }
    for (const key of Object.keys(value)) {
      if (!index.has(key)) {
        index.set(key, columns.length);
        columns.push(key);
      }
    }
    objects.push(value as Record<string, unknown>);
    if (objects.length > maxRows)
      throw dataError(`The dataset has more than ${maxRows} rows, the most a job may use.`);
  });
  if (objects.length === 0) throw dataError('The dataset is empty: expected one JSON object per line.');
  const rows = objects.map((object, r) =>
    columns.map((column) => {
      const v = object[column];
      if (v === undefined || v === null) return null;
      if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return v;
      throw dataError(`Row ${r + 1}, column "${column}": expected a number, string or boolean.`);
    }),
  );
  return { columns, rows };
}

export function parseTable(body: Uint8Array, format: DatasetFormat, maxRows = 1_000_000): Table {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(body).replace(/^\uFEFF/, '');
  return format === 'csv' ? parseCsv(text, maxRows) : parseJsonLines(text, maxRows);
}

/** The column names from the start of a file (for checks at submit time). */
export function peekColumns(head: Uint8Array, format: DatasetFormat): string[] | undefined {
  const text = new TextDecoder().decode(head).replace(/^\uFEFF/, '');
  if (format === 'csv') {
    const end = text.search(/\r?\n/);
    if (end < 0) return undefined;
    const first = csvRecords(text.slice(0, end)).next();
    return first.done ? undefined : first.value.fields.map((f) => f.trim());
  }
  // JSON Lines rows may add columns later; the first row's keys are a lower bound.
  return undefined;
}
