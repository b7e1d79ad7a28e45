import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Tensor } from '@tensorflow/tfjs';
import type { Table } from '../../core/datasets/tabular.ts';
import type { JobSpec } from '../../core/jobs/job-spec.ts';
import { UnrecoverableError } from '../../core/platform/errors.ts';
import type { TF } from '../../trainer/backend.ts';
import type { TrainHooks } from '../../trainer/engine.ts';
import { type TrainingEngine, trainingEngines, use } from '../helpers/backends.ts';
import { specOf } from '../helpers/specs.ts';
import { blobs, lcg, tableOf } from '../helpers/tables.ts';
import { firstLoss, lastLoss, trainOn as trainWith } from '../helpers/training.ts';

const none = { validation: { type: 'none' } };
const DATASET = '01M8JH2TQYPMBNJ50HMGRP3N6M';

/** y = 2a − 3b + 0.5 exactly. */
async function linear(n = 40): Promise<Table> {
  const r = lcg(3);
  return tableOf(
    ['a', 'b', 'label'],
    Array.from({ length: n }, () => {
      const a = r() * 2 - 1;
      const b = r() * 2 - 1;
      return [a, b, 2 * a - 3 * b + 0.5];
    }),
  );
}

// Every case on each training engine of this machine: eager on wasm; after `npm run setup:native`,
// eager and compiled on tensorflow.
for (const engine of await trainingEngines()) {
  describe(`training engine on ${engine.label}`, () => engineTests(engine));
}

function engineTests(engine: TrainingEngine): void {
  let tf: TF;
  let table: Table;
  const trainOn = (t: TF, data: Table, spec: JobSpec, hooks?: TrainHooks) =>
    trainWith(t, data, spec, hooks, engine.select);
  before(async () => {
    tf = await use(engine.backend);
    table = await blobs(60);
  });

  it(`runs its steps on the ${engine.engine} engine, and says why`, async () => {
    const r = await trainOn(
      tf,
      table,
      specOf({ model: { layers: [{ type: 'dense', units: 4 }] }, training: { epochs: 1 } }),
    );
    assert.equal(r.outcome.engine, engine.engine);
    assert.ok(r.outcome.engineReason.length > 10, r.outcome.engineReason);
    r.dispose();
  });

  it('is bitwise reproducible for the same spec, data, seed and backend, dropout included', async () => {
    const spec = specOf({
      model: {
        layers: [
          { type: 'dense', units: 8 },
          { type: 'dropout', rate: 0.3 },
        ],
      },
      training: { epochs: 5, batchSize: 8, seed: 11 },
    });
    const a = await trainOn(tf, table, spec);
    const b = await trainOn(tf, table, spec);
    assert.deepEqual(a.outcome.history, b.outcome.history);
    const weights = (r: typeof a) => r.outcome.model.getWeights().map((w) => Array.from(w.dataSync()));
    assert.deepEqual(weights(a), weights(b));
    const c = await trainOn(tf, table, specOf({ ...spec, training: { ...spec.training, seed: 12 } }));
    assert.notDeepEqual(a.outcome.history, c.outcome.history);
    for (const r of [a, b, c]) r.dispose();
  });

  it('stops inside an epoch when the interrupt hook says so, without recording the partial epoch', async () => {
    const spec = specOf({ training: { epochs: 1000, batchSize: 1, seed: 3 } });
    let asked = 0;
    let epochs = 0;
    const r = await trainOn(tf, await blobs(600), spec, {
      onEpoch: () => {
        epochs++;
        return undefined;
      },
      // Yes at the second question: after one epoch or in the middle of one.
      interrupt: async () => ++asked >= 2,
    });
    assert.equal(r.outcome.stoppedBy, 'cancelled');
    assert.equal(r.outcome.history.length, epochs, 'only whole epochs are in the history');
    assert.ok(epochs < 1000);
    r.dispose();
  });

  it('full-batch gd on a noiseless linear regression reaches the least-squares weights', async () => {
    const spec = specOf({
      task: 'regression',
      training: { optimizer: { type: 'gd', learningRate: 0.5 }, batchSize: 'full', epochs: 400, ...none },
    });
    const r = await trainOn(tf, await linear(), spec);
    const [kernel, bias] = r.outcome.model.getWeights();
    const w = Array.from((kernel as Tensor).dataSync());
    assert.ok(Math.abs((w[0] as number) - 2) < 1e-3 && Math.abs((w[1] as number) + 3) < 1e-3, `weights ${w}`);
    assert.ok(Math.abs(((bias as Tensor).dataSync()[0] as number) - 0.5) < 1e-3);
    assert.ok(lastLoss(r) < 1e-6);
    r.dispose();
  });

  it('trains with each of the eight optimizers and lowers the loss', async () => {
    for (const type of ['gd', 'sgd', 'momentum', 'adam', 'rmsprop', 'adagrad', 'adadelta', 'adamax']) {
      const learningRate = type === 'adadelta' ? 1 : 0.05;
      const r = await trainOn(
        tf,
        table,
        specOf({ training: { optimizer: { type, learningRate }, epochs: 10, batchSize: 10, ...none } }),
      );
      assert.ok(lastLoss(r) < firstLoss(r), `${type}: ${firstLoss(r)} → ${lastLoss(r)}`);
      r.dispose();
    }
  });

  it('applies a learning-rate schedule each epoch (recorded in the history)', async () => {
    const r = await trainOn(
      tf,
      table,
      specOf({
        training: {
          optimizer: { type: 'sgd', learningRate: 0.4 },
          learningRateSchedule: { type: 'step', stepSize: 2, gamma: 0.5 },
          epochs: 5,
          ...none,
        },
      }),
    );
    assert.deepEqual(
      r.outcome.history.map((h) => h.learningRate),
      [0.4, 0.4, 0.2, 0.2, 0.1],
    );
    r.dispose();
  });

  it('stops as soon as the training loss falls below lossThreshold, or a named metric crosses its value', async () => {
    const byLoss = await trainOn(
      tf,
      table,
      specOf({
        training: { optimizer: { type: 'adam', learningRate: 0.1 }, epochs: 500, lossThreshold: 0.2 },
      }),
    );
    assert.equal(byLoss.outcome.stoppedBy, 'lossThreshold');
    assert.ok((byLoss.outcome.history.at(-1)?.loss as number) < 0.2);
    assert.ok(byLoss.outcome.history.slice(0, -1).every((h) => h.loss >= 0.2));
    byLoss.dispose();
    const byMetric = await trainOn(
      tf,
      table,
      specOf({
        training: {
          optimizer: { type: 'adam', learningRate: 0.1 },
          epochs: 500,
          lossThreshold: { metric: 'valAccuracy', value: 0.99 },
        },
      }),
    );
    assert.equal(byMetric.outcome.stoppedBy, 'lossThreshold');
    assert.ok((byMetric.outcome.history.at(-1)?.valAccuracy as number) > 0.99);
    byMetric.dispose();
  });

  it('early stopping ends the run after patience epochs and restores the best weights', async () => {
    const r = await trainOn(
      tf,
      table,
      specOf({
        model: { layers: [{ type: 'dense', units: 16 }] },
        // A minDelta no epoch can beat: the first epoch stays the best, so the run stops at epoch 1 + patience.
        training: {
          optimizer: { type: 'adam', learningRate: 0.05 },
          epochs: 200,
          batchSize: 4,
          earlyStopping: { monitor: 'valLoss', patience: 3, minDelta: 10, restoreBestWeights: true },
        },
      }),
    );
    assert.equal(r.outcome.stoppedBy, 'earlyStopping');
    const best = r.outcome.bestEpoch as number;
    assert.equal(best, 1);
    assert.equal(r.outcome.history.length, best + 3);
    const bestVal = r.outcome.history[best - 1]?.valLoss as number;
    assert.ok(
      (r.outcome.history.at(-1)?.valLoss as number) < bestVal,
      'later epochs were better, yet not by minDelta',
    );
    // The returned model holds the best epoch's weights: its validation loss is the best one.
    const v = r.validation;
    assert.ok(v);
    const loss = tf.tidy(
      () =>
        tf
          .neg(
            tf.mean(
              tf.sum(
                tf.mul(v.y, tf.log(tf.clipByValue(r.outcome.model.predict(v.x) as Tensor, 1e-7, 1 - 1e-7))),
                -1,
              ),
            ),
          )
          .dataSync()[0] as number,
    );
    assert.ok(Math.abs(loss - bestVal) < 1e-5, `${loss} vs best ${bestVal}`);
    r.dispose();
  });

  it('clips gradients by value: no weight moves more than lr · clipValue in one step', async () => {
    const spec = specOf({
      training: {
        optimizer: { type: 'sgd', learningRate: 1 },
        epochs: 1,
        batchSize: 'full',
        gradientClipping: { clipValue: 1e-3 },
        ...none,
      },
    });
    const fresh = await trainOn(tf, table, {
      ...spec,
      training: { ...spec.training, epochs: 1, gradientClipping: { clipValue: 1e-9 } },
    });
    const before = fresh.outcome.model.getWeights().map((w) => Array.from(w.dataSync()));
    fresh.dispose();
    const r = await trainOn(tf, table, spec);
    const after = r.outcome.model.getWeights().map((w) => Array.from(w.dataSync()));
    const moved = Math.max(
      ...after.flatMap((w, i) => w.map((v, j) => Math.abs(v - ((before[i] as number[])[j] as number)))),
    );
    assert.ok(moved <= 1e-3 + 1e-6 && moved > 1e-4, `largest step ${moved}`);
    r.dispose();
  });

  it('clips gradients by global norm', async () => {
    const r = await trainOn(
      tf,
      table,
      specOf({
        training: {
          optimizer: { type: 'sgd', learningRate: 0.5 },
          epochs: 5,
          gradientClipping: { clipNorm: 0.1 },
          ...none,
        },
      }),
    );
    assert.ok(lastLoss(r) < firstLoss(r));
    r.dispose();
  });

  it('class weights raise the recall of a rare class', async () => {
    const r = lcg(9);
    const rows = Array.from({ length: 200 }, (_, i) => {
      const rare = i % 10 === 0;
      return [(rare ? 0.6 : 0) + r() - 0.5, rare ? 'rare' : 'common'];
    });
    const imbalanced = await tableOf(['x', 'label'], rows);
    const recall = async (classWeights?: 'balanced') => {
      const t = await trainOn(
        tf,
        imbalanced,
        specOf({
          training: {
            optimizer: { type: 'adam', learningRate: 0.05 },
            epochs: 30,
            ...none,
            ...(classWeights ? { classWeights } : {}),
          },
        }),
      );
      const pred = (t.outcome.model.predict(t.train.x) as Tensor).argMax(-1).dataSync();
      const rare = Array.from(t.train.actual)
        .map((a, i) => [a, pred[i]])
        .filter(([a]) => a === 1);
      t.dispose();
      return rare.filter(([, p]) => p === 1).length / rare.length;
    };
    const plain = await recall();
    const balanced = await recall('balanced');
    assert.ok(balanced > plain + 0.2, `recall of the rare class: ${plain} unweighted, ${balanced} balanced`);
  });

  it('trains with every loss it offers', async () => {
    for (const loss of [
      'categoricalCrossentropy',
      'sparseCategoricalCrossentropy',
      'binaryCrossentropy',
      'meanSquaredError',
    ]) {
      const r = await trainOn(
        tf,
        table,
        specOf({ training: { loss, optimizer: { type: 'adam', learningRate: 0.05 }, epochs: 8, ...none } }),
      );
      assert.ok(lastLoss(r) < firstLoss(r), loss);
      if (loss === 'binaryCrossentropy')
        assert.deepEqual(r.outcome.model.outputs[0]?.shape, [null, 1], 'one sigmoid unit');
      r.dispose();
    }
    const lin = await linear();
    for (const loss of ['meanSquaredError', 'meanAbsoluteError', 'huber']) {
      const r = await trainOn(
        tf,
        lin,
        specOf({
          task: 'regression',
          training: { loss, optimizer: { type: 'adam', learningRate: 0.05 }, epochs: 8, ...none },
        }),
      );
      assert.ok(lastLoss(r) < firstLoss(r), loss);
      r.dispose();
    }
  });

  it('L2 and L1 regularization shrink the weights', async () => {
    const norm = async (kernelRegularizer?: object) => {
      const r = await trainOn(
        tf,
        table,
        specOf({
          model: {
            layers: [{ type: 'dense', units: 8, ...(kernelRegularizer ? { kernelRegularizer } : {}) }],
          },
          training: { optimizer: { type: 'adam', learningRate: 0.05 }, epochs: 20, ...none },
        }),
      );
      const kernel = r.outcome.model.getWeights()[0] as Tensor;
      const n = tf.tidy(() => tf.sum(tf.abs(kernel)).dataSync()[0] as number);
      r.dispose();
      return n;
    };
    const plain = await norm();
    assert.ok((await norm({ l2: 1 })) < plain * 0.7);
    assert.ok((await norm({ l1: 0.5 })) < plain * 0.7);
  });

  it('fails with DIVERGED, suggesting a smaller learning rate, when the loss stops being finite', async () => {
    const wild = await tableOf(
      ['a', 'label'],
      Array.from({ length: 20 }, (_, i) => [i * 1e6, i * 1e6]),
    );
    await assert.rejects(
      trainOn(
        tf,
        wild,
        specOf({
          task: 'regression',
          training: { optimizer: { type: 'gd', learningRate: 100 }, epochs: 50, ...none },
        }),
      ),
      (e: unknown) =>
        e instanceof UnrecoverableError && e.code === 'DIVERGED' && /lower the learning rate/.test(e.message),
    );
  });

  it('fails with INVALID_MODEL, naming the layer, when a layer does not fit its input', async () => {
    await assert.rejects(
      trainOn(
        tf,
        table,
        specOf({
          model: { layers: [{ type: 'conv2d', filters: 2, kernelSize: 3 }] },
          training: { epochs: 1, ...none },
        }),
      ),
      (e: unknown) =>
        e instanceof UnrecoverableError && e.code === 'INVALID_MODEL' && /layer 1 \(conv2d\)/.test(e.message),
    );
  });

  it('lets timers run during a long epoch (the heartbeat must keep the job invisible)', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    try {
      // A compiled step takes microseconds: it gets more of them, and more work per step.
      const compiled = engine.engine === 'compiled';
      const r = await trainOn(
        tf,
        await blobs(compiled ? 12_000 : 3000),
        specOf({
          ...(compiled ? { model: { layers: [{ type: 'dense', units: 256 }] } } : {}),
          training: { epochs: 1, batchSize: 1, validation: { type: 'none' } },
        }),
      );
      assert.ok(
        r.outcome.trainingSeconds > 0.6,
        `the epoch took ${r.outcome.trainingSeconds} s: make it longer`,
      );
      assert.ok(
        ticks >= 1,
        `a timer fired ${ticks} times during a ${r.outcome.trainingSeconds.toFixed(1)} s epoch`,
      );
      r.dispose();
    } finally {
      clearInterval(timer);
    }
  });

  it('leaves no tensors behind', async () => {
    const before = tf.memory().numTensors;
    const r = await trainOn(
      tf,
      table,
      specOf({
        model: {
          layers: [
            { type: 'dense', units: 4 },
            { type: 'dropout', rate: 0.1 },
          ],
        },
        training: { epochs: 4, earlyStopping: { patience: 2 } },
      }),
    );
    r.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  describe('layers: each builds with the expected shapes and trains', () => {
    const seq = async (n: number, length: number, ids = false) => {
      const r = lcg(5);
      return tableOf(
        ['s', 'label'],
        Array.from({ length: n }, (_, i) => {
          const up = i % 2 === 0;
          return [
            Array.from({ length }, (_, t) =>
              ids ? Math.floor(r() * 5) + (up ? 5 : 0) : (up ? t : length - t) / length + (r() - 0.5) * 0.2,
            ),
            up ? 'up' : 'down',
          ];
        }),
      );
    };
    const images = async (n: number) => {
      const r = lcg(6);
      return tableOf(
        ['img', 'label'],
        Array.from({ length: n }, (_, i) => {
          const vertical = i % 2 === 0;
          const img = Array.from(
            { length: 36 },
            (_, p) => ((vertical ? p % 6 : Math.floor(p / 6)) === 2 ? 1 : 0) + (r() - 0.5) * 0.3,
          );
          return [img, vertical ? 'vertical' : 'horizontal'];
        }),
      );
    };
    const cases: [string, () => Promise<Table>, number[], object[], number?][] = [
      [
        'dense + batchNormalization + dropout',
        () => blobs(60),
        [2],
        [{ type: 'dense', units: 8 }, { type: 'batchNormalization' }, { type: 'dropout', rate: 0.2 }],
      ],
      [
        'conv1d + maxPooling1d + flatten',
        () => seq(40, 8),
        [8, 1],
        [
          { type: 'conv1d', filters: 4, kernelSize: 3 },
          { type: 'maxPooling1d', poolSize: 2 },
          { type: 'flatten' },
        ],
      ],
      [
        'conv1d + averagePooling1d',
        () => seq(40, 8),
        [8, 1],
        [{ type: 'conv1d', filters: 4, kernelSize: 3, padding: 'same' }, { type: 'averagePooling1d' }],
      ],
      [
        'conv2d + maxPooling2d',
        () => images(40),
        [6, 6, 1],
        [{ type: 'conv2d', filters: 4, kernelSize: 3 }, { type: 'maxPooling2d' }, { type: 'flatten' }],
      ],
      [
        'conv2d (stride 2, same) + averagePooling2d',
        () => images(40),
        [6, 6, 1],
        [
          { type: 'conv2d', filters: 4, kernelSize: [3, 3], strides: 2, padding: 'same' },
          { type: 'averagePooling2d', poolSize: 1 },
        ],
      ],
      ['lstm', () => seq(40, 6), [6, 1], [{ type: 'lstm', units: 8 }]],
      [
        'gru (returnSequences) + flatten',
        () => seq(40, 6),
        [6, 1],
        [{ type: 'gru', units: 4, returnSequences: true }, { type: 'flatten' }],
      ],
      [
        'reshape + lstm',
        () => seq(40, 6),
        [6],
        [
          { type: 'reshape', targetShape: [3, 2] },
          { type: 'lstm', units: 4 },
        ],
      ],
      [
        'embedding + flatten',
        () => seq(40, 5, true),
        [5],
        [{ type: 'embedding', inputDim: 10, outputDim: 3 }, { type: 'flatten' }],
      ],
    ];
    for (const [name, data, shape, layers] of cases) {
      it(name, async () => {
        const feature = { name: name.startsWith('conv2d') ? 'img' : 's', shape };
        const spec = specOf({
          ...(name.startsWith('dense')
            ? {}
            : { dataset: { id: DATASET, label: 'label', features: [feature] } }),
          model: { layers },
          training: { optimizer: { type: 'adam', learningRate: 0.05 }, epochs: 12, batchSize: 8, ...none },
        });
        const r = await trainOn(tf, await data(), spec);
        assert.deepEqual(r.outcome.model.inputs[0]?.shape.slice(1), shape);
        assert.deepEqual(r.outcome.model.outputs[0]?.shape, [null, 2]);
        assert.ok(lastLoss(r) < firstLoss(r) * 0.9, `${name}: ${firstLoss(r)} → ${lastLoss(r)}`);
        r.dispose();
      });
    }
  });
}
