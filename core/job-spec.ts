/**
 * The job spec: what a client submits to `POST /jobs`. The schema validates requests, fills in
 * defaults (the stored spec is the resolved one), and generates the OpenAPI document.
 */
import { z } from 'zod';
import { ULID_PATTERN } from './ids.ts';

const name = z.string().trim().min(1).max(128);
const columnName = z.string().min(1).max(256);
const positive = (max: number) => z.number().positive().max(max);

export const ACTIVATIONS = [
  'linear',
  'relu',
  'relu6',
  'elu',
  'selu',
  'sigmoid',
  'hardSigmoid',
  'tanh',
  'softmax',
  'softplus',
  'softsign',
  'swish',
  'mish',
] as const;
export const activation = z.enum(ACTIVATIONS);

const denseLayer = z.strictObject({
  type: z.literal('dense'),
  units: z.int().min(1).max(4096),
  activation: activation.default('relu'),
  useBias: z.boolean().default(true),
});

const dropoutLayer = z.strictObject({
  type: z.literal('dropout'),
  rate: z.number().min(0).lt(1),
});

export const hiddenLayer = z.discriminatedUnion('type', [denseLayer, dropoutLayer]);
export type HiddenLayer = z.infer<typeof hiddenLayer>;

const learningRate = positive(1e4);
const epsilon = z.number().positive().max(1);
const unitInterval = z.number().min(0).lt(1);

/** One entry per optimizer the article names; each takes its own parameters. */
export const optimizer = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('gd'), learningRate: learningRate.default(0.01) }),
  z.strictObject({ type: z.literal('sgd'), learningRate: learningRate.default(0.01) }),
  z.strictObject({
    type: z.literal('momentum'),
    learningRate: learningRate.default(0.01),
    momentum: unitInterval.default(0.9),
    useNesterov: z.boolean().default(false),
  }),
  z.strictObject({
    type: z.literal('adam'),
    learningRate: learningRate.default(0.001),
    beta1: unitInterval.default(0.9),
    beta2: unitInterval.default(0.999),
    epsilon: epsilon.default(1e-7),
  }),
  z.strictObject({
    type: z.literal('adamax'),
    learningRate: learningRate.default(0.002),
    beta1: unitInterval.default(0.9),
    beta2: unitInterval.default(0.999),
    epsilon: epsilon.default(1e-7),
  }),
  z.strictObject({
    type: z.literal('rmsprop'),
    learningRate: learningRate.default(0.001),
    rho: unitInterval.default(0.9),
    momentum: unitInterval.default(0),
    epsilon: epsilon.default(1e-7),
    centered: z.boolean().default(false),
  }),
  z.strictObject({
    type: z.literal('adagrad'),
    learningRate: learningRate.default(0.01),
    initialAccumulatorValue: z.number().positive().max(10).default(0.1),
  }),
  z.strictObject({
    type: z.literal('adadelta'),
    learningRate: learningRate.default(1),
    rho: unitInterval.default(0.95),
    epsilon: epsilon.default(1e-7),
  }),
]);
export type OptimizerSpec = z.infer<typeof optimizer>;

export const validation = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('holdout'),
    /** Share of the rows held out for validation (stratified for classification). */
    fraction: z.number().gt(0).lt(1).default(0.2),
  }),
  z.strictObject({ type: z.literal('none') }),
]);

export const MAX_EPOCHS = 100_000;

export const trainingSpec = z.strictObject({
  optimizer: optimizer.default({
    type: 'adam',
    learningRate: 0.001,
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-7,
  }),
  epochs: z.int().min(1).max(MAX_EPOCHS).default(100),
  /** Rows per gradient step; `"full"` = the whole training set (plain full-batch gradient descent). */
  batchSize: z.union([z.int().min(1).max(65_536), z.literal('full')]).default(32),
  validation: validation.default({ type: 'holdout', fraction: 0.2 }),
  /** Stop as soon as the epoch's training loss falls below this. */
  lossThreshold: z.number().positive().optional(),
  /** Seeds weight initialisation, the validation split and shuffling. Chosen and recorded when absent. */
  seed: z
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .optional(),
});

export const TASKS = ['classification', 'regression'] as const;

export const jobSpec = z.strictObject({
  name: name.optional(),
  task: z.enum(TASKS),
  dataset: z.strictObject({
    id: z.string().regex(ULID_PATTERN, 'must be a dataset id returned by POST /datasets'),
    /** The column to predict. */
    label: columnName,
    /** Input columns; default: every column but the label. */
    features: z
      .array(columnName)
      .min(1)
      .max(1024)
      .refine((f) => new Set(f).size === f.length, 'must not repeat a column')
      .optional(),
  }),
  model: z
    .strictObject({
      /** Hidden layers; the output layer is derived from the task and the label. */
      layers: z.array(hiddenLayer).max(64).default([]),
      /** Overrides the derived output layer's activation. */
      outputActivation: activation.optional(),
    })
    .default({ layers: [] }),
  training: trainingSpec.default({
    optimizer: { type: 'adam', learningRate: 0.001, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
    epochs: 100,
    batchSize: 32,
    validation: { type: 'holdout', fraction: 0.2 },
  }),
});

export type JobSpecInput = z.input<typeof jobSpec>;
/** A spec with every default filled in (name and seed chosen when absent), as stored in the job record. */
export const resolvedJobSpec = jobSpec.extend({
  name,
  training: trainingSpec.extend({
    seed: z
      .int()
      .min(0)
      .max(2 ** 31 - 1),
  }),
});
export type JobSpec = z.output<typeof resolvedJobSpec>;

export const datasetFormat = z.enum(['csv', 'jsonl']);
export type DatasetFormat = z.infer<typeof datasetFormat>;

export const createDatasetRequest = z.strictObject({
  name,
  format: datasetFormat,
});
