/**
 * The float64 reference of a model as trainer/model-builder.ts builds it from a job spec: the
 * hidden layers in order (named `${type}_${i}`), a flatten when the last one is not rank 2, then
 * the dense `output` layer. Weights are looked up by their tfjs name (`conv2d_1/kernel`).
 */
import type { HiddenLayer } from '../../../core/jobs/job-spec.ts';
import {
  type Arr,
  activate,
  batchNormTraining,
  conv2d,
  dense,
  embedding,
  gru,
  lstm,
  multiply,
  penalty,
  pool2d,
} from './reference.ts';

export type Weights = Map<string, Arr>;

const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);
const reshape = (a: Arr, shape: number[]): Arr => ({ shape, data: a.data });

/** The name buildModel gives the i-th (1-based) hidden layer. */
export const layerName = (layer: HiddenLayer, i: number): string => `${layer.type}_${i}`;

function need(weights: Weights, name: string): Arr {
  const w = weights.get(name);
  if (!w) throw new Error(`reference: no weight ${name}`);
  return w;
}

/**
 * Forward pass in training mode. `masks` holds the scaled dropout masks tfjs drew (by layer name):
 * the whole mask for a dropout layer, the input mask [n, F] for a recurrent one.
 */
export function forward(
  layers: HiddenLayer[],
  weights: Weights,
  masks: Map<string, Arr>,
  input: Arr,
  outputActivation: string,
): Arr {
  let x = input;
  layers.forEach((layer, index) => {
    const name = layerName(layer, index + 1);
    const w = (suffix: string) => need(weights, `${name}/${suffix}`);
    const bias = (use: boolean) => (use ? w('bias') : undefined);
    switch (layer.type) {
      case 'dense':
        x = activate(layer.activation, dense(x, w('kernel'), bias(layer.useBias)));
        break;
      case 'dropout':
        x = layer.rate > 0 ? multiply(x, need(masks, name)) : x;
        break;
      case 'batchNormalization':
        x = batchNormTraining(x, w('gamma'), w('beta'), layer.epsilon);
        break;
      case 'conv1d': {
        const [n, steps, c] = x.shape as [number, number, number];
        const k = w('kernel');
        const y = conv2d(
          reshape(x, [n, steps, 1, c]),
          reshape(k, [k.shape[0] as number, 1, ...k.shape.slice(1)]),
          bias(layer.useBias),
          { strides: [layer.strides, 1], dilations: [layer.dilationRate, 1], padding: layer.padding },
        );
        x = activate(layer.activation, reshape(y, [n, y.shape[1] as number, y.shape[3] as number]));
        break;
      }
      case 'conv2d':
        x = activate(
          layer.activation,
          conv2d(x, w('kernel'), bias(layer.useBias), {
            strides: pair(layer.strides),
            dilations: pair(layer.dilationRate),
            padding: layer.padding,
          }),
        );
        break;
      case 'maxPooling1d':
      case 'averagePooling1d': {
        const [n, steps, c] = x.shape as [number, number, number];
        const y = pool2d(
          reshape(x, [n, steps, 1, c]),
          layer.type === 'maxPooling1d' ? 'max' : 'avg',
          [layer.poolSize, 1],
          [layer.strides ?? layer.poolSize, 1],
          layer.padding,
        );
        x = reshape(y, [n, y.shape[1] as number, c]);
        break;
      }
      case 'maxPooling2d':
      case 'averagePooling2d':
        x = pool2d(
          x,
          layer.type === 'maxPooling2d' ? 'max' : 'avg',
          pair(layer.poolSize),
          pair(layer.strides ?? layer.poolSize),
          layer.padding,
        );
        break;
      case 'flatten':
        x = reshape(x, [x.shape[0] as number, x.data.length / (x.shape[0] as number)]);
        break;
      case 'reshape': {
        const n = x.shape[0] as number;
        const known = layer.targetShape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        const shape = layer.targetShape.map((d) => (d === -1 ? x.data.length / n / known : d));
        x = reshape(x, [n, ...shape]);
        break;
      }
      case 'lstm':
      case 'gru':
        x = (layer.type === 'lstm' ? lstm : gru)(x, {
          kernel: w('kernel'),
          recurrentKernel: w('recurrent_kernel'),
          bias: bias(layer.useBias),
          activation: layer.activation,
          recurrentActivation: layer.recurrentActivation,
          returnSequences: layer.returnSequences,
          ...(layer.dropout > 0 ? { mask: need(masks, name) } : {}),
        });
        break;
      case 'embedding':
        x = embedding(x, w('embeddings'));
        break;
    }
  });
  if (x.shape.length > 2) x = reshape(x, [x.shape[0] as number, x.data.length / (x.shape[0] as number)]);
  return activate(outputActivation, dense(x, need(weights, 'output/kernel'), need(weights, 'output/bias')));
}

/** The regularisation penalties the spec's layers add to the loss (model.calculateLosses()). */
export function penalties(layers: HiddenLayer[], weights: Weights): number {
  let total = 0;
  layers.forEach((layer, index) => {
    const name = layerName(layer, index + 1);
    const add = (suffix: string, r: { l1?: number; l2?: number } | undefined) => {
      const w = weights.get(`${name}/${suffix}`);
      if (r && w) total += penalty(w, r);
    };
    if ('kernelRegularizer' in layer) add('kernel', layer.kernelRegularizer);
    if ('biasRegularizer' in layer) add('bias', layer.biasRegularizer);
    if ('recurrentRegularizer' in layer) add('recurrent_kernel', layer.recurrentRegularizer);
    if ('embeddingsRegularizer' in layer) add('embeddings', layer.embeddingsRegularizer);
  });
  return total;
}
