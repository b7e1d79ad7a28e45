/**
 * wasm and TensorFlow native train the same spec to the same model, up to float32 round-off. Both
 * start from identical weights (tfjs's seeded initialisers run in JavaScript) and see the same
 * batches (the engine's seeded permutation); their kernels then round differently in the last digits
 * (different summation orders), and the difference grows slowly with the steps.
 *
 * Stated tolerances, with the differences measured on this machine in brackets:
 *   - first epoch's loss: relative 1e-5                  [0 to 8e-8]
 *   - every epoch's loss: relative 2e-2 + absolute 1e-6  [regression 4e-7; classifiers up to 5e-3
 *                                                         as their loss falls towards 1e-5]
 *   - final weights: max |Δw| ≤ 1e-3 · max |w|           [4e-7 to 3e-5]
 *   - validation: the same accuracy (classification), val loss relative 2e-2 (regression) [2e-7]
 * Bitwise equality holds only run to run on one backend (the engine and runJob suites check that
 * on each backend), not across backends.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Table } from '../../core/datasets/tabular.ts';
import type { JobSpec } from '../../core/jobs/job-spec.ts';
import type { SelectedBackend } from '../../trainer/backend.ts';
import { trainingBackends, use } from '../helpers/backends.ts';
import { DATASET_ID, specOf } from '../helpers/specs.ts';
import { blobs, lcg, tableOf } from '../helpers/tables.ts';
import { trainOn } from '../helpers/training.ts';

const backends = await trainingBackends();
const wasm = backends.find((b) => b.name === 'wasm') as SelectedBackend;
const tensorflow = backends.find((b) => b.name === 'tensorflow');

const sequences = (n: number, length: number) => {
  const r = lcg(5);
  return tableOf(
    ['s', 'label'],
    Array.from({ length: n }, (_, i) => {
      const up = i % 2 === 0;
      return [
        Array.from({ length }, (_, t) => (up ? t : length - t) / length + (r() - 0.5) * 0.2),
        up ? 'up' : 'down',
      ];
    }),
  );
};
const images = (n: number) => {
  const r = lcg(6);
  return tableOf(
    ['img', 'label'],
    Array.from({ length: n }, (_, i) => {
      const vertical = i % 2 === 0;
      return [
        Array.from(
          { length: 36 },
          (_, p) => ((vertical ? p % 6 : Math.floor(p / 6)) === 2 ? 1 : 0) + (r() - 0.5) * 0.3,
        ),
        vertical ? 'vertical' : 'horizontal',
      ];
    }),
  );
};
/** y = 2a − 3b + 0.5 + noise: a loss that stays well above zero. */
const noisyLinear = (n: number) => {
  const r = lcg(9);
  return tableOf(
    ['a', 'b', 'label'],
    Array.from({ length: n }, () => {
      const a = r() * 2 - 1;
      const b = r() * 2 - 1;
      return [a, b, 2 * a - 3 * b + 0.5 + (r() - 0.5) * 0.4];
    }),
  );
};
const adam = (learningRate: number, epochs: number, batchSize: number) => ({
  optimizer: { type: 'adam', learningRate },
  epochs,
  batchSize,
});

const CASES: [string, () => Promise<Table>, JobSpec][] = [
  [
    'dense classifier',
    () => blobs(200),
    specOf({
      model: {
        layers: [
          { type: 'dense', units: 16 },
          { type: 'dense', units: 8 },
        ],
      },
      training: adam(0.01, 20, 16),
    }),
  ],
  [
    'dense regression',
    () => noisyLinear(200),
    specOf({
      task: 'regression',
      model: { layers: [{ type: 'dense', units: 8 }] },
      training: { optimizer: { type: 'sgd', learningRate: 0.05 }, epochs: 20, batchSize: 16 },
    }),
  ],
  [
    'conv2d + maxPooling2d',
    () => images(60),
    specOf({
      dataset: { id: DATASET_ID, label: 'label', features: [{ name: 'img', shape: [6, 6, 1] }] },
      model: {
        layers: [
          { type: 'conv2d', filters: 4, kernelSize: 3 },
          { type: 'maxPooling2d' },
          { type: 'flatten' },
        ],
      },
      training: adam(0.05, 12, 8),
    }),
  ],
  [
    'lstm',
    () => sequences(60, 6),
    specOf({
      dataset: { id: DATASET_ID, label: 'label', features: [{ name: 's', shape: [6, 1] }] },
      model: { layers: [{ type: 'lstm', units: 8 }] },
      training: adam(0.05, 12, 8),
    }),
  ],
];

interface Trained {
  history: Record<string, number | undefined>[];
  weights: number[];
}

async function train(backend: SelectedBackend, table: Table, spec: JobSpec): Promise<Trained> {
  const r = await trainOn(await use(backend), table, spec);
  const trained = {
    history: r.outcome.history as unknown as Trained['history'],
    weights: r.outcome.model.getWeights().flatMap((w) => Array.from(w.dataSync())),
  };
  r.dispose();
  return trained;
}

describe('wasm and tensorflow train the same spec to the same model, within float32 round-off', {
  skip: tensorflow ? false : 'no tensorflow backend here: run `npm run setup:native`',
}, () => {
  let tables: Table[];
  before(async () => {
    tables = await Promise.all(CASES.map(([, table]) => table()));
  });
  CASES.forEach(([name, , spec], k) => {
    it(name, async () => {
      const a = await train(wasm, tables[k] as Table, spec);
      const b = await train(tensorflow as SelectedBackend, tables[k] as Table, spec);
      assert.equal(a.history.length, b.history.length, 'epochs');
      const loss = (t: Trained, i: number) => t.history[i]?.loss as number;
      const first = Math.abs(loss(a, 0) - loss(b, 0));
      assert.ok(first <= 1e-5 * Math.abs(loss(b, 0)), `first epoch: ${loss(a, 0)} vs ${loss(b, 0)}`);
      a.history.forEach((_, i) => {
        const diff = Math.abs(loss(a, i) - loss(b, i));
        assert.ok(
          diff <= 2e-2 * Math.abs(loss(b, i)) + 1e-6,
          `epoch ${i + 1}: ${loss(a, i)} vs ${loss(b, i)}`,
        );
      });
      let diff = 0;
      let scale = 0;
      b.weights.forEach((w, i) => {
        diff = Math.max(diff, Math.abs((a.weights[i] as number) - w));
        scale = Math.max(scale, Math.abs(w));
      });
      assert.ok(diff <= 1e-3 * scale, `weights: max diff ${diff} vs max |w| ${scale}`);
      const last = (t: Trained) => t.history.at(-1) ?? {};
      if (spec.task === 'classification') {
        assert.equal(last(a).valAccuracy, last(b).valAccuracy, 'validation accuracy');
      } else {
        const [va, vb] = [last(a).valLoss as number, last(b).valLoss as number];
        assert.ok(Math.abs(va - vb) <= 2e-2 * Math.abs(vb), `validation loss ${va} vs ${vb}`);
      }
    });
  });
});
