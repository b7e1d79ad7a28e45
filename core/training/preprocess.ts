/**
 * Feature preprocessing declared in the spec, fitted on training rows only (no leakage into
 * validation) and saved with the model, so that a prediction applies exactly the same transform.
 */

import type { Table } from '../datasets/tabular.ts';
import type { PreprocessingSpec } from '../jobs/job-spec.ts';
import { UnrecoverableError } from '../platform/errors.ts';

export type ScaleMode = 'none' | 'standardize' | 'minMax';
export type MissingMode = 'error' | 'drop' | 'mean' | 'mostFrequent';

/** A feature column as the encoder sees it: where it sits in the table and how to read it. */
export interface FeatureColumn {
  name: string;
  index: number;
  kind: 'numeric' | 'categorical' | 'array';
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

/**
 * A fitted column: `x' = (clip(x) − offset) / divisor` (clipped into `range` when the spec supplied
 * one), a vocabulary, or an array passed through.
 */
export type FittedColumn =
  | {
      name: string;
      kind: 'numeric';
      scale: ScaleMode;
      offset: number;
      divisor: number;
      fill?: number;
      range?: [number, number];
    }
  | { name: string; kind: 'categorical'; encoding: 'oneHot' | 'index'; categories: string[]; fill?: string }
  | { name: string; kind: 'array'; shape: number[] };

export interface FittedPreprocessing {
  version: 1;
  columns: FittedColumn[];
  /** Shape of one encoded row, the model's input shape. */
  inputShape: number[];
}

/** Number of encoded values a fitted column contributes. */
export function widthOf(column: FittedColumn): number {
  if (column.kind === 'numeric') return 1;
  if (column.kind === 'array') return column.shape.reduce((a, b) => a * b, 1);
  return column.encoding === 'oneHot' ? column.categories.length : 1;
}

const dataError = (message: string) => new UnrecoverableError('INVALID_DATA', message);

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
      kind = options.type === 'categorical' || data?.kind === 'text' ? 'categorical' : 'numeric';
      if (data?.kind === 'text' && options.type !== 'categorical') {
        // Mostly numbers with a few words is a data error, not a categorical column.
        const values = data.values.filter((v): v is string => v !== null);
        const numeric = values.filter((v) => v.trim() !== '' && Number.isFinite(Number(v))).length;
        if (options.type === 'numeric' || numeric >= values.length / 2) {
          const row = data.values.findIndex((v) => v !== null && !Number.isFinite(Number(v)));
          throw dataError(
            `Row ${row + 1}, column "${name}": "${data.values[row]}" is not a number (the column's other values are numbers; set preprocessing.columns["${name}"].type to "categorical" to treat it as categories).`,
          );
        }
      }
    }
    return {
      name,
      index,
      kind,
      ...(shape ? { shape } : {}),
      scale: options.scale ?? spec.scale,
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

/** Rows to keep after the `drop` missing-value rule, and an error for the first missing cell under `error`. */
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

/** Offset and divisor from a supplied range: `minMax` maps it onto [0, 1], `standardize` onto [−1, 1]. */
function suppliedScaling(scale: ScaleMode, [lo, hi]: [number, number]): [number, number] {
  if (scale === 'minMax') return [lo, hi - lo];
  if (scale === 'standardize') return [(lo + hi) / 2, (hi - lo) / 2];
  return [0, 1];
}

/** A numeric value clipped into the column's supplied range, if it has one. */
const clipped = (v: number, range: [number, number] | undefined): number =>
  range ? Math.min(range[1], Math.max(range[0], v)) : v;

/** Fits every column's transform on `rows` (the training rows) only. */
export function fitPreprocessing(
  table: Table,
  features: FeatureColumn[],
  rows: Int32Array,
): FittedPreprocessing {
  const columns: FittedColumn[] = features.map((f) => {
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
    if (f.kind === 'categorical') {
      const seen: string[] = [];
      for (const r of rows) {
        const v = textAt(table, f.index, r);
        if (v !== null) seen.push(v);
      }
      const categories = f.categories ? [...f.categories] : [...new Set(seen)].sort();
      const fill = f.missing === 'mean' || f.missing === 'mostFrequent' ? mostFrequent(seen) : undefined;
      return {
        name: f.name,
        kind: 'categorical',
        encoding: f.encoding,
        categories,
        ...(fill !== undefined ? { fill } : {}),
      };
    }
    const data = table.data[f.index];
    const values = data?.kind === 'numeric' ? data.values : new Float64Array(0);
    let n = 0;
    let sum = 0;
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    const present: string[] = [];
    for (const r of rows) {
      const v = values[r] as number;
      if (Number.isNaN(v)) continue;
      n++;
      sum += v;
      if (v < min) min = v;
      if (v > max) max = v;
      if (f.missing === 'mostFrequent') present.push(String(v));
    }
    const mean = n ? sum / n : 0;
    let sq = 0;
    if (f.scale === 'standardize')
      for (const r of rows) if (!Number.isNaN(values[r] as number)) sq += ((values[r] as number) - mean) ** 2;
    const std = n ? Math.sqrt(sq / n) : 0;
    const fill =
      f.missing === 'mean'
        ? mean
        : f.missing === 'mostFrequent'
          ? Number(mostFrequent(present) ?? mean)
          : undefined;
    const [offset, divisor] = f.range
      ? suppliedScaling(f.scale, f.range)
      : f.scale === 'standardize'
        ? [mean, std > 0 ? std : 1]
        : f.scale === 'minMax'
          ? [min === Infinity ? 0 : min, max > min ? max - min : 1]
          : [0, 1];
    return {
      name: f.name,
      kind: 'numeric',
      scale: f.scale,
      offset,
      divisor,
      ...(fill !== undefined ? { fill } : {}),
      ...(f.range ? { range: f.range } : {}),
    };
  });
  const array = columns.find((c) => c.kind === 'array');
  const inputShape = array?.kind === 'array' ? array.shape : [columns.reduce((s, c) => s + widthOf(c), 0)];
  return { version: 1, columns, inputShape };
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
    const data = table.data[feature.index];
    const w = widthOf(column);
    rows.forEach((r, i) => {
      const base = i * width + offset;
      if (column.kind === 'array') {
        const cell = data?.kind === 'array' ? data.values[r] : null;
        if (cell && cell.length !== w) {
          // Every set's rows are checked here, not only the training rows the transform was fitted on.
          throw dataError(
            `Row ${r + 1}, column "${column.name}": the array has ${cell.length} numbers; shape [${column.shape.join(', ')}] needs ${w}.`,
          );
        }
        if (cell) out.set(cell, base);
      } else if (column.kind === 'numeric') {
        let v = data?.kind === 'numeric' ? (data.values[r] as number) : Number.NaN;
        if (Number.isNaN(v)) v = column.fill ?? 0;
        out[base] = (clipped(v, column.range) - column.offset) / column.divisor;
      } else {
        const v = textAt(table, feature.index, r) ?? column.fill ?? null;
        const k = v === null ? -1 : column.categories.indexOf(v);
        if (column.encoding === 'index') out[base] = k + 1;
        else if (k >= 0) out[base + k] = 1;
      }
    });
    offset += w;
  });
  return out;
}

/** Encodes one raw record (column → value) the way the model saw its training rows. */
export function encodeRecord(fitted: FittedPreprocessing, record: Record<string, unknown>): Float32Array {
  const width = fitted.inputShape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(width);
  let offset = 0;
  for (const column of fitted.columns) {
    const raw = record[column.name];
    if (column.kind === 'array') {
      if (Array.isArray(raw)) out.set((raw as unknown[]).flat(4) as number[], offset);
    } else if (column.kind === 'numeric') {
      const v =
        typeof raw === 'number'
          ? raw
          : raw === null || raw === undefined || raw === ''
            ? Number.NaN
            : Number(raw);
      out[offset] =
        (clipped(Number.isNaN(v) ? (column.fill ?? 0) : v, column.range) - column.offset) / column.divisor;
    } else {
      const v = raw === null || raw === undefined || raw === '' ? (column.fill ?? null) : String(raw);
      const k = v === null ? -1 : column.categories.indexOf(v);
      if (column.encoding === 'index') out[offset] = k + 1;
      else if (k >= 0) out[offset + k] = 1;
    }
    offset += widthOf(column);
  }
  return out;
}
