/**
 * The resource estimate against what TensorFlow.js really allocates: one training step (forward,
 * gradients, the optimizer's first update) of each kind of model, profiled on the backend the worker
 * uses, needs no more tensor memory than the estimate allows for it, and not far less.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Scalar, Tensor, Variable } from '@tensorflow/tfjs';
import { estimateResources, stepCopies, walkModel } from '../../core/training/resources.ts';
import { selectBackend, type TF } from '../../trainer/backend.ts';
import { buildOptimizer } from '../../trainer/engine.ts';
import { meanLoss } from '../../trainer/losses.ts';
import { buildModel } from '../../trainer/model-builder.ts';
import { specOf } from '../helpers/specs.ts';

const cases: [string, Record<string, unknown>[], number[]][] = [
  [
    'dense',
    [
      { type: 'dense', units: 256 },
      { type: 'dense', units: 128 },
    ],
    [200],
  ],
  [
    'conv2d + pooling',
    [{ type: 'conv2d', filters: 16, kernelSize: 3 }, { type: 'maxPooling2d' }, { type: 'flatten' }],
    [28, 28, 1],
  ],
  ['conv1d', [{ type: 'conv1d', filters: 32, kernelSize: 5, padding: 'same' }], [100, 4]],
  ['lstm', [{ type: 'lstm', units: 64 }], [30, 8]],
  ['gru returning sequences', [{ type: 'gru', units: 32, returnSequences: true }], [20, 6]],
  ['embedding', [{ type: 'embedding', inputDim: 1000, outputDim: 32 }, { type: 'flatten' }], [16]],
  [
    'batch normalization + dropout',
    [{ type: 'dense', units: 128 }, { type: 'batchNormalization' }, { type: 'dropout', rate: 0.5 }],
    [64],
  ],
];

describe('resource estimate against measured memory', () => {
  let tf: TF;
  before(async () => {
    tf = (await selectBackend('wasm')).tf;
  });

  for (const [name, layers, inputShape] of cases) {
    it(`${name}: one training step allocates at most what the estimate allows`, async () => {
      const batch = 32;
      const spec = specOf({ model: { layers }, training: { batchSize: batch } });
      const walk = walkModel(spec.model.layers, { shape: inputShape, exact: true }, 3);
      assert.ok(walk.ok);
      const estimate = estimateResources(
        { spec, input: { shape: inputShape, exact: true }, outputUnits: 3, rows: batch, trainRows: batch },
        walk,
      );
      const model = buildModel(tf, spec, inputShape, { units: 3, activation: 'softmax' });
      const optimizer = buildOptimizer(tf, spec.training.optimizer);
      const isIds = layers[0]?.type === 'embedding';
      const x = isIds
        ? tf.randomUniform([batch, ...inputShape], 0, 999, 'int32').toFloat()
        : tf.randomUniform([batch, ...inputShape]);
      const y = tf.oneHot(tf.randomUniform([batch], 0, 3, 'int32'), 3).toFloat();
      const start = tf.memory().numBytes;
      const info = await tf.profile(() => {
        const { grads } = tf.variableGrads(
          () =>
            meanLoss(
              tf,
              'categoricalCrossentropy',
              y,
              model.apply(x, { training: true }) as Tensor,
            ) as Scalar,
          model.trainableWeights.map((w) => w.read() as Variable),
        );
        optimizer.applyGradients(grads);
        tf.dispose(Object.values(grads));
      });
      const measured = info.peakBytes - start;
      // Above the weights: the rest of a step's copies of the parameters, and the activations.
      const allowed =
        estimate.parameters * 4 * (stepCopies(spec.training.optimizer) - 1) +
        estimate.batchRows * walk.layers.reduce((a, l) => a + l.trainBytesPerSample, 0) +
        walk.layers.reduce((a, l) => a + l.stepBytes, 0);

      try {
        assert.ok(measured <= allowed, `measured ${measured} bytes, the estimate allows ${allowed}`);
        assert.ok(
          allowed <= 20 * measured,
          `the estimate (${allowed}) is over 20× what was measured (${measured})`,
        );
      } finally {
        tf.dispose([x, y]);
        optimizer.dispose();
        model.dispose();
      }
    });
  }
});
