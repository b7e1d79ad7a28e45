/**
 * From a parsed table and a job spec to what training needs: the feature columns, the targets, the
 * classes, and the seeded splits (test, hold-out or k-fold). Pure: no TensorFlow.js.
 */

import { isDecimal, parseIsoDate } from '../datasets/cells.ts';
import { cellAt, type Table } from '../datasets/tabular.ts';
import type { JobSpec } from '../jobs/job-spec.ts';
import { UnrecoverableError } from '../platform/errors.ts';
import { seededRng } from '../platform/random.ts';
import { applyMissingRules, describeFeatures, type FeatureColumn } from './preprocess.ts';
import { groupsOf, holdout, kfold } from './splits.ts';

export interface PreparedData {
  table: Table;
  features: FeatureColumn[];
  /** Per table row: the class index (classification) or the target (regression). */
  y: Float32Array;
  /** Classification only, in output-unit order. */
  classes?: (string | number)[];
  /** Rows kept after the missing-value rules. */
  rows: Int32Array;
  /** Rows set aside for `report.test`. */
  testRows: Int32Array;
  /** Rows the delivered model trains on. */
  trainRows: Int32Array;
  /** Hold-out validation rows (empty for `kfold` and `none`). */
  validationRows: Int32Array;
  /** k-fold: each fold's training and validation rows. */
  folds?: { train: Int32Array; validation: Int32Array }[];
  /** Columns of the file the model does not use, and why (the label is not listed). */
  excluded: { name: string; reason: string }[];
  /** Rows left out: without a label (`drop` on the label), or with a missing feature under `drop`. */
  dropped: { missingLabel: number; missingValues: number };
  /** What a person should know about the data (an identifier left out…), for the job's warnings. */
  warnings: string[];
  /** The file's format (how its text cells were read), recorded in the fitted preprocessing. */
  source?: 'csv' | 'jsonl';
}

const dataError = (message: string) => new UnrecoverableError('INVALID_DATA', message);
const show = (v: unknown) =>
  typeof v === 'string' ? `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"` : String(v);

/** Classes sorted numerically when every label is a number, else as strings. */
export function sortClasses(values: Iterable<string | number>): (string | number)[] {
  const unique = [...new Set(values)];
  if (unique.every((v) => typeof v === 'number')) return (unique as number[]).sort((a, b) => a - b);
  return unique.map(String).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Picks the feature columns: the listed ones, or every column but the label, the excluded and the identifiers. */
function chooseFeatures(table: Table, spec: JobSpec) {
  const { label, exclude = [] } = spec.dataset;
  const excluded: { name: string; reason: string }[] = [];
  const warnings: string[] = [];
  const missing = exclude.filter((c) => !table.columns.includes(c));
  if (missing.length)
    throw dataError(
      `dataset.exclude names ${missing.map((m) => `"${m}"`).join(', ')}, which the dataset does not have; its columns are ${table.columns.join(', ')}.${delimiterHint(table.columns)}`,
    );
  for (const name of exclude) excluded.push({ name, reason: 'dataset.exclude' });
  const listed = spec.dataset.features?.map((f) =>
    typeof f === 'string' ? { name: f } : { name: f.name, shape: f.shape },
  );
  let featureSpecs =
    listed ?? table.columns.filter((c) => c !== label && !exclude.includes(c)).map((name) => ({ name }));
  for (const f of featureSpecs) {
    if (spec.preprocessing.columns[f.name]?.type) continue; // a declared type keeps the column
    const why = identifierReason(table, f.name);
    if (!why) continue;
    if (listed) {
      warnings.push(
        `Column "${f.name}" looks like an identifier (${why}); it is used because dataset.features names it, but a model rarely learns anything general from one.`,
      );
    } else {
      excluded.push({ name: f.name, reason: `identifier: ${why}` });
      warnings.push(
        `Column "${f.name}" looks like an identifier (${why}) and was left out of the inputs; set preprocessing.columns["${f.name}"].type to "categorical" or "numeric" to use it.`,
      );
    }
  }
  if (!listed) featureSpecs = featureSpecs.filter((f) => !excluded.some((e) => e.name === f.name));
  return { featureSpecs, excluded, warnings };
}

export function prepareData(table: Table, spec: JobSpec): PreparedData {
  const { label } = spec.dataset;
  const labelIndex = table.columns.indexOf(label);
  if (labelIndex < 0)
    throw dataError(
      `The dataset has no label column "${label}"; its columns are ${table.columns.join(', ')}.${delimiterHint(table.columns)}`,
    );
  const { featureSpecs, excluded, warnings } = chooseFeatures(table, spec);
  if (featureSpecs.length === 0) throw dataError('The dataset has no feature columns besides the label.');
  if (featureSpecs.some((f) => f.name === label))
    throw dataError(`The label "${label}" cannot also be a feature.`);
  const features = describeFeatures(table, featureSpecs, spec.preprocessing);

  // Rows: missing features by their rule, missing labels dropped only when the label's rule says so.
  const labelMissing = spec.preprocessing.columns[label]?.missing ?? spec.preprocessing.missing;
  const all = Int32Array.from({ length: table.rowCount }, (_, i) => i);
  const labelled: number[] = [];
  for (const r of all) {
    const v = cellAt(table, labelIndex, r);
    if (v !== null) labelled.push(r);
    else if (labelMissing !== 'drop')
      throw dataError(
        `Row ${r + 1}, column "${label}": the label is missing (set preprocessing.columns["${label}"].missing to "drop" to leave out rows without a label).`,
      );
  }
  const rows = applyMissingRules(table, features, Int32Array.from(labelled));
  const dropped = {
    missingLabel: table.rowCount - labelled.length,
    missingValues: labelled.length - rows.length,
  };
  if (dropped.missingLabel + dropped.missingValues > 0) {
    warnings.push(
      `${dropped.missingLabel + dropped.missingValues} of ${table.rowCount} rows were left out (${dropped.missingLabel} without a label, ${dropped.missingValues} with a missing value under "drop").`,
    );
  }
  if (rows.length < 2)
    throw dataError(
      `The dataset has ${rows.length} usable row${rows.length === 1 ? '' : 's'}; training needs at least 2.`,
    );

  const y = new Float32Array(table.rowCount).fill(Number.NaN);
  let classes: (string | number)[] | undefined;
  if (spec.task === 'classification') {
    const labels = Array.from(rows, (r) => {
      const v = cellAt(table, labelIndex, r);
      if (Array.isArray(v)) throw dataError(`Row ${r + 1}, column "${label}": a label cannot be an array.`);
      return typeof v === 'boolean' ? String(v) : (v as string | number);
    });
    classes = sortClasses(labels);
    if (classes.length < 2)
      throw dataError(
        `Column "${label}" has only one class (${show(classes[0])}); classification needs at least two.`,
      );
    if (classes.length > 1000)
      throw dataError(`Column "${label}" has ${classes.length} classes; at most 1000 are supported.`);
    const numeric = typeof classes[0] === 'number';
    const index = new Map(classes.map((c, i) => [c, i] as const));
    rows.forEach((r, i) => {
      y[r] = index.get(numeric ? (labels[i] as number) : String(labels[i])) as number;
    });
  } else {
    for (const r of rows) {
      const v = cellAt(table, labelIndex, r);
      // A column with one text cell is stored as text: its other cells are still numbers as text.
      const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : Number.NaN;
      if (!Number.isFinite(n)) {
        throw dataError(
          `Row ${r + 1}, column "${label}": ${show(v)} is not a number; regression needs a numeric label.`,
        );
      }
      y[r] = n;
    }
  }

  // Splits, all from the job's seed: test first, then hold-out or k-fold on the rest.
  const rng = seededRng(spec.training.seed ^ 0x5eed);
  const classCount = classes?.length;
  let rest = rows;
  let testRows: Int32Array = new Int32Array(0);
  if (spec.training.testFraction !== undefined) {
    const split = holdout(groupsOf(rows, y, classCount), spec.training.testFraction, rng);
    rest = split.kept;
    testRows = split.heldOut;
    if (testRows.length === 0)
      throw dataError(
        `testFraction ${spec.training.testFraction} of ${rows.length} rows leaves no test rows.`,
      );
  }
  const v = spec.training.validation;
  const common = {
    table,
    features,
    y,
    ...(classes ? { classes } : {}),
    rows,
    testRows,
    excluded,
    dropped,
    warnings,
  };
  if (v.type === 'holdout') {
    const split = holdout(groupsOf(rest, y, classCount), v.fraction, rng);
    if (split.heldOut.length === 0) {
      throw dataError(
        `A validation fraction of ${v.fraction} of ${rest.length} rows leaves no validation rows; give more rows, a larger fraction, or validation {"type": "none"}.`,
      );
    }
    return { ...common, trainRows: split.kept, validationRows: split.heldOut };
  }
  if (v.type === 'kfold' && rest.length < v.k) {
    throw dataError(`k-fold with k = ${v.k} needs at least ${v.k} rows; the dataset has ${rest.length}.`);
  }
  return {
    ...common,
    trainRows: rest,
    validationRows: new Int32Array(0),
    ...(v.type === 'kfold' ? { folds: kfold(groupsOf(rest, y, classCount), v.k, rng) } : {}),
  };
}

/** Rows of which at least this many must be filled for a column to be judged an identifier. */
const MIN_ID_ROWS = 10;
/** A column of consecutive whole numbers is taken for a row number from this many rows. */
const MIN_ROW_NUMBERS = 50;
const ID_NAME = /^(id|key|uuid|guid|index|row_?(id|num|number)?)$|[_\s.-](id|key|uuid)$/i;
/** `PassengerId`, `customerID` (a capital I: `paid` is not one). */
const CAMEL_ID = /[a-z0-9](Id|ID)$/;

/**
 * Why a column looks like an identifier, or `undefined`: a text column whose values are (nearly)
 * all different, a column of distinct integers named like an id (`id`, `customer_id`, `PassengerId`),
 * or one holding each integer of a range once (a row number, from 50 rows).
 */
export function identifierReason(table: Table, name: string): string | undefined {
  const data = table.data[table.columns.indexOf(name)];
  if (!data || data.kind === 'array') return undefined;
  if (data.kind === 'text') {
    const present = data.values.filter((v): v is string => v !== null);
    const m = present.length;
    if (m < MIN_ID_ROWS || present.every((v) => parseIsoDate(v) !== undefined)) return undefined;
    // Mostly numbers: a numeric column with stray text, which its encoding reports as INVALID_DATA.
    if (present.filter((v) => isDecimal(v.trim())).length * 2 >= m) return undefined;
    const distinct = new Set(present).size;
    if (distinct === m || (m >= 20 && distinct >= 0.9 * m))
      return `${distinct} different values in ${m} rows`;
    return undefined;
  }
  const present = Array.from(data.values).filter((v) => !Number.isNaN(v));
  if (present.length < MIN_ID_ROWS) return undefined;
  if (!present.every(Number.isInteger) || new Set(present).size !== present.length) return undefined;
  if (ID_NAME.test(name) || CAMEL_ID.test(name))
    return `a different whole number in each of ${present.length} rows`;
  // A row number: every integer from the smallest to the largest once (a file saved with its index).
  let [low, high] = [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
  for (const v of present) [low, high] = [Math.min(low, v), Math.max(high, v)];
  if (present.length >= MIN_ROW_NUMBERS && high - low + 1 === present.length)
    return `the numbers ${low} to ${high}, once each: a row number`;
  return undefined;
}

/** A hint for a file whose header reads as one column: it is probably not separated by commas. */
export function delimiterHint(columns: string[]): string {
  if (columns.length !== 1) return '';
  const header = columns[0] ?? '';
  const found = [';', '\t', '|'].find((d) => header.includes(d));
  if (!found) return '';
  const name = found === ';' ? 'semicolons' : found === '\t' ? 'tabs' : 'vertical bars';
  return ` The header looks separated by ${name}, not commas: descent reads comma-separated CSV (RFC 4180); save the file with commas (or as JSON Lines).`;
}
