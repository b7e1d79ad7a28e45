/**
 * The resource model against TensorFlow.js itself: for every layer type (and its options that change
 * the count), the estimator's parameters equal `countParams()` of the model the trainer builds, and
 * its output shapes equal the layers' own; a shape the estimator calls impossible is one the real
 * model cannot build or run.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { HiddenLayer } from '../../core/jobs/job-spec.ts';
import {
  describeEstimate,
  estimateResources,
  optimizerSlots,
  walkModel,
} from '../../core/training/resources.ts';
import { buildModel } from '../../trainer/model-builder.ts';
import { specOf } from '../helpers/specs.ts';

type LayerInput = Record<string, unknown> & { type: string };

/** A case: hidden layers (as a client writes them), the input shape, the output units. */
const cases: [string, LayerInput[], number[], number][] = [
  ['dense', [{ type: 'dense', units: 7 }], [5], 3],
  ['dense without bias', [{ type: 'dense', units: 7, useBias: false }], [5], 1],
  ['dense on a sequence (per position)', [{ type: 'dense', units: 4 }], [6, 3], 2],
  [
    'dropout',
    [
      { type: 'dense', units: 8 },
      { type: 'dropout', rate: 0.5 },
    ],
    [5],
    3,
  ],
  ['batch normalization', [{ type: 'batchNormalization' }, { type: 'dense', units: 3 }], [9], 2],
  ['conv1d valid', [{ type: 'conv1d', filters: 4, kernelSize: 3 }], [20, 2], 3],
  [
    'conv1d same, strides 2',
    [{ type: 'conv1d', filters: 4, kernelSize: 3, strides: 2, padding: 'same' }],
    [21, 2],
    3,
  ],
  ['conv1d dilation 2', [{ type: 'conv1d', filters: 3, kernelSize: 3, dilationRate: 2 }], [20, 1], 2],
  ['conv1d without bias', [{ type: 'conv1d', filters: 3, kernelSize: 2, useBias: false }], [8, 2], 2],
  ['conv2d valid', [{ type: 'conv2d', filters: 5, kernelSize: 3 }], [8, 8, 1], 4],
  [
    'conv2d [2,3] strides [2,1] same',
    [{ type: 'conv2d', filters: 2, kernelSize: [2, 3], strides: [2, 1], padding: 'same' }],
    [9, 10, 3],
    2,
  ],
  [
    'conv2d dilation [2,1]',
    [{ type: 'conv2d', filters: 2, kernelSize: 3, dilationRate: [2, 1] }],
    [9, 9, 2],
    2,
  ],
  ['maxPooling1d', [{ type: 'maxPooling1d', poolSize: 3 }], [10, 3], 2],
  [
    'averagePooling1d same strides 2',
    [{ type: 'averagePooling1d', poolSize: 3, strides: 2, padding: 'same' }],
    [11, 2],
    2,
  ],
  ['maxPooling2d', [{ type: 'maxPooling2d' }], [8, 6, 2], 2],
  [
    'averagePooling2d [3,2] strides [2,1]',
    [{ type: 'averagePooling2d', poolSize: [3, 2], strides: [2, 1] }],
    [9, 10, 3],
    2,
  ],
  ['flatten', [{ type: 'flatten' }, { type: 'dense', units: 3 }], [4, 5], 2],
  [
    'reshape',
    [
      { type: 'reshape', targetShape: [4, 3] },
      { type: 'lstm', units: 5 },
    ],
    [12],
    2,
  ],
  [
    'reshape with -1',
    [
      { type: 'reshape', targetShape: [-1, 2] },
      { type: 'gru', units: 3 },
    ],
    [12],
    2,
  ],
  ['lstm', [{ type: 'lstm', units: 6 }], [7, 3], 2],
  ['lstm returning sequences', [{ type: 'lstm', units: 4, returnSequences: true }], [5, 2], 3],
  ['lstm without bias', [{ type: 'lstm', units: 4, useBias: false }], [5, 2], 2],
  ['gru', [{ type: 'gru', units: 5 }], [6, 4], 2],
  [
    'gru returning sequences, then dense',
    [
      { type: 'gru', units: 3, returnSequences: true },
      { type: 'dense', units: 2 },
    ],
    [4, 3],
    2,
  ],
  ['embedding', [{ type: 'embedding', inputDim: 50, outputDim: 8 }], [6], 3],
  [
    'embedding then lstm',
    [
      { type: 'embedding', inputDim: 20, outputDim: 4 },
      { type: 'lstm', units: 3 },
    ],
    [9],
    2,
  ],
  [
    'a CNN',
    [
      { type: 'conv2d', filters: 8, kernelSize: 3, padding: 'same' },
      { type: 'batchNormalization' },
      { type: 'maxPooling2d' },
      { type: 'conv2d', filters: 4, kernelSize: 2 },
      { type: 'flatten' },
      { type: 'dense', units: 16 },
      { type: 'dropout', rate: 0.2 },
    ],
    [12, 12, 1],
    10,
  ],
];

/** Layer inputs as the job spec resolves them (defaults filled). */
const resolved = (layers: LayerInput[]): HiddenLayer[] => specOf({ model: { layers } }).model.layers;

describe('resource model', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  for (const [name, layers, inputShape, units] of cases) {
    it(`${name}: parameters equal countParams() and every output shape matches`, () => {
      const hidden = resolved(layers);
      const walk = walkModel(hidden, { shape: inputShape, exact: true }, units);
      assert.ok(walk.ok, walk.ok ? '' : walk.problem);
      const spec = specOf({ model: { layers } });
      const model = buildModel(tf, spec, inputShape, { units, activation: 'softmax' });
      try {
        assert.equal(
          walk.layers.reduce((a, l) => a + l.parameters, 0),
          model.countParams(),
        );
        // The model may add a flatten before the output: compare the spec's layers and the output.
        hidden.forEach((_, i) => {
          assert.deepEqual(
            walk.layers[i]?.outputShape,
            model.layers[i]?.outputShape.slice(1),
            `layer ${i + 1}`,
          );
        });
        assert.deepEqual(walk.layers.at(-1)?.outputShape, model.outputs[0]?.shape.slice(1));
      } finally {
        model.dispose();
      }
    });
  }

  const impossible: [string, LayerInput[], number[]][] = [
    ['a reshape that changes the size', [{ type: 'reshape', targetShape: [7, 3] }], [10]],
    ['a kernel wider than its input', [{ type: 'conv1d', filters: 2, kernelSize: 30 }], [10, 1]],
    ['a pool larger than its input', [{ type: 'maxPooling1d', poolSize: 30 }], [10, 1]],
    ['a recurrent layer on a flat row', [{ type: 'gru', units: 3 }], [10]],
    ['a convolution on a flat row', [{ type: 'conv1d', filters: 2, kernelSize: 3 }], [10]],
    ['flatten of a flat row', [{ type: 'flatten' }], [10]],
  ];
  for (const [name, layers, inputShape] of impossible) {
    it(`${name}: refused by the estimator; the real model cannot build, run, or sees nothing`, () => {
      const walk = walkModel(resolved(layers), { shape: inputShape, exact: true }, 2);
      assert.equal(walk.ok, false);
      assert.match((walk as { problem: string }).problem, /layer 1/);
      assert.throws(() => {
        const model = buildModel(tf, specOf({ model: { layers } }), inputShape, {
          units: 2,
          activation: 'softmax',
        });
        try {
          tf.tidy(() => model.predict(tf.zeros([2, ...inputShape])));
          // tfjs builds a pool larger than its input as a layer with no values at all.
          const empty = model.layers.find((l) => (l.outputShape as number[]).includes(0));
          if (empty) throw new Error(`${empty.name} has a dimension of 0`);
        } finally {
          model.dispose();
        }
      });
    });
  }

  it('a reshape of a width known only as a lower bound is not refused at submit', () => {
    const walk = walkModel(
      resolved([{ type: 'reshape', targetShape: [7, 3] }]),
      { shape: [10], exact: false },
      2,
    );
    assert.ok(walk.ok);
  });

  it('counts the optimizer slots TensorFlow.js keeps', () => {
    const optimizer = (o: Record<string, unknown>) =>
      specOf({ training: { optimizer: o } }).training.optimizer;
    assert.equal(optimizerSlots(optimizer({ type: 'sgd' })), 0);
    assert.equal(optimizerSlots(optimizer({ type: 'momentum' })), 1);
    assert.equal(optimizerSlots(optimizer({ type: 'adam' })), 2);
    assert.equal(optimizerSlots(optimizer({ type: 'rmsprop', momentum: 0.9, centered: true })), 3);
  });

  it('estimates the memory of a large model from its parameters and says what they are', () => {
    const spec = specOf({
      model: {
        layers: [
          { type: 'dense', units: 8192 },
          { type: 'dense', units: 8192 },
        ],
      },
      training: { batchSize: 32 },
    });
    const input = { shape: [1000], exact: true };
    const walk = walkModel(spec.model.layers, input, 2);
    assert.ok(walk.ok);
    const estimate = estimateResources({ spec, input, outputUnits: 2, rows: 1000, trainRows: 800 }, walk);
    const parameters = 1000 * 8192 + 8192 + 8192 * 8192 + 8192 + 8192 * 2 + 2;
    assert.equal(estimate.parameters, parameters);
    // Adam's step: weights, gradients, two slots and its update's temporaries (measured: 18 copies).
    assert.equal(estimate.bytes.model, parameters * 4 * 18);
    assert.ok(estimate.bytes.total >= estimate.bytes.model + estimate.bytes.data);
    assert.match(describeEstimate(estimate), /^model 5\.\d+ GiB \(75,333,634 parameters × 4 bytes × 18/);
  });

  it("counts the training rows again for the compiled engine's graph", () => {
    const spec = specOf({ model: { layers: [{ type: 'dense', units: 16 }] }, training: { batchSize: 256 } });
    const input = { shape: [200], exact: true };
    const walk = walkModel(spec.model.layers, input, 3);
    assert.ok(walk.ok);
    const estimate = estimateResources(
      { spec, input, outputUnits: 3, rows: 200_000, trainRows: 160_000 },
      walk,
    );
    // x, the one-hot target and two per-row floats (label, weight) of every training row.
    assert.equal(estimate.bytes.graphData, 160_000 * (200 + 3 + 2) * 4);
    const { model, activations, data, graphData, table } = estimate.bytes;
    assert.equal(estimate.bytes.total, model + activations + data + graphData + table);
    assert.match(describeEstimate(estimate), /the training rows in the compiled engine's graph 125\.1 MiB/);
  });

  it('sizes evaluation slices so that predicting stays within the training batch’s budget', () => {
    const spec = specOf({
      model: { layers: [{ type: 'conv2d', filters: 64, kernelSize: 3, padding: 'same' }] },
      training: { batchSize: 4 },
    });
    const input = { shape: [128, 128, 3], exact: true };
    const walk = walkModel(spec.model.layers, input, 2);
    assert.ok(walk.ok);
    const estimate = estimateResources({ spec, input, outputUnits: 2, rows: 10_000, trainRows: 8000 }, walk);
    assert.ok(estimate.evalSliceRows < 2048, `slice of ${estimate.evalSliceRows} rows`);
    const forward = walk.layers.reduce((a, l) => a + l.forwardBytesPerSample, 0);
    assert.ok(estimate.evalSliceRows * forward <= estimate.bytes.activations);
  });
});
