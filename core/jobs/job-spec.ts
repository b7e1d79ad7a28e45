/**
 * The job spec: what a client submits to `POST /jobs`. The schema validates requests, fills in
 * defaults (the stored spec is the resolved one), and generates the OpenAPI document.
 */
import { z } from 'zod';
import { ULID_PATTERN } from '../platform/ids.ts';

/** No control or bidi-override characters: names end up in logs, terminals and file names. */
const UNPRINTABLE: [number, number][] = [
  [0x00, 0x1f],
  [0x7f, 0x9f],
  [0x2028, 0x2029],
  [0x202a, 0x202e],
  [0x2066, 0x2069],
];
const printable = (s: string) => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (UNPRINTABLE.some(([lo, hi]) => c >= lo && c <= hi)) return false;
  }
  return true;
};
const name = z.string().trim().min(1).max(128).refine(printable, 'must not contain control characters');
const columnName = z.string().min(1).max(256).refine(printable, 'must not contain control characters');
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

export const INITIALIZERS = [
  'glorotUniform',
  'glorotNormal',
  'heUniform',
  'heNormal',
  'leCunUniform',
  'leCunNormal',
  'randomUniform',
  'randomNormal',
  'truncatedNormal',
  'orthogonal',
  'zeros',
  'ones',
] as const;
export const initializer = z.enum(INITIALIZERS);

/** L1, L2 or both (elastic net): the penalty added to the loss for this layer's weights. */
export const regularizer = z
  .strictObject({ l1: z.number().min(0).max(100).optional(), l2: z.number().min(0).max(100).optional() })
  .refine((r) => r.l1 !== undefined || r.l2 !== undefined, 'give l1, l2 or both');
export type RegularizerSpec = z.infer<typeof regularizer>;

const size = (max: number) => z.int().min(1).max(max);
const size2d = z.union([size(64), z.tuple([size(64), size(64)])]);
const padding = z.enum(['valid', 'same']);
const weights = {
  kernelInitializer: initializer.optional(),
  biasInitializer: initializer.optional(),
  kernelRegularizer: regularizer.optional(),
  biasRegularizer: regularizer.optional(),
  useBias: z.boolean().default(true),
};

const denseLayer = z.strictObject({
  type: z.literal('dense'),
  units: size(8192),
  activation: activation.default('relu'),
  ...weights,
});
const dropoutLayer = z.strictObject({ type: z.literal('dropout'), rate: z.number().min(0).lt(1) });
const batchNormalizationLayer = z.strictObject({
  type: z.literal('batchNormalization'),
  momentum: z.number().gt(0).lt(1).default(0.99),
  epsilon: z.number().positive().max(1).default(0.001),
});
/** TensorFlow refuses a convolution whose strides and dilation are both above 1 (at its first step). */
const above1 = (v: number | number[]) => (Array.isArray(v) ? v.some((d) => d > 1) : v > 1);
const stridesOrDilation = {
  message: 'strides above 1 cannot be combined with a dilationRate above 1: give one of them as 1',
  path: ['dilationRate'],
};
const conv1dLayer = z
  .strictObject({
    type: z.literal('conv1d'),
    filters: size(1024),
    kernelSize: size(64),
    strides: size(64).default(1),
    padding: padding.default('valid'),
    dilationRate: size(64).default(1),
    activation: activation.default('relu'),
    ...weights,
  })
  .refine((l) => !(above1(l.strides) && above1(l.dilationRate)), stridesOrDilation);
const conv2dLayer = z
  .strictObject({
    type: z.literal('conv2d'),
    filters: size(1024),
    kernelSize: size2d,
    strides: size2d.default(1),
    padding: padding.default('valid'),
    dilationRate: size2d.default(1),
    activation: activation.default('relu'),
    ...weights,
  })
  .refine((l) => !(above1(l.strides) && above1(l.dilationRate)), stridesOrDilation);
const pooling1d = (type: 'maxPooling1d' | 'averagePooling1d') =>
  z.strictObject({
    type: z.literal(type),
    poolSize: size(64).default(2),
    strides: size(64).optional(),
    padding: padding.default('valid'),
  });
const pooling2d = (type: 'maxPooling2d' | 'averagePooling2d') =>
  z.strictObject({
    type: z.literal(type),
    poolSize: size2d.default(2),
    strides: size2d.optional(),
    padding: padding.default('valid'),
  });
const flattenLayer = z.strictObject({ type: z.literal('flatten') });
const reshapeLayer = z.strictObject({
  type: z.literal('reshape'),
  targetShape: z
    .array(
      z
        .int()
        .min(-1)
        .max(1_000_000)
        .refine((d) => d !== 0, 'dimensions are positive (or one -1)'),
    )
    .min(1)
    .max(4)
    .refine((dims) => dims.filter((d) => d === -1).length <= 1, 'at most one dimension may be -1'),
});
const recurrent = (type: 'lstm' | 'gru') =>
  z.strictObject({
    type: z.literal(type),
    units: size(2048),
    activation: activation.default('tanh'),
    recurrentActivation: activation.default('sigmoid'),
    returnSequences: z.boolean().default(false),
    dropout: z.number().min(0).lt(1).default(0),
    recurrentInitializer: initializer.optional(),
    recurrentRegularizer: regularizer.optional(),
    ...weights,
  });
const embeddingLayer = z.strictObject({
  type: z.literal('embedding'),
  /** Vocabulary size: inputs are integer ids from 0 to inputDim − 1. */
  inputDim: size(1_000_000),
  outputDim: size(4096),
  embeddingsInitializer: initializer.optional(),
  embeddingsRegularizer: regularizer.optional(),
});

export const hiddenLayer = z.discriminatedUnion('type', [
  denseLayer,
  dropoutLayer,
  batchNormalizationLayer,
  conv1dLayer,
  conv2dLayer,
  pooling1d('maxPooling1d'),
  pooling1d('averagePooling1d'),
  pooling2d('maxPooling2d'),
  pooling2d('averagePooling2d'),
  flattenLayer,
  reshapeLayer,
  recurrent('lstm'),
  recurrent('gru'),
  embeddingLayer,
]);
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
    /** Share of the rows held out for validation (stratified by class for classification). */
    fraction: z.number().gt(0).lt(1).default(0.2),
  }),
  z.strictObject({
    type: z.literal('kfold'),
    /** Each of k folds is validated on once by a model trained on the others; the delivered model is retrained on all rows. */
    k: z.int().min(2).max(20).default(5),
  }),
  z.strictObject({ type: z.literal('none') }),
]);

export const MAX_EPOCHS = 100_000;

/** Per-epoch metrics a stopping rule or schedule may watch. */
export const MONITORS = ['loss', 'valLoss', 'accuracy', 'valAccuracy', 'mae', 'valMae'] as const;
export const monitor = z.enum(MONITORS);
export type Monitor = z.infer<typeof monitor>;

export const LOSSES = [
  'meanSquaredError',
  'meanAbsoluteError',
  'huber',
  'binaryCrossentropy',
  'categoricalCrossentropy',
  'sparseCategoricalCrossentropy',
] as const;
export const lossName = z.enum(LOSSES);
export type LossName = z.infer<typeof lossName>;

export const schedule = z.discriminatedUnion('type', [
  /** lr · gamma^floor(epoch / stepSize) */
  z.strictObject({
    type: z.literal('step'),
    stepSize: z.int().min(1).max(MAX_EPOCHS),
    gamma: z.number().gt(0).max(1).default(0.5),
  }),
  /** lr · gamma^epoch */
  z.strictObject({ type: z.literal('exponential'), gamma: z.number().gt(0).max(1) }),
  /** From lr down to minLearningRate along half a cosine over the run (or `periodEpochs`). */
  z.strictObject({
    type: z.literal('cosine'),
    minLearningRate: z.number().min(0).default(0),
    periodEpochs: z.int().min(1).max(MAX_EPOCHS).optional(),
  }),
  /** Multiply by `factor` when `monitor` has not improved by `minDelta` for `patience` epochs. */
  z.strictObject({
    type: z.literal('reduceOnPlateau'),
    monitor: monitor.default('valLoss'),
    factor: z.number().gt(0).lt(1).default(0.5),
    patience: z.int().min(1).max(10_000).default(5),
    minDelta: z.number().min(0).default(0),
    minLearningRate: z.number().min(0).default(0),
  }),
]);
export type ScheduleSpec = z.infer<typeof schedule>;

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
  /** A share of the rows set aside before anything else and reported apart as `report.test`. */
  testFraction: z.number().gt(0).lt(1).optional(),
  /** Default from the task: categoricalCrossentropy (classification), meanSquaredError (regression). */
  loss: lossName.optional(),
  /** Per-class loss weights: `"balanced"` (inverse frequency) or `{"class": weight}`. */
  classWeights: z
    .union([z.literal('balanced'), z.record(z.string().max(256), z.number().positive().max(1e6))])
    .optional(),
  learningRateSchedule: schedule.optional(),
  /** Rescale gradients whose global norm exceeds `clipNorm`, or clip each value to ±`clipValue`. */
  gradientClipping: z
    .strictObject({ clipNorm: z.number().positive().optional(), clipValue: z.number().positive().optional() })
    .refine(
      (c) => (c.clipNorm === undefined) !== (c.clipValue === undefined),
      'give either clipNorm or clipValue',
    )
    .optional(),
  /** Stop as soon as the epoch's training loss falls below this number, or a named metric crosses a value. */
  lossThreshold: z
    .union([
      z.number().positive(),
      z.strictObject({ metric: monitor, value: z.number(), mode: z.enum(['below', 'above']).optional() }),
    ])
    .optional(),
  earlyStopping: z
    .strictObject({
      monitor: monitor.default('valLoss'),
      patience: z.int().min(1).max(10_000).default(10),
      minDelta: z.number().min(0).default(0),
      restoreBestWeights: z.boolean().default(true),
    })
    .optional(),
  /** How often the worker saves a checkpoint a redelivered job resumes from (whichever comes first). */
  checkpoint: z
    .strictObject({
      everyEpochs: z.int().min(1).max(MAX_EPOCHS).optional(),
      everySeconds: z.number().min(1).max(86_400).default(30),
    })
    .default({ everySeconds: 30 }),
  /**
   * Differentially private training (DP-SGD): every step samples rows with probability batchSize /
   * training rows, clips each row's gradient to L2 norm `clipNorm`, sums them and adds Gaussian noise
   * of standard deviation noiseMultiplier × clipNorm. Give `targetEpsilon` (the noise is then the least
   * that keeps the planned epochs within it), `noiseMultiplier`, or both (training then stops before
   * the budget would be exceeded). See docs/privacy.md.
   */
  privacy: z
    .strictObject({
      /** The ε the whole run may spend, at `delta`. */
      targetEpsilon: z.number().min(0.05).max(100).optional(),
      /** σ: the noise's standard deviation over clipNorm. Default: the least that meets targetEpsilon. */
      noiseMultiplier: z.number().min(0.1).max(10_000).optional(),
      /** δ of the (ε, δ) guarantee. Default: 1e-5, or 1 / (10 × training rows) when that is smaller. */
      delta: z.number().gt(0).max(0.01).optional(),
      /** C: every row's gradient is scaled down to at most this L2 norm. */
      clipNorm: z.number().positive().max(10_000).default(1),
    })
    .refine(
      (p) => p.targetEpsilon !== undefined || p.noiseMultiplier !== undefined,
      'give targetEpsilon, noiseMultiplier or both',
    )
    .optional(),
  /** Seeds weight initialisation, the splits, shuffling and dropout. Chosen and recorded when absent. */
  seed: z
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .optional(),
});

const columnPreprocessing = z.strictObject({
  /** Numeric columns: rescale with statistics of the training rows. */
  scale: z.enum(['none', 'standardize', 'minMax']).optional(),
  /** Text columns: one column per category, or the category's index (1-based; 0 = unseen). */
  categorical: z.enum(['oneHot', 'index']).optional(),
  /** What to do with an empty cell. */
  missing: z.enum(['error', 'drop', 'mean', 'mostFrequent']).optional(),
  /**
   * What the column is, when the values alone mislead: `categorical` for numeric codes (or to keep a
   * column detected as an identifier), `numeric`, or `date` (ISO-8601 text, which becomes days since
   * 1970-01-01, year, month and day of week).
   */
  type: z.enum(['numeric', 'categorical', 'date']).optional(),
  /**
   * Numeric columns: the range of the values, known without the data. Scaling uses it instead of
   * statistics of the training rows (`minMax` maps it onto [0, 1], `standardize` onto [−1, 1]) and
   * values outside it are clipped into it. Private training: keeps the rows out of the scaling.
   */
  range: z
    .tuple([z.number(), z.number()])
    .refine(
      ([lo, hi]) => Number.isFinite(lo) && Number.isFinite(hi) && lo < hi,
      'give [min, max] with min < max',
    )
    .optional(),
  /**
   * Categorical columns: the fixed vocabulary, in encoding order, instead of the values seen in the
   * training rows; a value outside it is encoded as unseen. Private training: keeps the rows out of it.
   */
  categories: z
    .array(z.string().max(256))
    .min(1)
    .max(10_000)
    .refine((c) => new Set(c).size === c.length, 'must not repeat a category')
    .optional(),
});

export const preprocessing = z.strictObject({
  scale: z.enum(['none', 'standardize', 'minMax']).default('none'),
  categorical: z.enum(['oneHot', 'index']).default('oneHot'),
  missing: z.enum(['error', 'drop', 'mean', 'mostFrequent']).default('error'),
  columns: z.record(z.string().min(1).max(256), columnPreprocessing).default({}),
});
export type PreprocessingSpec = z.infer<typeof preprocessing>;

/** A feature is a column name, or `{name, shape}` for a column whose cells are numeric arrays (images, sequences). */
export const featureSpec = z.union([
  columnName,
  z.strictObject({ name: columnName, shape: z.array(z.int().min(1).max(100_000)).min(1).max(4) }),
]);
export type FeatureSpec = z.infer<typeof featureSpec>;
export const featureName = (f: FeatureSpec): string => (typeof f === 'string' ? f : f.name);

export const baseModel = z.union([
  z.strictObject({ jobId: z.string().regex(ULID_PATTERN, 'must be the id of an earlier SUCCEEDED job') }),
  z.strictObject({
    datasetId: z.string().regex(ULID_PATTERN, 'must be the id of an uploaded tfjs-model dataset'),
  }),
]);

export const TASKS = ['classification', 'regression'] as const;

export const jobSpec = z.strictObject({
  name: name.optional(),
  task: z.enum(TASKS),
  dataset: z
    .strictObject({
      id: z.string().regex(ULID_PATTERN, 'must be a dataset id returned by POST /datasets'),
      /** The column to predict. */
      label: columnName,
      /**
       * Input columns; default: every column but the label, the excluded ones and those that look like
       * identifiers (a text column unique per row, or a column of unique integers named like an id).
       */
      features: z
        .array(featureSpec)
        .min(1)
        .max(4096)
        .refine((f) => new Set(f.map(featureName)).size === f.length, 'must not repeat a column')
        .optional(),
      /** Columns to leave out of the default features (ids, leaks, free text). */
      exclude: z.array(columnName).max(4096).optional(),
    })
    .refine((d) => !(d.features && d.exclude), {
      message: 'give dataset.features or dataset.exclude, not both',
      path: ['exclude'],
    })
    .refine((d) => !d.exclude?.includes(d.label), {
      message: 'the label cannot be excluded',
      path: ['exclude'],
    }),
  model: z
    .strictObject({
      /** Hidden layers; the output layer is derived from the task and the label. */
      layers: z
        .array(hiddenLayer)
        .max(64)
        .refine(
          (layers) =>
            layers.every(
              (l, i) =>
                l.type !== 'embedding' ||
                layers.slice(0, i).every((p) => p.type === 'reshape' || p.type === 'flatten'),
            ),
          'an embedding layer looks up integer ids from the data: it must come first (after reshape or flatten only)',
        )
        .default([]),
      /** Overrides the derived output layer's activation. */
      outputActivation: activation.optional(),
      /** Start from an earlier job's model, or an uploaded tfjs layers model (fine-tuning). */
      baseModel: baseModel.optional(),
      /** Fine-tuning: keep the first N layers (or the named ones) of the base model fixed. */
      freeze: z.union([z.int().min(0).max(1000), z.array(z.string().min(1).max(256)).max(1000)]).optional(),
      /** Fine-tuning: replace the base model's output layer with one for this task (default true). */
      replaceHead: z.boolean().optional(),
    })
    .default({ layers: [] }),
  preprocessing: preprocessing.default({
    scale: 'none',
    categorical: 'oneHot',
    missing: 'error',
    columns: {},
  }),
  resources: z
    .strictObject({
      /** Training longer than this fails with TIMEOUT after a last checkpoint (default and ceiling: the deployment's). */
      maxRuntimeSeconds: z
        .int()
        .min(1)
        .max(30 * 86_400)
        .optional(),
    })
    .default({}),
  training: trainingSpec.prefault({}),
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
  resources: z.strictObject({ maxRuntimeSeconds: z.int().min(1) }),
});
export type JobSpec = z.output<typeof resolvedJobSpec>;

export const datasetFormat = z.enum(['csv', 'jsonl', 'tfjs-model']);
export type DatasetFormat = z.infer<typeof datasetFormat>;

export const createDatasetRequest = z.strictObject({
  name,
  format: datasetFormat,
});
