/**
 * Feature preprocessing declared in the spec, fitted on training rows only (no leakage into
 * validation) and saved with the model, so that a prediction applies exactly the same transform.
 */

import { parseIsoDate } from '../datasets/cells.ts';
import type { Table } from '../datasets/tabular.ts';
import type { PreprocessingSpec } from '../jobs/job-spec.ts';
import { UnrecoverableError } from '../platform/errors.ts';
import {
  CellError,
  type CellValue,
  DATE_PARTS,
  encodeValue,
  type FittedColumn,
  type FittedPreprocessing,
  type MissingMode,
  type ScaleMode,
  widthOf,
} from './transform.ts';

export { encodeRecord, widthOf } from './transform.ts';
export type { FittedColumn, FittedPreprocessing, MissingMode, ScaleMode };

/** A feature column as the encoder sees it: where it sits in the table and how to read it. */
export interface FeatureColumn {
  name: string;
  index: number;
  kind: 'numeric' | 'categorical' | 'date' | 'array';
  /** Array columns: the declared shape of every cell. */
  shape?: number[];
  scale: ScaleMode;
  encoding: 'oneHot' | 'index';
  missing: MissingMode;
  /** Numeric columns: a range supplied in the spec (scaling uses it; values are clipped into it). */
  range?: [number, number];
  /** Categorical columns: a vocabulary supplied in the spec. */
  categories?: string[];
}

const dataError = (message: string) => new UnrecoverableError('INVALID_DATA', message);

type TextColumn = { kind: 'text'; values: (string | null)[] };

/** Whether most of a text column's values are dates (then it is a date column, and the rest are errors). */
const mostlyDates = (values: string[]) =>
  values.length > 0 && values.filter((v) => parseIsoDate(v) !== undefined).length >= values.length / 2;

/** The kind of a scalar column: from the declared `type`, else from its values. */
function scalarKind(
  name: string,
  data: Table['data'][number] | undefined,
  type: 'numeric' | 'categorical' | 'date' | undefined,
): FeatureColumn['kind'] {
  if (type === 'categorical') return 'categorical';
  if (data?.kind !== 'text') {
    if (type === 'date')
      throw dataError(
        `Column "${name}" is declared a date (preprocessing.columns["${name}"].type) but holds numbers; dates are ISO-8601 text like 2024-03-01.`,
      );
    return 'numeric';
  }
  const present = (data as TextColumn).values.filter((v): v is string => v !== null);
  const firstWhere = (bad: (v: string) => boolean) =>
    (data as TextColumn).values.findIndex((v) => v !== null && bad(v));
  if (type === 'date' || (type === undefined && mostlyDates(present))) {
    const row = firstWhere((v) => parseIsoDate(v) === undefined);
    if (row >= 0) {
      const why = type === 'date' ? 'the column is declared a date' : "the column's other values are dates";
      throw dataError(
        `Row ${row + 1}, column "${name}": "${data.values[row]}" is not an ISO-8601 date (${why}; set preprocessing.columns["${name}"].type to "categorical" to treat it as categories).`,
      );
    }
    return 'date';
  }
  const numeric = present.filter((v) => v.trim() !== '' && Number.isFinite(Number(v))).length;
  if (type === 'numeric' || numeric >= present.length / 2) {
    const row = firstWhere((v) => !Number.isFinite(Number(v)));
    const value = data.values[row];
    const looksDate = value !== null && value !== undefined && parseIsoDate(value) !== undefined;
    const why =
      type === 'numeric'
        ? `the column is declared numeric in preprocessing.columns["${name}"].type${looksDate ? `; it looks like a date: use type "date"` : ''}`
        : `the column's other values are numbers; set preprocessing.columns["${name}"].type to "categorical" to treat it as categories`;
    throw dataError(`Row ${row + 1}, column "${name}": "${value}" is not a number (${why}).`);
  }
  return 'categorical';
}

/** Reads the spec's per-column options with the defaults, and the column's kind from the data. */
export function describeFeatures(
  table: Table,
  features: { name: string; shape?: number[] }[],
  spec: PreprocessingSpec,
): FeatureColumn[] {
  const described = features.map(({ name, shape }) => {
    const index = table.columns.indexOf(name);
    if (index < 0)
      throw dataError(
        `The dataset has no feature column "${name}"; its columns are ${table.columns.join(', ')}.`,
      );
    const options = spec.columns[name] ?? {};
    const data = table.data[index];
    let kind: FeatureColumn['kind'];
    if (shape) {
      if (data?.kind !== 'array')
        throw dataError(`Column "${name}" is declared with a shape but its cells are not arrays.`);
      kind = 'array';
    } else if (data?.kind === 'array') {
      throw dataError(
        `Column "${name}" holds arrays: declare it as {"name": "${name}", "shape": [...]} in dataset.features.`,
      );
    } else {
      kind = scalarKind(name, data, options.type);
    }
    // Dates become numbers in the thousands (days since 1970): standardized unless the spec says how.
    const scale = options.scale ?? (kind === 'date' && spec.scale === 'none' ? 'standardize' : spec.scale);
    return {
      name,
      index,
      kind,
      ...(shape ? { shape } : {}),
      scale,
      encoding: options.categorical ?? spec.categorical,
      missing: options.missing ?? spec.missing,
      ...(options.range && kind === 'numeric' ? { range: options.range } : {}),
      ...(options.categories && kind === 'categorical' ? { categories: options.categories } : {}),
    };
  });
  if (described.some((f) => f.kind === 'array') && described.length > 1) {
    throw dataError('An array feature (image or sequence) must be the only feature of a job.');
  }
  return described;
}

const isMissingAt = (table: Table, column: number, row: number): boolean => {
  const data = table.data[column];
  if (!data) return true;
  if (data.kind === 'numeric') return Number.isNaN(data.values[row] as number);
  return data.values[row] === null;
};

/** The `drop` rule's outcome: the rows kept, and how many were left out for a missing value. */
export function applyMissingRules(table: Table, features: FeatureColumn[], rows: Int32Array): Int32Array {
  const kept: number[] = [];
  for (const r of rows) {
    let drop = false;
    for (const f of features) {
      if (!isMissingAt(table, f.index, r)) continue;
      if (f.missing === 'error') {
        throw dataError(
          `Row ${r + 1}, column "${f.name}": the value is missing (set preprocessing.missing to "drop", "mean" or "mostFrequent" to handle it).`,
        );
      }
      if (f.missing === 'drop') drop = true;
    }
    if (!drop) kept.push(r);
  }
  return Int32Array.from(kept);
}

const textAt = (table: Table, column: number, row: number): string | null => {
  const data = table.data[column];
  if (!data) return null;
  if (data.kind === 'text') return data.values[row] ?? null;
  if (data.kind === 'numeric') {
    const v = data.values[row] as number;
    return Number.isNaN(v) ? null : String(v);
  }
  return null;
};

function mostFrequent(values: Iterable<string>): string | undefined {
  const counts = new Map<string, number>();
  let best: string | undefined;
  let bestCount = 0;
  for (const v of values) {
    const c = (counts.get(v) ?? 0) + 1;
    counts.set(v, c);
    if (c > bestCount || (c === bestCount && best !== undefined && v < best)) {
      best = v;
      bestCount = c;
    }
  }
  return best;
}

/** `[offset, divisor]` of a scale mode from the values' statistics. */
/** Offset and divisor from a supplied range: `minMax` maps it onto [0, 1], `standardize` onto [−1, 1]. */
function suppliedScaling(scale: ScaleMode, [lo, hi]: [number, number]): [number, number] {
  if (scale === 'minMax') return [lo, hi - lo];
  if (scale === 'standardize') return [(lo + hi) / 2, (hi - lo) / 2];
  return [0, 1];
}

function scaleOf(
  scale: ScaleMode,
  stats: { n: number; mean: number; std: number; min: number; max: number },
) {
  if (scale === 'standardize') return [stats.mean, stats.std > 0 ? stats.std : 1] as const;
  if (scale === 'minMax')
    return [
      stats.min === Infinity ? 0 : stats.min,
      stats.max > stats.min ? stats.max - stats.min : 1,
    ] as const;
  return [0, 1] as const;
}

function statsOf(values: number[]) {
  let sum = 0;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const n = values.length;
  const mean = n ? sum / n : 0;
  let sq = 0;
  for (const v of values) sq += (v - mean) ** 2;
  return { n, mean, std: n ? Math.sqrt(sq / n) : 0, min, max };
}

/** The day of a date column's cell, or `null` (days since the epoch). */
const dayAt = (table: Table, column: number, row: number): number | null => {
  const text = textAt(table, column, row);
  const ms = text === null ? undefined : parseIsoDate(text);
  return ms === undefined ? null : ms / 86_400_000;
};

function fitDate(table: Table, f: FeatureColumn, rows: Int32Array): FittedColumn {
  const days: number[] = [];
  for (const r of rows) {
    const d = dayAt(table, f.index, r);
    if (d !== null) days.push(d);
  }
  const partValues = DATE_PARTS.map(() => [] as number[]);
  for (const d of days) {
    const date = new Date(d * 86_400_000);
    const parts = [d, date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDay()];
    parts.forEach((p, i) => {
      partValues[i]?.push(p);
    });
  }
  const scales = partValues.map((values) => scaleOf(f.scale, statsOf(values)));
  const mean = statsOf(days).mean;
  const common = f.missing === 'mean' || f.missing === 'mostFrequent';
  const fill =
    f.missing === 'mean'
      ? mean
      : f.missing === 'mostFrequent'
        ? Number(mostFrequent(days.map(String)) ?? mean)
        : undefined;
  return {
    name: f.name,
    kind: 'date',
    scale: f.scale,
    parts: [...DATE_PARTS],
    offsets: scales.map((s) => s[0]),
    divisors: scales.map((s) => s[1]),
    ...(common && fill !== undefined ? { fill } : {}),
    missing: f.missing,
    mean,
  };
}

function fitColumn(table: Table, f: FeatureColumn, rows: Int32Array): FittedColumn {
  if (f.kind === 'array') {
    const size = (f.shape as number[]).reduce((a, b) => a * b, 1);
    const data = table.data[f.index];
    if (data?.kind === 'array') {
      for (const r of rows) {
        const cell = data.values[r];
        if (cell && cell.length !== size) {
          throw dataError(
            `Row ${r + 1}, column "${f.name}": the array has ${cell.length} numbers; shape [${f.shape?.join(', ')}] needs ${size}.`,
          );
        }
      }
    }
    return { name: f.name, kind: 'array', shape: f.shape as number[] };
  }
  if (f.kind === 'date') return fitDate(table, f, rows);
  if (f.kind === 'categorical') {
    const seen: string[] = [];
    for (const r of rows) {
      const v = textAt(table, f.index, r);
      if (v !== null) seen.push(v);
    }
    // A supplied vocabulary keeps the rows out of the encoding (private training); else the values seen.
    const categories = f.categories ? [...f.categories] : [...new Set(seen)].sort();
    const common = mostFrequent(seen);
    const fill = f.missing === 'mean' || f.missing === 'mostFrequent' ? common : undefined;
    return {
      name: f.name,
      kind: 'categorical',
      encoding: f.encoding,
      categories,
      ...(fill !== undefined ? { fill } : {}),
      missing: f.missing,
      // A supplied vocabulary keeps the rows out of what is published, the most frequent value too.
      ...(common !== undefined && !f.categories ? { mostFrequent: common } : {}),
    };
  }
  const data = table.data[f.index];
  const values = data?.kind === 'numeric' ? data.values : new Float64Array(0);
  const present: number[] = [];
  for (const r of rows) {
    const v = values[r] as number;
    if (!Number.isNaN(v)) present.push(v);
  }
  const stats = statsOf(present);
  const fill =
    f.missing === 'mean'
      ? stats.mean
      : f.missing === 'mostFrequent'
        ? Number(mostFrequent(present.map(String)) ?? stats.mean)
        : undefined;
  const [offset, divisor] = f.range ? suppliedScaling(f.scale, f.range) : scaleOf(f.scale, stats);
  return {
    name: f.name,
    kind: 'numeric',
    scale: f.scale,
    offset,
    divisor,
    ...(f.range ? { range: f.range } : {}),
    ...(fill !== undefined ? { fill } : {}),
    missing: f.missing,
    // A supplied range keeps the rows out of what is published: its midpoint stands in for the mean.
    mean: f.range ? (f.range[0] + f.range[1]) / 2 : stats.mean,
  };
}

/** Fits every column's transform on `rows` (the training rows) only. */
export function fitPreprocessing(
  table: Table,
  features: FeatureColumn[],
  rows: Int32Array,
  about: Pick<FittedPreprocessing, 'source' | 'excluded'> = {},
): FittedPreprocessing {
  const columns = features.map((f) => fitColumn(table, f, rows));
  const array = columns.find((c) => c.kind === 'array');
  const inputShape = array?.kind === 'array' ? array.shape : [columns.reduce((s, c) => s + widthOf(c), 0)];
  return {
    version: 1,
    columns,
    inputShape,
    ...(about.source ? { source: about.source } : {}),
    ...(about.excluded?.length ? { excluded: about.excluded } : {}),
  };
}

/** A table cell as the value `encodeValue` takes (the same reading the predict route gives a raw cell). */
function tableCell(table: Table, feature: FeatureColumn, column: FittedColumn, r: number): CellValue {
  const data = table.data[feature.index];
  if (column.kind === 'array') return data?.kind === 'array' ? (data.values[r] ?? null) : null;
  if (column.kind === 'numeric') {
    const v = data?.kind === 'numeric' ? (data.values[r] as number) : Number.NaN;
    return Number.isNaN(v) ? null : v;
  }
  if (column.kind === 'date') {
    const d = dayAt(table, feature.index, r);
    return d === null ? null : d * 86_400_000;
  }
  return textAt(table, feature.index, r);
}

/** Encodes `rows` of the table with fitted transforms into one Float32Array, row-major. */
export function encodeRows(
  table: Table,
  features: FeatureColumn[],
  fitted: FittedPreprocessing,
  rows: Int32Array,
): Float32Array {
  const width = fitted.inputShape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(rows.length * width);
  let offset = 0;
  fitted.columns.forEach((column, c) => {
    const feature = features[c] as FeatureColumn;
    const w = widthOf(column);
    rows.forEach((r, i) => {
      const value = tableCell(table, feature, column, r);
      if (column.kind === 'array' && value !== null && (value as Float32Array).length !== w) {
        // Every set's rows are checked here, not only the training rows the transform was fitted on.
        throw dataError(
          `Row ${r + 1}, column "${column.name}": the array has ${(value as Float32Array).length} numbers; shape [${column.shape.join(', ')}] needs ${w}.`,
        );
      }
      if (column.kind === 'array' && value === null) return; // a missing array reads as zeros
      try {
        encodeValue(column, value, out, i * width + offset);
      } catch (error) {
        if (error instanceof CellError)
          throw dataError(`Row ${r + 1}, column "${column.name}": ${error.message}`);
        throw error;
      }
    });
    offset += w;
  });
  return out;
}
