/**
 * A long training must not leak: hundreds of tiny epochs through the real pipeline (fit → train,
 * with validation, clipping, class weights, dropout; and a small CNN through the replaced wasm
 * kernels) keep the tensor count, the tensor bytes and the wasm heap exactly flat, leave nothing
 * behind once disposed, and keep the live JS heap and the rest of the RSS (read after a forced GC)
 * within small bounds. "The rest": RSS less the JS heap's physical size, since V8 grows its young
 * generation by ~64 MiB once, a few hundred epochs into a busy run, and keeps it (not a leak).
 * On the compiled engine the same bounds hold for TensorFlow's own memory (its graph, session,
 * variables and kernels' buffers live in that rest of the RSS), and tfjs's tensors stay flat
 * although the model's weights are copied into them after every epoch.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Table } from '../../core/datasets/tabular.ts';
import type { JobSpec } from '../../core/jobs/job-spec.ts';
import type { TF } from '../../trainer/backend.ts';
import type { SelectRunner, TrainHooks } from '../../trainer/engine.ts';
import { type TrainingEngine, trainingEngines, use } from '../helpers/backends.ts';
import { sequences } from '../helpers/engine-cases.ts';
import { specOf } from '../helpers/specs.ts';
import { blobs, lcg, tableOf } from '../helpers/tables.ts';
import { trainOn } from '../helpers/training.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

interface Sample {
  epoch: number;
  tensors: number;
  bytes: number;
  /** Every 50 epochs, after a forced GC (NaN otherwise). */
  jsHeap: number;
  /** RSS less the JS heap's resident pages: the wasm heap, native memory, code. */
  rssOutsideJsHeap: number;
  wasmHeap: number;
}

/** Trains and samples memory after every epoch; returns the samples (the model is disposed). */
async function sampled(tf: TF, table: Table, spec: JobSpec, select?: SelectRunner): Promise<Sample[]> {
  // 0 off wasm: TensorFlow's own memory is in the RSS (the compiled engine's graph, session, data).
  const wasmHeap = () =>
    (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.byteLength ?? 0;
  const samples: Sample[] = [];
  const hooks: TrainHooks = {
    onEpoch: (metrics) => {
      const m = tf.memory();
      const measure = metrics.epoch % 50 === 0;
      if (measure) gc();
      const u = measure ? process.memoryUsage() : undefined;
      samples.push({
        epoch: metrics.epoch,
        tensors: m.numTensors,
        bytes: m.numBytes,
        jsHeap: u ? u.heapUsed : Number.NaN,
        rssOutsideJsHeap: u ? u.rss - getHeapStatistics().total_physical_size : Number.NaN,
        wasmHeap: u ? wasmHeap() : Number.NaN,
      });
      return undefined;
    },
  };
  const before = tf.memory();
  const result = await trainOn(tf, table, spec, hooks, select);
  if (select) assert.equal(result.outcome.engine, 'compiled', result.outcome.engineReason);
  assert.equal(result.outcome.history.length, spec.training.epochs);
  result.dispose();
  const after = tf.memory();
  assert.equal(after.numTensors, before.numTensors, 'tensors left after dispose');
  assert.equal(after.numBytes, before.numBytes, 'bytes left after dispose');
  return samples;
}

/** Tensors, bytes and the wasm heap exactly flat; the JS heap and RSS within bounds (MiB). */
function assertFlat(samples: Sample[], label: string): void {
  // After a few epochs everything a run keeps (weights, optimizer slots, data) exists.
  const settled = samples[4] as Sample;
  for (const s of samples.slice(4)) {
    assert.equal(s.tensors, settled.tensors, `${label}: tensors at epoch ${s.epoch}`);
    assert.equal(s.bytes, settled.bytes, `${label}: tensor bytes at epoch ${s.epoch}`);
  }
  const measured = samples.filter((s) => !Number.isNaN(s.jsHeap));
  const first = measured[0] as Sample;
  const growth = (key: 'jsHeap' | 'rssOutsideJsHeap' | 'wasmHeap') =>
    (Math.max(...measured.map((s) => s[key])) - first[key]) / 2 ** 20;
  const from = `from epoch ${first.epoch} to ${samples.at(-1)?.epoch}`;
  assert.equal(growth('wasmHeap'), 0, `${label}: wasm heap grew ${growth('wasmHeap')} MiB ${from}`);
  for (const key of ['jsHeap', 'rssOutsideJsHeap'] as const) {
    assert.ok(growth(key) < BOUND_MIB[key], `${label}: ${key} grew ${growth(key).toFixed(1)} MiB ${from}`);
  }
}

/** Allowed growth from epoch 50 on (observed: < 1 MiB of JS heap, 1–4 MiB of the rest). */
const BOUND_MIB = { jsHeap: 4, rssOutsideJsHeap: 16 };

const engines = await trainingEngines();
const wasm = engines.find((e) => e.label === 'wasm') as TrainingEngine;
const compiled = engines.find((e) => e.engine === 'compiled');

/** The MLP both engines train for 400 tiny epochs (dropout, Adam, clipping, class weights), with `training` extras. */
const longMlp = (training: Record<string, unknown> = {}) => ({
  model: {
    layers: [
      { type: 'dense', units: 16 },
      { type: 'dropout', rate: 0.2 },
      { type: 'dense', units: 8 },
    ],
  },
  training: {
    epochs: 400,
    batchSize: 16,
    optimizer: { type: 'adam', learningRate: 0.01 },
    gradientClipping: { clipNorm: 1 },
    classWeights: 'balanced',
    validation: { type: 'holdout', fraction: 0.25 },
    ...training,
  },
});

describe('memory over a long training', () => {
  let tf: TF;
  before(async () => {
    tf = await use(wasm.backend);
  });

  it('an MLP over 400 tiny epochs: tensors, bytes and wasm heap flat, JS heap and RSS bounded', async () => {
    const spec = specOf(longMlp());
    const table = await blobs(64);
    assertFlat(await sampled(tf, table, spec), 'mlp');
  });

  it('a small CNN over 200 epochs (conv and pool gradients on wasm): the same', async () => {
    const r = lcg(5);
    const table = await tableOf(
      ['img', 'label'],
      Array.from({ length: 32 }, (_, i) => [Array.from({ length: 64 }, () => r() + (i % 2) * 0.5), i % 2]),
    );
    const spec = specOf({
      dataset: {
        id: '01M8JH2TQYPMBNJ50HMGRP3N6M',
        label: 'label',
        features: [{ name: 'img', shape: [8, 8, 1] }],
      },
      model: {
        layers: [
          { type: 'conv2d', filters: 4, kernelSize: 3 },
          { type: 'maxPooling2d', poolSize: 2 },
          { type: 'conv2d', filters: 4, kernelSize: 2 },
        ],
      },
      training: { epochs: 200, batchSize: 8, validation: { type: 'holdout', fraction: 0.25 } },
    });
    assertFlat(await sampled(tf, table, spec), 'cnn');
  });
});

describe('memory over a long training on the compiled engine', {
  skip: compiled ? false : 'no tensorflow backend here: run `npm run setup:native`',
}, () => {
  let tf: TF;
  before(async () => {
    tf = await use((compiled as TrainingEngine).backend);
  });

  it("an MLP with dropout over 400 epochs: tfjs tensors flat, JS heap and RSS (TensorFlow's memory) bounded", async () => {
    const spec = specOf(longMlp({ earlyStopping: { patience: 1000 } }));
    assertFlat(await sampled(tf, await blobs(64), spec, compiled?.select), 'compiled mlp');
  });

  it('an LSTM (the fused op and its explicit backward) over 300 epochs: the same', async () => {
    const table = await sequences(32, 6);
    const spec = specOf({
      dataset: { id: '01M8JH2TQYPMBNJ50HMGRP3N6M', label: 'label', features: [{ name: 's', shape: [6, 1] }] },
      model: { layers: [{ type: 'lstm', units: 8 }, { type: 'batchNormalization' }] },
      training: { epochs: 300, batchSize: 8, validation: { type: 'holdout', fraction: 0.25 } },
    });
    assertFlat(await sampled(tf, table, spec, compiled?.select), 'compiled lstm');
  });
});
