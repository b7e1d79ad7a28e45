import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { prepareData } from '../../core/dataset-prep.ts';
import { UnrecoverableError } from '../../core/errors.ts';
import type { Table } from '../../core/tabular.ts';
import { selectBackend, type TF } from '../../trainer/backend.ts';
import { train } from '../../trainer/engine.ts';
import { specOf } from '../helpers/specs.ts';

/** Two separable blobs. */
const blobs: Table = {
  columns: ['a', 'b', 'label'],
  rows: Array.from({ length: 60 }, (_, i) => {
    const c = i % 2;
    return [c * 2 - 1 + Math.sin(i) * 0.3, c * 2 - 1 + Math.cos(i * 1.7) * 0.3, c ? 'pos' : 'neg'];
  }),
};

describe('training engine', () => {
  let tf: TF;
  before(async () => {
    tf = (await selectBackend('wasm')).tf;
  });

  it('is bitwise reproducible for the same spec, data, seed and backend', async () => {
    const spec = specOf({
      model: { layers: [{ type: 'dense', units: 4 }] },
      training: { epochs: 5, batchSize: 8, seed: 11 },
    });
    const data = prepareData(blobs, spec);
    const a = await train(tf, spec, data);
    const b = await train(tf, spec, data);
    assert.deepEqual(a.history, b.history);
    const wa = a.model.getWeights().map((w) => Array.from(w.dataSync()));
    const wb = b.model.getWeights().map((w) => Array.from(w.dataSync()));
    assert.deepEqual(wa, wb);
    const c = await train(
      tf,
      { ...spec, training: { ...spec.training, seed: 12 } },
      prepareData(blobs, { ...spec, training: { ...spec.training, seed: 12 } }),
    );
    assert.notDeepEqual(a.history, c.history);
    for (const m of [a, b, c]) m.model.dispose();
  });

  it('trains with each of the eight optimizers and lowers the loss', async () => {
    for (const type of ['gd', 'sgd', 'momentum', 'adam', 'rmsprop', 'adagrad', 'adadelta', 'adamax']) {
      const learningRate = type === 'adadelta' ? 1 : 0.05;
      const spec = specOf({
        training: {
          optimizer: { type, learningRate },
          epochs: 15,
          batchSize: 10,
          validation: { type: 'none' },
        },
      });
      const out = await train(tf, spec, prepareData(blobs, spec));
      const first = out.history[0]?.loss as number;
      const last = out.history.at(-1)?.loss as number;
      assert.ok(last < first, `${type}: ${first} → ${last}`);
      out.model.dispose();
    }
  });

  it('stops as soon as the training loss falls below lossThreshold', async () => {
    const spec = specOf({
      training: { optimizer: { type: 'adam', learningRate: 0.1 }, epochs: 500, lossThreshold: 0.2 },
    });
    const out = await train(tf, spec, prepareData(blobs, spec));
    assert.equal(out.stoppedBy, 'lossThreshold');
    assert.ok(out.history.length < 500);
    assert.ok((out.history.at(-1)?.loss as number) < 0.2);
    assert.ok(out.history.slice(0, -1).every((h) => h.loss >= 0.2));
    out.model.dispose();
  });

  it('full batch is plain gradient descent: one step per epoch, no shuffling', async () => {
    const spec = specOf({
      training: {
        optimizer: { type: 'gd', learningRate: 0.1 },
        epochs: 3,
        batchSize: 'full',
        validation: { type: 'none' },
      },
    });
    const a = await train(tf, spec, prepareData(blobs, spec));
    const b = await train(
      tf,
      { ...spec, training: { ...spec.training, seed: spec.training.seed } },
      prepareData(blobs, spec),
    );
    assert.deepEqual(a.history, b.history);
    a.model.dispose();
    b.model.dispose();
  });

  it('stops when the hook asks (cancel) and reports it', async () => {
    const spec = specOf({ training: { epochs: 50 } });
    const out = await train(tf, spec, prepareData(blobs, spec), {
      onEpoch: (m) => (m.epoch === 3 ? 'stop' : undefined),
    });
    assert.equal(out.stoppedBy, 'cancelled');
    assert.equal(out.history.length, 3);
    out.model.dispose();
  });

  it('fails with TRAINING_DIVERGED when the loss stops being finite', async () => {
    const wild: Table = {
      columns: ['a', 'label'],
      rows: Array.from({ length: 20 }, (_, i) => [i * 1e6, i * 1e6]),
    };
    const spec = specOf({
      task: 'regression',
      training: { optimizer: { type: 'gd', learningRate: 100 }, epochs: 50, validation: { type: 'none' } },
    });
    await assert.rejects(
      train(tf, spec, prepareData(wild, spec)),
      (e: unknown) => e instanceof UnrecoverableError && e.code === 'TRAINING_DIVERGED',
    );
  });

  it('leaves no tensors behind', async () => {
    const before = tf.memory().numTensors;
    const spec = specOf({
      model: {
        layers: [
          { type: 'dense', units: 4 },
          { type: 'dropout', rate: 0.1 },
        ],
      },
      training: { epochs: 4 },
    });
    const out = await train(tf, spec, prepareData(blobs, spec));
    out.model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });
});
