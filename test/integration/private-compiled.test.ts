/**
 * Private training (DP-SGD) on the compiled engine: a model whose per-example gradients the eager
 * engine vectorises (a chain of dense layers) trains as one TensorFlow graph per step, fed the rows
 * and the noise drawn in JS from the run's keyed stream in the eager engine's order. The same spec,
 * data, seed and key train to the same model on both engines within the compiled engine's stated
 * tolerances (docs/compiled-engine.md#numerics), noise included; a compiled private checkpoint
 * resumes on compiled, bitwise equal to an uninterrupted run.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Tensor, Variable } from '@tensorflow/tfjs';
import type { Table } from '../../core/datasets/tabular.ts';
import type { JobSpec } from '../../core/jobs/job-spec.ts';
import { prepareData } from '../../core/training/dataset-prep.ts';
import type { TF } from '../../trainer/backend.ts';
import { DT } from '../../trainer/compiled/native.ts';
import { CompiledProgram } from '../../trainer/compiled/program.ts';
import type { SelectRunner, TrainState } from '../../trainer/engine.ts';
import { type FitOptions, type FitResult, fit } from '../../trainer/fit.ts';
import { KeyedRandom } from '../../trainer/keyed-random.ts';
import type { OptimizerState } from '../../trainer/optimizer-state.ts';
import { drawStep } from '../../trainer/private-step.ts';
import { type TrainingEngine, trainingEngines, use } from '../helpers/backends.ts';
import { specOf } from '../helpers/specs.ts';
import { blobs, upDownSequences } from '../helpers/tables.ts';

const engines = await trainingEngines();
const compiled = engines.find((e) => e.engine === 'compiled');
const eager = engines.find((e) => e.backend.name === 'tensorflow' && e.engine === 'eager');
const skip = compiled ? false : 'no tensorflow backend here: run `npm run setup:native`';

const KEY = new Uint8Array(32).fill(5);
const flat = (r: FitResult) => r.outcome.model.getWeights().flatMap((w) => Array.from(w.dataSync()));

const privateSpec = (training: object = {}, layers: unknown[] = [{ type: 'dense', units: 8 }]): JobSpec =>
  specOf({
    dataset: { id: '01M8JH2TQYPMBNJ50HMGRP3N6M', label: 'label' },
    model: { layers },
    training: {
      epochs: 6,
      batchSize: 8,
      seed: 3,
      optimizer: { type: 'adam', learningRate: 0.05 },
      validation: { type: 'holdout', fraction: 0.25 },
      privacy: { noiseMultiplier: 1.1, clipNorm: 0.5 },
      ...training,
    },
  });

describe('private training on the compiled engine', { skip }, () => {
  let tf: TF;
  let table: Table;
  let select: SelectRunner;
  before(async () => {
    tf = await use((compiled as TrainingEngine).backend);
    select = (compiled as TrainingEngine).select as SelectRunner;
    table = await blobs(60);
  });

  const fitOn = async (spec: JobSpec, selectRunner?: SelectRunner, more: Partial<FitOptions> = {}) => {
    const data = prepareData(table, spec);
    return fit(tf, spec, data, {
      trainRows: data.trainRows,
      validationRows: data.validationRows,
      privacyKey: KEY,
      ...(selectRunner ? { selectRunner } : {}),
      ...more,
    });
  };
  const dispose = (r: FitResult) => {
    r.outcome.model.dispose();
    tf.dispose([r.train.x, r.train.y, ...(r.validation ? [r.validation.x, r.validation.y] : [])]);
  };

  /** The stated tolerances of docs/compiled-engine.md#numerics. */
  const assertAgree = (a: FitResult, b: FitResult) => {
    assert.equal(a.outcome.history.length, b.outcome.history.length, 'epochs');
    const loss = (r: FitResult, i: number) => r.outcome.history[i]?.loss as number;
    assert.ok(Math.abs(loss(a, 0) - loss(b, 0)) <= 1e-5 * Math.abs(loss(a, 0)), `first epoch loss`);
    a.outcome.history.forEach((_, i) => {
      const diff = Math.abs(loss(a, i) - loss(b, i));
      assert.ok(diff <= 1e-3 * Math.abs(loss(a, i)) + 1e-6, `epoch ${i + 1}: ${loss(a, i)} vs ${loss(b, i)}`);
    });
    const [wa, wb] = [flat(a), flat(b)];
    let diff = 0;
    let scale = 0;
    wa.forEach((w, i) => {
      diff = Math.max(diff, Math.abs((wb[i] as number) - w));
      scale = Math.max(scale, Math.abs(w));
    });
    assert.ok(diff <= 2e-4 * scale, `final weights: max |Δw| ${diff} vs max |w| ${scale}`);
  };

  const cases: [string, JobSpec][] = [
    [
      'two dense layers, Adam, an L2 penalty',
      privateSpec({}, [
        { type: 'dense', units: 8, activation: 'tanh', kernelRegularizer: { l2: 0.01 } },
        { type: 'dense', units: 6, useBias: false },
      ]),
    ],
    [
      'batches of one row (many empty samples), SGD, class weights',
      privateSpec({
        batchSize: 1,
        epochs: 3,
        optimizer: { type: 'sgd', learningRate: 0.05 },
        classWeights: 'balanced',
      }),
    ],
  ];
  for (const [name, spec] of cases) {
    it(`trains the model the eager engine trains, noise included: ${name}`, async () => {
      const onEager = await fitOn(spec);
      const onCompiled = await fitOn(spec, select);
      assert.equal(onEager.outcome.engine, 'eager');
      assert.equal(onCompiled.outcome.engine, 'compiled');
      assert.match(onCompiled.outcome.engineReason, /private training with vectorised per-example gradients/);
      const [p, q] = [onEager.outcome.privacy, onCompiled.outcome.privacy];
      assert.ok(p && q);
      assert.equal(q.steps, p.steps);
      assert.equal(q.cost.perExampleGradients, 'vectorized');
      assert.ok(q.cost.secondsPerStep > 0 && q.cost.nonPrivateSecondsPerStep > 0);
      assertAgree(onEager, onCompiled);
      // Without its noise the compiled run would not agree: the noise moves the weights well past the tolerance.
      const quiet = await fitOn(
        { ...spec, training: { ...spec.training, privacy: { noiseMultiplier: 0.001, clipNorm: 0.5 } } },
        select,
      );
      assert.throws(() => assertAgree(onEager, quiet), /final weights|epoch/);
      for (const r of [onEager, onCompiled, quiet]) dispose(r);
    });
  }

  it('the one-row batches case does draw empty samples (the same stream both engines use)', () => {
    const random = KeyedRandom.create(KEY);
    let empty = 0; // 45 training rows; the model's trainable weights: 2×8 + 8, 8×2 + 2
    for (let s = 0; s < 45; s++)
      if (drawStep(random, 45, 1 / 45, [2 * 8, 8, 8 * 2, 2]).sample.length === 0) empty++;
    assert.ok(empty > 0, 'no empty sample in the first epoch');
  });

  it('one compiled step clips each row exactly as a brute-force row-by-row computation, and an empty sample is noise alone', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          inputShape: [3],
          units: 5,
          activation: 'tanh',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
          biasInitializer: tf.initializers.randomUniform({ minval: -0.1, maxval: 0.1, seed: 5 }),
        }),
        tf.layers.dense({
          units: 3,
          activation: 'softmax',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }),
        }),
      ],
    });
    const n = 12;
    const xs = Float32Array.from({ length: n * 3 }, (_, i) => Math.sin(i * 1.7) * 2);
    const ys = Float32Array.from({ length: n * 3 }, (_, i) => (i % 3 === Math.floor(i / 3) % 3 ? 1 : 0));
    const ws = Float32Array.from({ length: n }, (_, i) => 1 + (i % 2));
    // Each row's own gradient of w_i·loss_i (tfjs), its norm, and the mean of the clipped gradients.
    const perRow = tf.tidy(() =>
      Array.from({ length: n }, (_, i) => {
        const { grads } = tf.variableGrads(() => {
          const pred = model.apply(tf.tensor2d(xs.slice(3 * i, 3 * i + 3), [1, 3])) as Tensor;
          const y = tf.tensor2d(ys.slice(3 * i, 3 * i + 3), [1, 3]);
          return tf.mul(
            tf.neg(tf.sum(tf.mul(y, tf.log(tf.clipByValue(pred, 1e-7, 1 - 1e-7))))),
            ws[i] as number,
          );
        });
        return model.trainableWeights.map((w) =>
          Array.from((grads[(w.read() as Variable).name] as Tensor).dataSync()),
        );
      }),
    );
    const norms = perRow.map((g) => Math.sqrt(g.flat().reduce((a, v) => a + v * v, 0)));
    const clipNorm = [...norms].sort((a, b) => a - b)[n / 2] as number;
    const expected = perRow[0]?.map((w, j) =>
      w.map(
        (_, k) =>
          perRow.reduce(
            (a, g, i) => a + (g[j]?.[k] as number) * Math.min(1, clipNorm / (norms[i] as number)),
            0,
          ) / n,
      ),
    ) as number[][];
    assert.ok(
      norms.some((v) => v > clipNorm) && norms.some((v) => v < clipNorm),
      'some rows clipped, some not',
    );

    const setup = (compiled as TrainingEngine).compiled;
    assert.ok(setup?.addon);
    const sigma = 0.7;
    const program = new CompiledProgram({
      addon: setup.addon,
      model,
      loss: 'categoricalCrossentropy',
      optimizer: specOf({ training: { optimizer: { type: 'sgd', learningRate: 1 } } }).training.optimizer,
      data: {
        x: { dtype: DT.float32, shape: [n, 3], data: xs },
        y: { dtype: DT.float32, shape: [n, 3], data: ys },
        rowWeights: { dtype: DT.float32, shape: [n], data: ws },
      },
      threads: setup.threads,
      privacy: { clipNorm, noiseMultiplier: sigma, expectedBatchSize: n },
    });
    try {
      const values = (v: { data: unknown }[]) => v.map((t) => Array.from(t.data as Float32Array));
      program.setWeights(
        model
          .getWeights()
          .map((w) => ({ dtype: DT.float32, shape: [...w.shape], data: w.dataSync() as Float32Array })),
      );
      const before = values(program.readWeights());
      const zeros = program.noiseSizes.map((size) => new Float32Array(size));
      program.privateStep(
        Int32Array.from({ length: n }, (_, i) => i),
        zeros,
        new Int32Array(2),
      );
      const after = values(program.readWeights());
      after.forEach((w, j) => {
        w.forEach((v, k) => {
          const moved = (before[j]?.[k] as number) - v;
          assert.ok(
            Math.abs(moved - (expected[j]?.[k] as number)) < 2e-5,
            `weight ${j}[${k}] moved ${moved}, expected ${expected[j]?.[k]}`,
          );
        });
      });
      assert.equal(program.takeSums().loss > 0, true);
      // No rows: the update is σ·C·noise / (q·n), and the sums stay zero.
      const noise = program.noiseSizes.map((size) =>
        Float32Array.from({ length: size }, (_, i) => Math.cos(i + size)),
      );
      program.privateStep(new Int32Array(0), noise, new Int32Array(2));
      const last = values(program.readWeights());
      last.forEach((w, j) => {
        w.forEach((v, k) => {
          const step = (sigma * clipNorm * (noise[j]?.[k] as number)) / n;
          assert.ok(
            Math.abs((after[j]?.[k] as number) - v - step) < 1e-6,
            `weight ${j}[${k}]: noise-only step`,
          );
        });
      });
      assert.deepEqual(program.takeSums(), { loss: 0, metric: 0 });
    } finally {
      program.close();
      model.dispose();
    }
  });

  it('resumes a compiled private checkpoint on compiled, bitwise equal to an uninterrupted run', async () => {
    const spec = privateSpec({ epochs: 8 });
    const straight = await fitOn(spec, select);
    let saved: { state: TrainState; optimizer: OptimizerState; weights: Tensor[] } | undefined;
    let engine: string | undefined;
    const first = await fitOn(spec, select, {
      hooks: {
        onEpoch: async (metrics, context) => {
          if (metrics.epoch !== 3) return undefined;
          engine = context.engine;
          saved = {
            state: structuredClone(context.state),
            optimizer: await context.captureOptimizer(),
            weights: context.model.getWeights().map((w) => w.clone()),
          };
          return 'stop';
        },
      },
    });
    assert.equal(engine, 'compiled');
    assert.ok(saved?.state.privacy);
    const resumed = await fitOn(spec, select, {
      privacyKey: new Uint8Array(32).fill(9), // the checkpoint's stream must win
      resume: { ...saved, engine: 'compiled' },
    });
    assert.equal(resumed.outcome.engine, 'compiled');
    assert.equal(resumed.outcome.privacy?.steps, straight.outcome.privacy?.steps);
    assert.deepEqual(flat(resumed), flat(straight));
    assert.deepEqual(
      resumed.outcome.history.map((h) => h.loss),
      straight.outcome.history.map((h) => h.loss),
    );
    for (const r of [straight, first, resumed]) dispose(r);
  });

  it('with dropout (masks from the job seed in the graph), is reproducible from its key and seed alone', async () => {
    const spec = privateSpec({ epochs: 3 }, [
      { type: 'dense', units: 8 },
      { type: 'dropout', rate: 0.3 },
    ]);
    const [a, b] = [await fitOn(spec, select), await fitOn(spec, select)];
    const c = await fitOn(spec, select, { privacyKey: new Uint8Array(32).fill(6) });
    assert.equal(a.outcome.engine, 'compiled');
    assert.deepEqual(flat(a), flat(b), 'same key, same run');
    assert.notDeepEqual(flat(a), flat(c), 'another key, other samples and noise');
    for (const r of [a, b, c]) dispose(r);
  });

  it('keeps a model whose per-example gradients need microbatches on the eager engine, saying why', async () => {
    const seq = await upDownSequences();
    const spec = specOf({
      dataset: { id: '01M8JH2TQYPMBNJ50HMGRP3N6M', label: 'label', features: [{ name: 's', shape: [6, 1] }] },
      model: { layers: [{ type: 'conv1d', filters: 2, kernelSize: 3 }, { type: 'flatten' }] },
      training: { epochs: 1, batchSize: 6, validation: { type: 'none' }, privacy: { noiseMultiplier: 1 } },
    });
    const data = prepareData(seq, spec);
    const r = await fit(tf, spec, data, { trainRows: data.trainRows, privacyKey: KEY, selectRunner: select });
    assert.equal(r.outcome.engine, 'eager');
    assert.equal(
      r.outcome.engineReason,
      'private training of a model with convolutions runs per example on the eager engine',
    );
    assert.equal(r.outcome.privacy?.cost.perExampleGradients, 'microbatch');
    dispose(r);
  });

  it('the eager engine of the same backend still trains private runs when asked', async () => {
    assert.ok(eager);
    const r = await fitOn(privateSpec({ epochs: 1 }), eager.select);
    assert.equal(r.outcome.engine, 'eager');
    dispose(r);
  });
});
