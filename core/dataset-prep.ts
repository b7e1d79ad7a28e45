/**
 * From a parsed table and a job spec to numeric training data: feature matrix, targets, classes and
 * the seeded (stratified) validation split. Pure: no TensorFlow.js.
 */
import { UnrecoverableError } from './errors.ts';
import type { JobSpec } from './job-spec.ts';
import { seededRng, shuffleInPlace } from './random.ts';
import type { Cell, Table } from './tabular.ts';

export interface PreparedData {
  features: string[];
  /** Row-major, `rows × features.length`. */
  x: Float32Array;
  /** Regression: the target; classification: the class index of each row. */
  y: Float32Array;
  rows: number;
  /** Classification only, in output-unit order. */
  classes?: (string | number)[];
  trainRows: Int32Array;
  validationRows: Int32Array;
}

const dataError = (message: string) => new UnrecoverableError('INVALID_DATA', message);
const show = (v: Cell) =>
  typeof v === 'string' ? `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"` : String(v);

/** Classes sorted numerically when every label is a number, else as strings. */
export function sortClasses(values: Iterable<string | number>): (string | number)[] {
  const unique = [...new Set(values)];
  if (unique.every((v) => typeof v === 'number')) return (unique as number[]).sort((a, b) => a - b);
  return unique.map(String).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export function prepareData(table: Table, spec: JobSpec): PreparedData {
  const { label } = spec.dataset;
  const labelIndex = table.columns.indexOf(label);
  if (labelIndex < 0)
    throw dataError(
      `The dataset has no label column "${label}"; its columns are ${table.columns.join(', ')}.`,
    );
  const features = spec.dataset.features ?? table.columns.filter((c) => c !== label);
  if (features.length === 0) throw dataError('The dataset has no feature columns besides the label.');
  const featureIndex = features.map((name) => {
    const i = table.columns.indexOf(name);
    if (i < 0)
      throw dataError(
        `The dataset has no feature column "${name}"; its columns are ${table.columns.join(', ')}.`,
      );
    if (i === labelIndex) throw dataError(`The label "${label}" cannot also be a feature.`);
    return i;
  });
  const rows = table.rows.length;
  if (rows < 2)
    throw dataError(`The dataset has ${rows} data row${rows === 1 ? '' : 's'}; training needs at least 2.`);

  const x = new Float32Array(rows * features.length);
  table.rows.forEach((row, r) => {
    featureIndex.forEach((c, f) => {
      const v = row[c] ?? null;
      let n: number;
      if (typeof v === 'number') n = v;
      else if (typeof v === 'boolean') n = v ? 1 : 0;
      else if (v === null) throw dataError(`Row ${r + 1}, column "${features[f]}": the value is missing.`);
      else throw dataError(`Row ${r + 1}, column "${features[f]}": ${show(v)} is not a number.`);
      if (!Number.isFinite(n))
        throw dataError(`Row ${r + 1}, column "${features[f]}": ${show(v)} is not a finite number.`);
      x[r * features.length + f] = n;
    });
  });

  const y = new Float32Array(rows);
  let classes: (string | number)[] | undefined;
  const labels = table.rows.map((row, r) => {
    const v = row[labelIndex] ?? null;
    if (v === null) throw dataError(`Row ${r + 1}, column "${label}": the label is missing.`);
    return v;
  });
  if (spec.task === 'classification') {
    const normal = labels.map((v) => (typeof v === 'boolean' ? String(v) : v));
    classes = sortClasses(normal);
    if (classes.length < 2)
      throw dataError(
        `Column "${label}" has only one class (${show(classes[0] ?? null)}); classification needs at least two.`,
      );
    if (classes.length > 1000)
      throw dataError(`Column "${label}" has ${classes.length} classes; at most 1000 are supported.`);
    const numeric = typeof classes[0] === 'number';
    const index = new Map(classes.map((c, i) => [c, i] as const));
    normal.forEach((v, r) => {
      y[r] = index.get(numeric ? (v as number) : String(v)) as number;
    });
  } else {
    labels.forEach((v, r) => {
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw dataError(
          `Row ${r + 1}, column "${label}": ${show(v)} is not a number; regression needs a numeric label.`,
        );
      y[r] = v;
    });
  }

  const { trainRows, validationRows } = split(spec, y, rows, classes?.length);
  return { features, x, y, rows, ...(classes ? { classes } : {}), trainRows, validationRows };
}

/** Seeded hold-out split; for classification each class is split in the same proportion. */
function split(spec: JobSpec, y: Float32Array, rows: number, classCount?: number) {
  const v = spec.training.validation;
  if (v.type === 'none')
    return { trainRows: Int32Array.from({ length: rows }, (_, i) => i), validationRows: new Int32Array(0) };
  const rng = seededRng(spec.training.seed ^ 0x5eed);
  const groups: number[][] = classCount ? Array.from({ length: classCount }, () => []) : [[]];
  for (let r = 0; r < rows; r++) (groups[classCount ? (y[r] as number) : 0] as number[]).push(r);
  const train: number[] = [];
  const validation: number[] = [];
  for (const group of groups) {
    shuffleInPlace(group, rng);
    const take = Math.min(Math.round(group.length * v.fraction), group.length - 1);
    validation.push(...group.slice(0, Math.max(take, 0)));
    train.push(...group.slice(Math.max(take, 0)));
  }
  if (validation.length === 0)
    throw dataError(
      `A validation fraction of ${v.fraction} of ${rows} rows leaves no validation rows; give more rows, a larger fraction, or validation {"type": "none"}.`,
    );
  train.sort((a, b) => a - b);
  validation.sort((a, b) => a - b);
  return { trainRows: Int32Array.from(train), validationRows: Int32Array.from(validation) };
}
