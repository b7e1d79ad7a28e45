/**
 * Which engine trains a run (trainer/compiled/select.ts), and why: compiled on TensorFlow native
 * when the model compiles; eager otherwise, with the reason in the outcome (and so in the job
 * record); a resumed run stays on its checkpoint's engine.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { loadRuntimeConfig } from '../../core/platform/runtime-config.ts';
import { planPrivacy } from '../../core/training/privacy.ts';
import { selectBackend, type TF } from '../../trainer/backend.ts';
import { unsupportedModel } from '../../trainer/compiled/layers.ts';
import {
  type CompiledSetup,
  compiledSetup,
  privateOnEager,
  selectRunner,
} from '../../trainer/compiled/select.ts';
import type { RunnerRequest } from '../../trainer/engine.ts';
import { buildModel, outputFor } from '../../trainer/model-builder.ts';
import { specOf } from '../helpers/specs.ts';

describe('choosing the engine', () => {
  let tf: TF;
  let request: RunnerRequest;
  const cleanup: (() => void)[] = [];
  before(async () => {
    ({ tf } = await selectBackend('cpu'));
    const spec = specOf({ model: { layers: [{ type: 'dense', units: 3 }] } });
    const model = buildModel(tf, spec, [2], outputFor(spec, 2));
    const trainSet = { x: tf.zeros([4, 2]), y: tf.zeros([4, 2]) };
    request = { spec, model, loss: 'categoricalCrossentropy', trainSet, batchSize: 2, classCount: 2 };
    cleanup.push(() => {
      model.dispose();
      tf.dispose([trainSet.x, trainSet.y]);
    });
  });

  it('a worker not on TensorFlow native trains eager, saying why', () => {
    const setup = compiledSetup({ name: 'wasm' });
    assert.equal(setup.addon, undefined);
    assert.match(setup.unavailable ?? '', /backend is wasm; the compiled engine runs on TensorFlow native/);
    const { runner, reason } = selectRunner(setup)(tf, request);
    assert.equal(runner.engine, 'eager');
    assert.equal(reason, setup.unavailable);
    runner.dispose();
  });

  it('DESCENT_ENGINE=eager keeps every run eager, and says so', () => {
    const setup = compiledSetup({ name: 'tensorflow' }, 'eager');
    const { runner, reason } = selectRunner(setup)(tf, request);
    assert.equal(runner.engine, 'eager');
    assert.equal(reason, 'DESCENT_ENGINE=eager');
    runner.dispose();
  });

  it('a run resuming an eager checkpoint stays eager', () => {
    const setup: CompiledSetup = {
      preference: 'auto',
      threads: { intraOp: 1, interOp: 1 },
      lstmKernel: 'descent',
    };
    const { runner, reason } = selectRunner(setup)(tf, { ...request, resumeEngine: 'eager' });
    assert.equal(runner.engine, 'eager');
    assert.match(reason, /resumes a checkpoint of the eager engine/);
    runner.dispose();
  });

  it('a run resuming a compiled checkpoint where compiled cannot run is a temporary failure, saying why', () => {
    const setup = compiledSetup({ name: 'wasm' });
    assert.throws(
      () => selectRunner(setup)(tf, { ...request, resumeEngine: 'compiled' }),
      /checkpoint was written by the compiled engine, which cannot run on this worker \(the backend is wasm.*another attempt will resume it/,
    );
  });

  it("runs fused LSTMs on descent's kernel on a CPU and on TensorFlow's BlockLSTMV2 on a GPU", () => {
    assert.equal(compiledSetup({ name: 'tensorflow', device: 'cpu' }).lstmKernel, 'descent');
    assert.equal(compiledSetup({ name: 'tensorflow', device: 'gpu' }).lstmKernel, 'tensorflow');
  });

  it('DESCENT_ENGINE is read once at start: auto by default, eager, or a clear error', () => {
    assert.equal(loadRuntimeConfig({}).engine, 'auto');
    assert.equal(loadRuntimeConfig({ DESCENT_ENGINE: 'eager' }).engine, 'eager');
    assert.throws(
      () => loadRuntimeConfig({ DESCENT_ENGINE: 'fast' }),
      /DESCENT_ENGINE must be one of auto, eager/,
    );
  });

  it('a private run compiles only when its per-example gradients are vectorised, and says why not', () => {
    const privacy = planPrivacy({ noiseMultiplier: 1, clipNorm: 1 }, 4, 2, 1);
    const model = (layers: unknown[], shape: number[]) =>
      buildModel(tf, specOf({ model: { layers } }), shape, outputFor(specOf({}), 2));
    const dense = model(
      [
        { type: 'dense', units: 3 },
        { type: 'dropout', rate: 0.1 },
      ],
      [2],
    );
    assert.equal(privateOnEager({ ...request, model: dense, privacy }), undefined);
    assert.equal(privateOnEager({ ...request, model: dense }), undefined, 'not private');
    assert.match(
      privateOnEager({ ...request, model: dense, privacy, perExample: 'microbatch' }) ?? '',
      /microbatched per-example gradients \(as asked\) runs on the eager engine/,
    );
    const cases: [unknown[], number[], string][] = [
      [[{ type: 'conv1d', filters: 2, kernelSize: 1 }, { type: 'flatten' }], [3, 1], 'convolutions'],
      [[{ type: 'lstm', units: 2 }], [3, 1], 'recurrent layers'],
      [[{ type: 'embedding', inputDim: 5, outputDim: 2 }, { type: 'flatten' }], [3], 'an embedding'],
      [[{ type: 'dense', units: 2 }, { type: 'flatten' }], [3, 2], 'dense layers on sequences'],
    ];
    for (const [layers, shape, what] of cases) {
      const m = model(layers, shape);
      const why = `private training of a model with ${what} runs per example on the eager engine`;
      assert.equal(privateOnEager({ ...request, model: m, privacy }), why);
      // Whatever the worker offers: the reason is the model's, not the backend's.
      const { runner, reason } = selectRunner(compiledSetup({ name: 'wasm' }))(tf, {
        ...request,
        model: m,
        privacy,
      });
      assert.equal(runner.engine, 'eager');
      assert.equal(reason, why);
      runner.dispose();
      m.dispose();
    }
    const input = tf.input({ shape: [2] });
    const functional = tf.model({
      inputs: input,
      outputs: tf.layers.dense({ units: 2 }).apply(input) as typeof input,
    });
    assert.match(privateOnEager({ ...request, model: functional, privacy }) ?? '', /a base model/);
    for (const m of [dense, functional]) m.dispose();
  });

  it('every layer type of the job spec compiles; other models say what does not', () => {
    const spec = specOf({
      model: {
        layers: [
          { type: 'reshape', targetShape: [4, 4, 1] },
          { type: 'conv2d', filters: 2, kernelSize: 2, dilationRate: 2, padding: 'same' },
          { type: 'batchNormalization' },
          { type: 'maxPooling2d' },
          { type: 'averagePooling2d', poolSize: 1 },
          { type: 'reshape', targetShape: [2, 4] },
          { type: 'conv1d', filters: 2, kernelSize: 1 },
          { type: 'maxPooling1d', poolSize: 1 },
          { type: 'averagePooling1d', poolSize: 1 },
          { type: 'lstm', units: 3, returnSequences: true, dropout: 0.1 },
          { type: 'gru', units: 3, returnSequences: true },
          { type: 'flatten' },
          { type: 'dense', units: 4, activation: 'mish' },
          { type: 'dropout', rate: 0.2 },
        ],
      },
    });
    const model = buildModel(tf, spec, [16], outputFor(spec, 2));
    assert.equal(unsupportedModel(model), undefined);
    const embedding = buildModel(
      tf,
      specOf({ model: { layers: [{ type: 'embedding', inputDim: 5, outputDim: 2 }, { type: 'flatten' }] } }),
      [3],
      { units: 2, activation: 'softmax' },
    );
    assert.equal(unsupportedModel(embedding), undefined);

    const input = tf.input({ shape: [4] });
    const normed = tf.layers.layerNormalization({ name: 'norm' }).apply(input) as ReturnType<typeof tf.input>;
    const other = tf.model({
      inputs: input,
      outputs: tf.layers.dense({ units: 2 }).apply(normed) as typeof normed,
    });
    assert.match(
      unsupportedModel(other) ?? '',
      /layer norm is a LayerNormalization, which the compiled path does not build/,
    );
    const [a, b] = [tf.input({ shape: [2] }), tf.input({ shape: [2] })];
    const joined = tf.layers.concatenate().apply([a, b]) as typeof a;
    const twoInputs = tf.model({ inputs: [a, b], outputs: joined });
    assert.match(unsupportedModel(twoInputs) ?? '', /several inputs or outputs/);
    for (const m of [model, embedding, other, twoInputs]) m.dispose();
    for (const f of cleanup) f();
  });
});
