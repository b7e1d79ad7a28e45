/**
 * The one transform between a raw row and a model: a fitted preprocessing (`preprocessing.json`)
 * turns a row's cells into the model's input, and a model's output becomes a prediction. Pure (it
 * imports only `cells.ts`, itself pure): training (`encodeRows`), the predict route, batch
 * predictions and the client's model loader in Node.js or a browser all run this code.
 */
import { csvCell, DATE_PARTS, type DatePart, dateParts, isDecimal, parseIsoDate } from '../datasets/cells.ts';

export type ScaleMode = 'none' | 'standardize' | 'minMax';
export type MissingMode = 'error' | 'drop' | 'mean' | 'mostFrequent';

/**
 * A fitted column. `numeric`: `x' = (x − offset) / divisor`. `categorical`: one input per category
 * (`oneHot`) or the category's position + 1 (`index`, 0 = unseen). `date`: the date's parts
 * (`DATE_PARTS`), each as `(part − offsets[i]) / divisors[i]`. `array`: the numbers as they are.
 * `missing` is the rule the column was trained with; `fill` replaces a missing cell; `mean` and
 * `mostFrequent` are the training rows' (the explanations' baseline).
 */
export type FittedColumn =
  | {
      name: string;
      kind: 'numeric';
      scale: ScaleMode;
      offset: number;
      divisor: number;
      /** A range supplied in the spec: values are clipped into it before scaling. */
      range?: [number, number];
      fill?: number;
      missing?: MissingMode;
      mean?: number;
    }
  | {
      name: string;
      kind: 'categorical';
      encoding: 'oneHot' | 'index';
      categories: string[];
      fill?: string;
      missing?: MissingMode;
      mostFrequent?: string;
    }
  | {
      name: string;
      kind: 'date';
      scale: ScaleMode;
      parts: DatePart[];
      offsets: number[];
      divisors: number[];
      /** Days since the epoch that a missing date is read as. */
      fill?: number;
      missing?: MissingMode;
      /** Mean of the training dates, in days since the epoch. */
      mean?: number;
    }
  | { name: string; kind: 'array'; shape: number[] };

export interface FittedPreprocessing {
  version: 1;
  columns: FittedColumn[];
  /** Shape of one encoded row, the model's input shape. */
  inputShape: number[];
  /** The training file's format: how its text cells were read (`csv`: trimmed, decimals as numbers). */
  source?: 'csv' | 'jsonl';
  /** Columns of the training file the model does not use, and why. */
  excluded?: { name: string; reason: string }[];
}

export { DATE_PARTS };

/** Number of encoded values a fitted column contributes. */
export function widthOf(column: FittedColumn): number {
  if (column.kind === 'numeric') return 1;
  if (column.kind === 'date') return column.parts.length;
  if (column.kind === 'array') return column.shape.reduce((a, b) => a * b, 1);
  return column.encoding === 'oneHot' ? column.categories.length : 1;
}

export const inputWidth = (fitted: FittedPreprocessing): number =>
  fitted.inputShape.reduce((a, b) => a * b, 1);

/** Where each original column's inputs sit in an encoded row (one-hot and date parts together). */
export function columnSlices(fitted: FittedPreprocessing): { name: string; start: number; width: number }[] {
  let start = 0;
  return fitted.columns.map((column) => {
    const slice = { name: column.name, start, width: widthOf(column) };
    start += slice.width;
    return slice;
  });
}

/** A cell that cannot be used; `RowError` adds the row. */
export class CellError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CellError';
  }
}

/** A row that cannot be used: its 1-based number, the column and what is wrong. */
export class RowError extends Error {
  readonly row: number;
  readonly column: string;
  readonly problem: string;
  constructor(row: number, column: string, problem: string) {
    super(`Row ${row}, column "${column}": ${problem}`);
    this.name = 'RowError';
    this.row = row;
    this.column = column;
    this.problem = problem;
  }
}

const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v.slice(0, 60)) : JSON.stringify(v));
const isBlank = (raw: unknown) =>
  raw === null || raw === undefined || (typeof raw === 'string' && raw.trim() === '');

/** A raw value as a number of a numeric column (`null`: missing). */
function readNumber(raw: unknown): number | null {
  if (typeof raw === 'number') return Number.isNaN(raw) ? null : raw;
  if (typeof raw === 'boolean') return Number(raw);
  if (isBlank(raw)) return null;
  if (typeof raw === 'string' && isDecimal(raw.trim())) return Number(raw.trim());
  throw new CellError(`${show(raw)} is not a number, and the model was trained on numbers in this column.`);
}

/** A raw value as the category text training saw: CSV fields trimmed and decimals normalised (`007` → `7`). */
export function readCategory(raw: unknown, source: 'csv' | 'jsonl' | undefined): string | null {
  if (raw === null || raw === undefined) return null;
  if (typeof raw === 'number') return Number.isNaN(raw) ? null : String(raw);
  if (typeof raw === 'boolean') return String(raw);
  if (typeof raw !== 'string') throw new CellError(`${show(raw)} is not a category (text or a number).`);
  if (source === 'jsonl') return raw;
  const cell = csvCell(raw);
  return cell === null ? null : String(cell);
}

/** A raw value as a date (ms since the epoch, UTC; `null`: missing). */
function readDate(raw: unknown): number | null {
  if (isBlank(raw)) return null;
  const ms = typeof raw === 'string' ? parseIsoDate(raw) : undefined;
  if (ms === undefined)
    throw new CellError(`${show(raw)} is not an ISO-8601 date (like 2024-03-01 or 2024-03-01T12:30:00Z).`);
  return ms;
}

function readArray(raw: unknown, size: number, shape: number[]): Float32Array | null {
  if (raw === null || raw === undefined) return null;
  if (!Array.isArray(raw)) throw new CellError(`expected an array of ${size} numbers.`);
  const flat = (raw as unknown[]).flat(8);
  if (flat.length !== size)
    throw new CellError(`the array has ${flat.length} numbers; shape [${shape.join(', ')}] needs ${size}.`);
  if (!flat.every((v) => typeof v === 'number' && Number.isFinite(v)))
    throw new CellError('arrays may hold only finite numbers.');
  return Float32Array.from(flat as number[]);
}

/** A column's cell, read from a raw value into what `encodeValue` takes. */
export type CellValue = number | string | Float32Array | null;

export function readCell(column: FittedColumn, raw: unknown, source?: 'csv' | 'jsonl'): CellValue {
  switch (column.kind) {
    case 'numeric':
      return readNumber(raw);
    case 'categorical':
      return readCategory(raw, source);
    case 'date':
      return readDate(raw);
    case 'array':
      return readArray(raw, widthOf(column), column.shape);
  }
}

/**
 * What a missing cell becomes: the fitted `fill`; for a column trained with `drop` (a row to predict
 * cannot be dropped), the training mean or most frequent category; otherwise an error.
 */
function filled(column: Exclude<FittedColumn, { kind: 'array' }>): number | string | null {
  if (column.fill !== undefined) return column.fill;
  if (column.missing === undefined) return null; // a model from before `missing` was recorded: as it did
  if (column.missing === 'drop') {
    if (column.kind === 'categorical') return column.mostFrequent ?? null;
    return column.mean ?? null;
  }
  throw new CellError(
    `the value is missing, and the model was trained with preprocessing.missing "${column.missing}" for this column (no value to fill in).`,
  );
}

/** Writes a column's encoded inputs for one cell at `out[offset…]`. */
export function encodeValue(column: FittedColumn, value: CellValue, out: Float32Array, offset: number): void {
  if (column.kind === 'array') {
    if (value === null) throw new CellError('the value is missing; an array column needs its numbers.');
    out.set(value as Float32Array, offset);
    return;
  }
  const v = value === null ? filled(column) : value;
  if (column.kind === 'numeric') {
    const x = (v as number | null) ?? 0;
    const clipped = column.range ? Math.min(column.range[1], Math.max(column.range[0], x)) : x;
    out[offset] = (clipped - column.offset) / column.divisor;
  } else if (column.kind === 'date') {
    if (v === null) return; // legacy: zeros
    const parts = dateParts(value === null ? (v as number) * 86_400_000 : (v as number));
    column.parts.forEach((part, i) => {
      const p = parts[DATE_PARTS.indexOf(part)] as number;
      out[offset + i] = (p - (column.offsets[i] as number)) / (column.divisors[i] as number);
    });
  } else {
    const k = v === null ? -1 : column.categories.indexOf(v as string);
    if (column.encoding === 'index') out[offset] = k + 1;
    else if (k >= 0) out[offset + k] = 1;
  }
}

/** Encodes one raw record (column → value) the way the model saw its training rows; `row` names it in errors. */
export function encodeRecord(
  fitted: FittedPreprocessing,
  record: Record<string, unknown>,
  row = 1,
  out = new Float32Array(inputWidth(fitted)),
  base = 0,
): Float32Array {
  let offset = base;
  for (const column of fitted.columns) {
    try {
      encodeValue(column, readCell(column, record[column.name], fitted.source), out, offset);
    } catch (error) {
      if (error instanceof CellError) throw new RowError(row, column.name, error.message);
      throw error;
    }
    offset += widthOf(column);
  }
  return out;
}

/** Encodes raw records into one row-major Float32Array; a bad row throws a `RowError` (1-based rows from `firstRow`). */
export function encodeRecords(
  fitted: FittedPreprocessing,
  records: readonly unknown[],
  firstRow = 1,
): Float32Array {
  const width = inputWidth(fitted);
  const out = new Float32Array(records.length * width);
  records.forEach((record, i) => {
    if (record === null || typeof record !== 'object' || Array.isArray(record))
      throw new RowError(firstRow + i, '*', 'a row must be an object of column → value.');
    encodeRecord(fitted, record as Record<string, unknown>, firstRow + i, out, i * width);
  });
  return out;
}

/**
 * The explanations' baseline, as a raw row: each numeric column at its training mean, each
 * categorical column at its most frequent category, each date at the mean date; an array column at
 * zeros.
 */
export function baselineRecord(fitted: FittedPreprocessing): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const c of fitted.columns) {
    if (c.kind === 'numeric') row[c.name] = c.mean ?? c.fill ?? c.offset;
    else if (c.kind === 'categorical') row[c.name] = c.mostFrequent ?? c.fill ?? c.categories[0] ?? null;
    else if (c.kind === 'date') row[c.name] = new Date((c.mean ?? c.fill ?? 0) * 86_400_000).toISOString();
    else row[c.name] = new Array(widthOf(c)).fill(0);
  }
  return row;
}

/** What the model predicts, decoded. */
export type Prediction =
  | { label: string | number; probabilities: Record<string, number> }
  | { value: number };

export interface OutputMeta {
  task: 'classification' | 'regression';
  /** Classification: the classes in output-unit order. */
  classes?: (string | number)[];
}

/** Class probabilities of one row: a single sigmoid unit is the second class's probability. */
export function rowProbabilities(raw: ArrayLike<number>, i: number, units: number, k: number): number[] {
  if (units === 1 && k === 2) {
    const p = raw[i] as number;
    return [1 - p, p];
  }
  return Array.from({ length: k }, (_, c) => raw[i * units + c] as number);
}

/** Raw outputs [n × units] as predictions: the most probable class with every class's probability, or the value. */
export function decodeOutputs(meta: OutputMeta, raw: ArrayLike<number>, n: number): Prediction[] {
  const units = n ? raw.length / n : 1;
  if (meta.task === 'regression')
    return Array.from({ length: n }, (_, i) => ({ value: raw[i * units] as number }));
  const classes = meta.classes ?? [];
  return Array.from({ length: n }, (_, i) => {
    const p = rowProbabilities(raw, i, units, classes.length);
    let best = 0;
    for (let c = 1; c < p.length; c++) if ((p[c] as number) > (p[best] as number)) best = c;
    const probabilities: Record<string, number> = {};
    classes.forEach((c, j) => {
      probabilities[String(c)] = p[j] as number;
    });
    return { label: classes[best] as string | number, probabilities };
  });
}

/**
 * A prediction as flat output columns, added to a row of a CSV or JSON Lines file:
 * `predicted_<label>`, then `probability_<class>` per class, then `attribution_<column>` per input.
 */
export function predictionFields(
  label: string,
  prediction: Prediction & { attributions?: Record<string, number> },
): Record<string, string | number> {
  const fields: Record<string, string | number> = {};
  if ('value' in prediction) fields[`predicted_${label}`] = prediction.value;
  else {
    fields[`predicted_${label}`] = prediction.label;
    for (const [c, p] of Object.entries(prediction.probabilities)) fields[`probability_${c}`] = p;
  }
  for (const [c, a] of Object.entries(prediction.attributions ?? {})) fields[`attribution_${c}`] = a;
  return fields;
}
