/**
 * The checks a job spec passes before it is stored, shared by `POST /jobs` and every trial of
 * `POST /sweeps`: the dataset (uploaded, a table, within its limits, with the columns named), the
 * fine-tuning base model, the model's shapes, and the resource estimate against the memory a job may
 * use. Each failure is a 4xx that says what to change.
 */

import type { z } from 'zod';
import {
  checkDataset,
  countRows,
  type DatasetMeta,
  type DatasetShape,
  findDatasetMeta,
  type RowCount,
} from '../datasets/dataset-service.ts';
import { BadRequestError, PayloadTooLargeError, ValidationError } from '../platform/errors.ts';
import { datasetKeys } from '../platform/keys.ts';
import { MAX_SPEC_BYTES } from '../platform/limits.ts';
import { jsonBytes } from '../platform/text.ts';
import type { Services } from '../services.ts';
import { privacyProblems } from '../training/privacy.ts';
import {
  describeEstimate,
  estimateResources,
  formatBytes,
  type ModelInput,
  walkModel,
} from '../training/resources.ts';
import type { JobSpec, jobSpec } from './job-spec.ts';

/** A spec as `POST /jobs` parses it (the seed may still be unset). */
type ParsedSpec = z.output<typeof jobSpec>;

/** A spec (or sweep request) must fit in a record that fits in a list response: a 413 past `MAX_SPEC_BYTES`. */
export function checkSpecSize(body: unknown, what: string): void {
  const bytes = jsonBytes(body);
  if (bytes > MAX_SPEC_BYTES) {
    throw new PayloadTooLargeError(
      `The ${what} is ${bytes} bytes as JSON; the most is ${MAX_SPEC_BYTES}. Name fewer features or columns (every column but the label is a feature by default).`,
      'SPEC_TOO_LARGE',
      { bytes, limit: MAX_SPEC_BYTES },
    );
  }
}

/** A fine-tuning base must be this tenant's SUCCEEDED job or uploaded model, and stand alone. */
export async function checkBaseModel(
  s: Services,
  tenant: string,
  spec: Pick<JobSpec, 'model'>,
): Promise<void> {
  const base = spec.model.baseModel;
  if (!base) {
    if (spec.model.freeze !== undefined || spec.model.replaceHead !== undefined) {
      throw new ValidationError(
        'model.freeze and model.replaceHead apply to fine-tuning: give model.baseModel too.',
      );
    }
    return;
  }
  if (spec.model.layers.length > 0) {
    throw new ValidationError(
      'model.layers cannot be combined with model.baseModel: the base model brings its layers (use replaceHead for a new output layer).',
    );
  }
  if ('jobId' in base) {
    const found = await s.lifecycle.jobs.find(tenant, base.jobId);
    if (found?.record.status !== 'SUCCEEDED') {
      throw new BadRequestError(
        `model.baseModel.jobId: no SUCCEEDED job ${base.jobId} in this account${found ? ` (it is ${found.record.status})` : ''}.`,
        { path: 'model.baseModel.jobId' },
        'UNKNOWN_BASE_MODEL',
      );
    }
    return;
  }
  const meta = await findDatasetMeta(s, tenant, base.datasetId);
  const keys = datasetKeys(tenant, base.datasetId);
  const uploaded =
    meta?.format === 'tfjs-model' &&
    (await s.store.head(keys.modelJson)) &&
    (await s.store.head(keys.weights));
  if (!uploaded) {
    throw new BadRequestError(
      `model.baseModel.datasetId: no uploaded tfjs-model dataset ${base.datasetId} in this account (create one with format "tfjs-model" and PUT model.json and weights.bin).`,
      { path: 'model.baseModel.datasetId' },
      'UNKNOWN_BASE_MODEL',
    );
  }
}

/**
 * The model's input as far as it is known before the data is parsed: a feature declared with a shape
 * gives it exactly; otherwise one value per feature column, a lower bound (one-hot encoding widens it).
 */
export function inputAtSubmit(spec: Pick<JobSpec, 'dataset'>, columns: string[] | undefined): ModelInput {
  const features = spec.dataset.features;
  const shaped = features?.find((f) => typeof f !== 'string');
  if (shaped && typeof shaped !== 'string') return { shape: shaped.shape, exact: true };
  const count = features?.length ?? (columns ? columns.filter((c) => c !== spec.dataset.label).length : 1);
  return { shape: [Math.max(1, count)], exact: false };
}

/** Rows of the training set after the test and hold-out splits (an estimate from the fractions). */
const trainRowsOf = (spec: Pick<ParsedSpec, 'training'>, rows: number): number => {
  const test = spec.training.testFraction ?? 0;
  const v = spec.training.validation;
  const holdout = v.type === 'holdout' ? v.fraction : 0;
  return Math.max(1, Math.floor(rows * (1 - test) * (1 - holdout)));
};

/**
 * The model's shapes and the resource estimate at submit, with what the data tells before parsing:
 * a 400 `INVALID_MODEL` for a model whose shapes can never work, a 413 `RESOURCE_LIMIT` for a job
 * whose estimate is over the memory a job may use.
 */
export function checkResources(
  s: Pick<Services, 'limits'>,
  spec: Pick<ParsedSpec, 'task' | 'dataset' | 'model' | 'training'>,
  shape: DatasetShape,
  rows: number,
): void {
  if (spec.model.baseModel) return; // its layers are the base model's: the trainer checks them
  const input = inputAtSubmit(spec, shape.columns);
  const outputUnits = spec.task === 'regression' || spec.training.loss === 'binaryCrossentropy' ? 1 : 2;
  const walk = walkModel(spec.model.layers, input, outputUnits);
  if (!walk.ok) {
    throw new BadRequestError(
      `model.layers: the model cannot work on this data: ${walk.problem}.`,
      { path: 'model.layers', input: input.shape },
      'INVALID_MODEL',
    );
  }
  const columns = shape.columns?.length ?? (spec.dataset.features?.length ?? 0) + 1;
  const estimate = estimateResources(
    { spec, input, outputUnits, rows, trainRows: trainRowsOf(spec, rows), tableBytes: rows * columns * 8 },
    walk,
  );
  const limit = s.limits.jobMemoryBytes;
  if (estimate.bytes.total > limit) {
    throw new PayloadTooLargeError(
      `This job needs an estimated ${formatBytes(estimate.bytes.total)} of memory, over the ${formatBytes(limit)} a job may use (setting DESCENT_JOB_MEMORY_BYTES): ${describeEstimate(estimate)}. Use fewer or narrower layers, a smaller batch, or fewer rows, or raise the setting.`,
      'RESOURCE_LIMIT',
      {
        estimateBytes: estimate.bytes,
        parameters: estimate.parameters,
        limitBytes: limit,
        setting: 'DESCENT_JOB_MEMORY_BYTES',
      },
    );
  }
}

/**
 * Private training (`training.privacy`): what the spec alone shows (`privacyProblems`), and a base job
 * whose model has a batchNormalization layer (one row's gradient would depend on the others).
 */
export async function checkPrivacy(s: Services, tenant: string, spec: JobSpec): Promise<void> {
  if (!spec.training.privacy) return;
  const problems = privacyProblems(spec);
  const base = spec.model.baseModel;
  if (base && 'jobId' in base) {
    const found = await s.lifecycle.jobs.find(tenant, base.jobId);
    const coupled = found?.record.spec.model.layers.findIndex((l) => l.type === 'batchNormalization') ?? -1;
    if (coupled >= 0)
      problems.push({
        path: 'model.baseModel.jobId',
        message: `the base model has a batchNormalization layer (its model.layers[${coupled}]), which cannot be trained with training.privacy: it normalises each row with statistics of the whole batch, so one row's gradient depends on the other rows.`,
      });
  }
  const first = problems[0];
  if (first)
    throw new ValidationError(
      `Invalid job spec: ${first.path}: ${first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : ''}`,
      { problems },
    );
}

/** Every check of a spec against its data and account (not the quotas); returns the dataset's row count. */
export async function checkJobSpec(
  s: Services,
  tenant: string,
  spec: JobSpec,
  meta: DatasetMeta,
): Promise<RowCount> {
  const shape = await checkDataset(s, tenant, spec, meta);
  await checkBaseModel(s, tenant, spec);
  await checkPrivacy(s, tenant, spec);
  const count = await countRows(s, tenant, meta);
  const { rows } = count;
  if (rows > s.limits.maxRows) {
    throw new PayloadTooLargeError(
      `Dataset ${meta.id} has ${rows} rows; a job may read at most ${s.limits.maxRows} (setting DESCENT_MAX_ROWS).`,
      'TOO_MANY_ROWS',
      { rows, limit: s.limits.maxRows },
    );
  }
  checkResources(s, spec, shape, rows);
  return count;
}
