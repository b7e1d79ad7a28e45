/** Builds the tfjs model a spec declares: hidden layers in order, then the output layer the task needs. */
import type { Sequential } from '@tensorflow/tfjs';

type Layer = Parameters<Sequential['add']>[0];

import type { HiddenLayer, JobSpec, RegularizerSpec } from '../core/jobs/job-spec.ts';
import { UnrecoverableError } from '../core/platform/errors.ts';
import type { TF } from './backend.ts';

type InitializerName = NonNullable<Extract<HiddenLayer, { type: 'dense' }>['kernelInitializer']>;

/** What the output layer looks like for a task and loss. */
export interface OutputSpec {
  units: number;
  activation: 'softmax' | 'sigmoid' | 'linear' | string;
}

export function outputFor(spec: JobSpec, classCount: number | undefined): OutputSpec {
  if (spec.task === 'regression') return { units: 1, activation: spec.model.outputActivation ?? 'linear' };
  const binary = spec.training.loss === 'binaryCrossentropy';
  if (binary && classCount !== 2) {
    throw new UnrecoverableError(
      'INVALID_SPEC',
      `binaryCrossentropy needs exactly two classes; the label has ${classCount}. Use categoricalCrossentropy.`,
    );
  }
  return binary
    ? { units: 1, activation: spec.model.outputActivation ?? 'sigmoid' }
    : { units: classCount ?? 2, activation: spec.model.outputActivation ?? 'softmax' };
}

export function makeInitializer(tf: TF, name: InitializerName, seed: number) {
  switch (name) {
    case 'zeros':
      return tf.initializers.zeros();
    case 'ones':
      return tf.initializers.ones();
    case 'randomUniform':
      return tf.initializers.randomUniform({ minval: -0.05, maxval: 0.05, seed });
    case 'randomNormal':
      return tf.initializers.randomNormal({ mean: 0, stddev: 0.05, seed });
    case 'truncatedNormal':
      return tf.initializers.truncatedNormal({ mean: 0, stddev: 0.05, seed });
    case 'orthogonal':
      return tf.initializers.orthogonal({ seed });
    default:
      return tf.initializers[name]({ seed });
  }
}

const regularizerOf = (tf: TF, r: RegularizerSpec | undefined) =>
  r ? { regularizer: tf.regularizers.l1l2({ l1: r.l1 ?? 0, l2: r.l2 ?? 0 }) } : undefined;

type LayerSpec = JobSpec['model']['layers'][number];
type MakeLayer = (first: { inputShape?: number[] }) => Layer;

/** Initializers (seeded by the layer's position), regularizers and bias of a layer's weights. */
function weightOptions(
  tf: TF,
  l: {
    kernelInitializer?: InitializerName;
    biasInitializer?: InitializerName;
    kernelRegularizer?: RegularizerSpec;
    biasRegularizer?: RegularizerSpec;
    useBias?: boolean;
  },
  i: number,
  seed: number,
) {
  return {
    kernelInitializer: makeInitializer(tf, l.kernelInitializer ?? 'glorotUniform', seed + 7919 * i),
    biasInitializer: makeInitializer(tf, l.biasInitializer ?? 'zeros', seed + 7919 * i + 1),
    ...(l.kernelRegularizer
      ? { kernelRegularizer: regularizerOf(tf, l.kernelRegularizer)?.regularizer }
      : {}),
    ...(l.biasRegularizer ? { biasRegularizer: regularizerOf(tf, l.biasRegularizer)?.regularizer } : {}),
    useBias: l.useBias ?? true,
  };
}

/** The factory of the spec's `i`-th layer (1-based), which receives a tensor of shape `inShape`. */
function layerFactory(tf: TF, layer: LayerSpec, i: number, seed: number, inShape: number[]): MakeLayer {
  const name = `${layer.type}_${i}`;
  const weights = (l: Parameters<typeof weightOptions>[1], at: number) => weightOptions(tf, l, at, seed);
  switch (layer.type) {
    case 'dense':
      return (f) =>
        tf.layers.dense({
          ...f,
          name,
          units: layer.units,
          activation: layer.activation,
          ...weights(layer, i),
        });
    case 'dropout':
      return (f) => tf.layers.dropout({ ...f, name, rate: layer.rate });
    case 'batchNormalization':
      return (f) =>
        tf.layers.batchNormalization({ ...f, name, momentum: layer.momentum, epsilon: layer.epsilon });
    case 'conv1d':
    case 'conv2d': {
      // Same options; conv1d takes plain numbers where conv2d also takes [h, w] pairs.
      const make = (layer.type === 'conv1d' ? tf.layers.conv1d : tf.layers.conv2d) as typeof tf.layers.conv2d;
      return (f) =>
        make({
          ...f,
          name,
          filters: layer.filters,
          kernelSize: layer.kernelSize,
          strides: layer.strides,
          padding: layer.padding,
          dilationRate: layer.dilationRate,
          activation: layer.activation,
          ...weights(layer, i),
        });
    }
    case 'maxPooling1d':
    case 'averagePooling1d':
    case 'maxPooling2d':
    case 'averagePooling2d': {
      const make = tf.layers[layer.type] as typeof tf.layers.maxPooling2d;
      return (f) =>
        make({
          ...f,
          name,
          poolSize: layer.poolSize,
          ...(layer.strides ? { strides: layer.strides } : {}),
          padding: layer.padding,
        });
    }
    case 'flatten':
      return (f) => tf.layers.flatten({ ...f, name });
    case 'reshape': {
      const targetShape = resolveTargetShape(layer.targetShape, inShape);
      return (f) => tf.layers.reshape({ ...f, name, targetShape });
    }
    case 'lstm':
    case 'gru': {
      const make = layer.type === 'lstm' ? tf.layers.lstm : tf.layers.gru;
      return (f) =>
        make({
          ...f,
          name,
          units: layer.units,
          activation: layer.activation,
          recurrentActivation: layer.recurrentActivation,
          returnSequences: layer.returnSequences,
          ...(layer.dropout > 0 ? { dropout: layer.dropout } : {}),
          recurrentInitializer: makeInitializer(
            tf,
            layer.recurrentInitializer ?? 'orthogonal',
            seed + 7919 * i + 2,
          ),
          ...(layer.recurrentRegularizer
            ? { recurrentRegularizer: regularizerOf(tf, layer.recurrentRegularizer)?.regularizer }
            : {}),
          ...weights(layer, i),
        });
    }
    case 'embedding':
      return (f) =>
        tf.layers.embedding({
          ...f,
          name,
          inputDim: layer.inputDim,
          outputDim: layer.outputDim,
          embeddingsInitializer: makeInitializer(
            tf,
            layer.embeddingsInitializer ?? 'randomUniform',
            seed + 7919 * i,
          ),
          ...(layer.embeddingsRegularizer
            ? { embeddingsRegularizer: regularizerOf(tf, layer.embeddingsRegularizer)?.regularizer }
            : {}),
        });
  }
}

/** Builds the model; any shape problem becomes an `INVALID_MODEL` failure that says what to change. */
export function buildModel(tf: TF, spec: JobSpec, inputShape: number[], output: OutputSpec): Sequential {
  const seed = spec.training.seed;
  const model = tf.sequential();
  /** The shape the next layer receives (without the batch axis). */
  const current = () =>
    (model.layers.length ? (model.outputs[0]?.shape.slice(1) ?? []) : inputShape) as number[];
  const add = (make: MakeLayer, description: string) => {
    const first = model.layers.length === 0 ? { inputShape } : {};
    try {
      model.add(make(first));
    } catch (error) {
      throw new UnrecoverableError(
        'INVALID_MODEL',
        `The model cannot be built at ${description} (its input has shape ${JSON.stringify(current())}): ${(error as Error).message}`,
      );
    }
  };
  spec.model.layers.forEach((layer, index) => {
    const i = index + 1;
    add(layerFactory(tf, layer, i, seed, current()), `layer ${i} (${layer.type})`);
  });
  // A dense output on a rank > 2 tensor would apply per position: flatten first, as users expect.
  if (current().length > 1)
    add((f) => tf.layers.flatten({ ...f, name: 'flatten_output' }), 'the output (flatten)');
  add(
    (f) =>
      tf.layers.dense({
        ...f,
        name: 'output',
        units: output.units,
        activation: output.activation as 'linear',
        kernelInitializer: makeInitializer(tf, 'glorotUniform', seed + 1_000_003),
      }),
    'the output layer',
  );
  return model;
}

/**
 * A reshape's -1 made explicit from the (known) input shape. tfjs-layers 4.22 leaves it unresolved
 * in the layer's output shape (it counts the batch axis as an unknown dimension), which makes
 * every following layer fail to build. Left as given when it does not divide: tfjs then says why.
 */
export function resolveTargetShape(targetShape: number[], inShape: (number | null)[]): number[] {
  const unknown = targetShape.indexOf(-1);
  if (unknown < 0 || inShape.some((d) => d == null)) return targetShape;
  const total = (inShape as number[]).reduce((a, b) => a * b, 1);
  const known = targetShape.reduce((a, d) => (d === -1 ? a : a * d), 1);
  if (known === 0 || total % known !== 0) return targetShape;
  return targetShape.map((d) => (d === -1 ? total / known : d));
}

export const hasConvolutions = (spec: JobSpec): boolean =>
  spec.model.layers.some((l) => l.type === 'conv1d' || l.type === 'conv2d');
