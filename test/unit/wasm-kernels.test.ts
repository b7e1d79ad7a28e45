import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { selectBackend } from '../../trainer/backend.ts';
import { registerMissingWasmKernels, WASM_MISSING_KERNELS } from '../../trainer/wasm-kernels.ts';
import {
  assertClose,
  nativeInstalled,
  on,
  type Pad,
  type Result,
  random,
  type Shape4,
  size,
} from '../helpers/backends.ts';

// TensorFlow native's own gradient kernels are checked against the same reference, when this
// machine has it (before any suite starts: selecting a backend must not race a test's setBackend).
const tensorflow = nativeInstalled() ? await selectBackend('tensorflow') : undefined;

type Rounding = 'floor' | 'round' | 'ceil' | undefined;

async function wasmVsCpu(label: string, f: () => tf.Tensor | tf.Tensor[], tol = 1e-4): Promise<void> {
  assertClose(await on('wasm', f), await on('cpu', f), label, tol);
}

const run = (name: string, inputs: tf.NamedTensorMap, attrs: object) =>
  tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor;

function outSize(xShape: Shape4, k: number[], strides: number | number[], pad: Pad, r: Rounding, dil = 1) {
  const depthwise = true;
  const info = tf.backend_util.computeConv2DInfo(
    xShape,
    [k[0], k[1], xShape[3], 1] as Shape4,
    strides as [number, number],
    dil,
    pad,
    r,
    depthwise,
  );
  return [info.outHeight, info.outWidth];
}

describe('wasm kernels missing from tfjs-backend-wasm', () => {
  before(async () => {
    assert.ok(await tf.setBackend('wasm'));
    await tf.ready();
  });

  it('registers the four kernels once, and is idempotent', () => {
    const first = registerMissingWasmKernels(tf);
    assert.deepEqual(first, [...WASM_MISSING_KERNELS]);
    assert.deepEqual(registerMissingWasmKernels(tf), []);
    for (const name of WASM_MISSING_KERNELS) assert.ok(tf.getKernel(name, 'wasm'), name);
  });

  it('Conv2DBackpropFilter matches cpu over strides, paddings, rounding, layouts', async () => {
    const cases: {
      x: Shape4;
      k: [number, number];
      f: number;
      s: number | [number, number];
      p: Pad;
      r?: Rounding;
    }[] = [
      { x: [2, 7, 8, 3], k: [3, 3], f: 4, s: 1, p: 'valid' },
      { x: [2, 7, 8, 3], k: [3, 3], f: 4, s: 2, p: 'same' },
      { x: [2, 9, 8, 3], k: [3, 2], f: 4, s: [2, 3], p: 'valid' },
      { x: [1, 9, 8, 2], k: [2, 3], f: 5, s: [3, 2], p: 'same' },
      { x: [3, 1, 20, 4], k: [1, 5], f: 6, s: [1, 2], p: 'same' }, // conv1d's shape
      { x: [2, 6, 6, 5], k: [1, 1], f: 3, s: 1, p: 'valid' },
      { x: [2, 7, 8, 3], k: [3, 3], f: 4, s: 2, p: 1, r: 'ceil' },
      { x: [2, 7, 8, 3], k: [3, 3], f: 4, s: 2, p: 2, r: 'floor' },
      { x: [2, 8, 7, 3], k: [3, 3], f: 4, s: 3, p: 1, r: 'round' },
      {
        x: [2, 7, 8, 3],
        k: [3, 3],
        f: 4,
        s: 1,
        p: [
          [0, 0],
          [1, 2],
          [0, 1],
          [0, 0],
        ],
      },
    ];
    for (const [i, c] of cases.entries()) {
      const [oh, ow] = outSize(c.x, c.k, c.s, c.p, c.r);
      const dyShape: Shape4 = [c.x[0], oh as number, ow as number, c.f];
      const xs = random(size(c.x), 10 + i);
      const dys = random(size(dyShape), 100 + i);
      const attrs = {
        filterShape: [c.k[0], c.k[1], c.x[3], c.f],
        strides: c.s,
        pad: c.p,
        dataFormat: 'NHWC',
        dimRoundingMode: c.r,
      };
      await wasmVsCpu(`conv2d filter ${JSON.stringify(c)}`, () =>
        run('Conv2DBackpropFilter', { x: tf.tensor4d(xs, c.x), dy: tf.tensor4d(dys, dyShape) }, attrs),
      );
      if (i < 2) {
        // The same data in NCHW.
        await wasmVsCpu(`conv2d filter NCHW ${JSON.stringify(c)}`, () =>
          run(
            'Conv2DBackpropFilter',
            {
              x: tf.transpose(tf.tensor4d(xs, c.x), [0, 3, 1, 2]),
              dy: tf.transpose(tf.tensor4d(dys, dyShape), [0, 3, 1, 2]),
            },
            { ...attrs, dataFormat: 'NCHW' },
          ),
        );
      }
    }
  });

  it('DepthwiseConv2dNativeBackpropFilter/Input match cpu (dilation 1)', async () => {
    const cases: {
      x: Shape4;
      k: [number, number];
      q: number;
      s: number | [number, number];
      p: Pad;
      r?: Rounding;
    }[] = [
      { x: [2, 7, 8, 3], k: [3, 3], q: 1, s: 1, p: 'valid' },
      { x: [2, 7, 8, 3], k: [3, 3], q: 2, s: 2, p: 'same' },
      { x: [1, 9, 8, 2], k: [2, 3], q: 3, s: [3, 2], p: 'same' },
      { x: [2, 9, 7, 2], k: [3, 2], q: 1, s: [2, 1], p: 'valid' },
      { x: [2, 7, 8, 3], k: [3, 3], q: 2, s: 2, p: 1, r: 'ceil' },
      { x: [2, 8, 8, 2], k: [3, 3], q: 1, s: 3, p: 2, r: 'floor' },
      {
        x: [2, 7, 8, 3],
        k: [3, 3],
        q: 2,
        s: 1,
        p: [
          [0, 0],
          [2, 1],
          [1, 0],
          [0, 0],
        ],
      },
    ];
    for (const [i, c] of cases.entries()) {
      const [oh, ow] = outSize(c.x, c.k, c.s, c.p, c.r);
      const dyShape: Shape4 = [c.x[0], oh as number, ow as number, c.x[3] * c.q];
      const filterShape: Shape4 = [c.k[0], c.k[1], c.x[3], c.q];
      const xs = random(size(c.x), 20 + i);
      const dys = random(size(dyShape), 200 + i);
      const ws = random(size(filterShape), 300 + i);
      const common = { strides: c.s, pad: c.p, dilations: 1, dimRoundingMode: c.r };
      await wasmVsCpu(`depthwise filter ${JSON.stringify(c)}`, () =>
        run(
          'DepthwiseConv2dNativeBackpropFilter',
          { x: tf.tensor4d(xs, c.x), dy: tf.tensor4d(dys, dyShape) },
          { ...common, filterShape },
        ),
      );
      await wasmVsCpu(`depthwise input ${JSON.stringify(c)}`, () =>
        run(
          'DepthwiseConv2dNativeBackpropInput',
          { dy: tf.tensor4d(dys, dyShape), filter: tf.tensor4d(ws, filterShape) },
          { ...common, inputShape: c.x },
        ),
      );
    }
  });

  it('depthwise gradients honour dilations: adjoint of the forward op (cpu ignores them)', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const cases: {
      x: Shape4;
      k: [number, number];
      q: number;
      s: number;
      d: number | [number, number];
      p: Pad;
    }[] = [
      { x: [2, 9, 10, 3], k: [3, 3], q: 2, s: 1, d: 2, p: 'same' },
      { x: [1, 11, 9, 2], k: [2, 3], q: 1, s: 1, d: [2, 3], p: 'valid' },
      // Strides and dilations both > 1: only reachable through runKernel (the ops refuse it, cpu
      // too). The input adjoint checks wasm's forward kernel through a stride-1 convolution.
      { x: [2, 12, 11, 2], k: [3, 2], q: 2, s: 2, d: 2, p: 'valid' },
    ];
    for (const [i, c] of cases.entries()) {
      const filterShape: Shape4 = [c.k[0], c.k[1], c.x[3], c.q];
      const xs = random(size(c.x), 40 + i);
      const vs = random(size(filterShape), 50 + i);
      const us = random(size(c.x), 60 + i);
      const attrs = { strides: c.s, pad: c.p, dilations: c.d, dataFormat: 'NHWC' };
      const forward = (x: tf.Tensor, w: tf.Tensor) => run('DepthwiseConv2dNative', { x, filter: w }, attrs);
      tf.tidy(() => {
        const x = tf.tensor4d(xs, c.x);
        const v = tf.tensor4d(vs, filterShape);
        const u = tf.tensor4d(us, c.x);
        const y = forward(x, v);
        const dy = tf.tensor(random(y.size, 70 + i), y.shape);
        const dW = run('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape });
        const dx = run(
          'DepthwiseConv2dNativeBackpropInput',
          { dy, filter: v },
          { ...attrs, inputShape: c.x },
        );
        // <dW, v> = <dy, conv(x, v)> and <dx, u> = <dy, conv(u, v)>.
        const dot = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(a, b)).dataSync()[0] as number;
        for (const [lhs, rhs] of [
          [dot(dW, v), dot(dy, y)],
          [dot(dx, u), dot(dy, forward(u, v))],
        ] as const) {
          assert.ok(
            Math.abs(lhs - rhs) <= 1e-4 * Math.max(1, Math.abs(rhs)),
            `${JSON.stringify(c)}: ${lhs} vs ${rhs}`,
          );
        }
      });
    }
  });

  it('UnsortedSegmentSum matches cpu, drops out-of-range ids, and scales to 20k segments', async () => {
    const ids = Int32Array.from(random(40, 5), (v) => Math.floor((v + 1) * 6.5) - 1); // −1 … 11
    for (const [inner, dtype] of [
      [[6], 'float32'],
      [[2, 3], 'float32'],
      [[], 'float32'],
      [[4], 'int32'],
    ] as const) {
      const xShape = [40, ...inner];
      const raw = random(size(xShape), 6);
      const xs = dtype === 'int32' ? Int32Array.from(raw, (v) => Math.round(v * 50)) : raw;
      await wasmVsCpu(`segment sum ${xShape} ${dtype}`, () =>
        tf.unsortedSegmentSum(tf.tensor(xs, xShape, dtype), tf.tensor1d(ids, 'int32'), 10),
      );
    }
    // An embedding-sized gradient: compare with a plain JS reference (cpu loops over segments).
    const n = 300;
    const segments = 20_000;
    const big = Int32Array.from(random(n, 7), (v) => Math.floor((v + 1) * 0.5 * segments));
    big[1] = big[0] as number; // a repeated id
    const xs = random(n * 16, 8);
    const [got] = await on('wasm', () =>
      tf.unsortedSegmentSum(tf.tensor2d(xs, [n, 16]), tf.tensor1d(big, 'int32'), segments),
    );
    const want = new Float32Array(segments * 16);
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < 16; j++) {
        const o = (big[r] as number) * 16 + j;
        want[o] = (want[o] as number) + (xs[r * 16 + j] as number);
      }
    }
    assertClose([got as Result], [{ shape: [segments, 16], values: want }], 'segment sum 20k', 1e-6);
  });

  it('each kernel adds exactly its output: engine leak check on, memory flat after dispose', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const x = tf.tensor4d(random(2 * 6 * 6 * 3, 3), [2, 6, 6, 3]);
    const dy = tf.tensor4d(random(2 * 3 * 3 * 6, 4), [2, 3, 3, 6]);
    const w = tf.tensor4d(random(3 * 3 * 3 * 2, 5), [3, 3, 3, 2]);
    const rows = tf.tensor2d(random(20, 6), [5, 4]);
    const ids = tf.tensor1d([3, 0, 3, 9, 1], 'int32');
    const calls: [string, tf.NamedTensorMap, object][] = [
      [
        'Conv2DBackpropFilter',
        { x, dy },
        { filterShape: [3, 3, 3, 6], strides: 2, pad: 'same', dataFormat: 'NHWC' },
      ],
      [
        'DepthwiseConv2dNativeBackpropFilter',
        { x, dy },
        { filterShape: [3, 3, 3, 2], strides: 2, pad: 'same' },
      ],
      [
        'DepthwiseConv2dNativeBackpropInput',
        { dy, filter: w },
        { inputShape: x.shape, strides: 2, pad: 'same' },
      ],
      ['UnsortedSegmentSum', { x: rows, segmentIds: ids }, { numSegments: 12 }],
    ];
    const wasTest = tf.env().getBool('IS_TEST');
    tf.env().set('IS_TEST', true); // runKernel then throws if the backend holds more data ids than outputs
    try {
      for (const [name, inputs, attrs] of calls) {
        const before = tf.memory();
        const out = run(name, inputs, attrs);
        const during = tf.memory();
        assert.equal(during.numTensors, before.numTensors + 1, name);
        assert.equal(during.numDataBuffers, before.numDataBuffers + 1, name);
        assert.equal(during.numBytes, before.numBytes + out.size * 4, name);
        out.dispose();
        assert.deepEqual(tf.memory(), before, name);
      }
    } finally {
      tf.env().set('IS_TEST', wasTest);
    }
    tf.dispose([x, dy, w, rows, ids]);
  });

  it('accepts bare TensorInfo inputs (a kernel calling a kernel) without touching their refcounts', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const backend = tf.backend();
    const x = tf.tensor4d(random(2 * 5 * 5 * 3, 1), [2, 5, 5, 3]);
    const dy = tf.tensor4d(random(2 * 3 * 3 * 4, 2), [2, 3, 3, 4]);
    const attrs = { filterShape: [3, 3, 3, 4], strides: 1, pad: 'valid' };
    const viaEngine = run('Conv2DBackpropFilter', { x, dy }, attrs);
    const before = tf.memory();
    const kernel = tf.getKernel('Conv2DBackpropFilter', 'wasm');
    const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
    const out = kernel.kernelFunc({
      inputs: { x: info(x), dy: info(dy) },
      attrs: attrs as unknown as tf.NamedAttrMap,
      backend,
    }) as tf.Tensor;
    assert.deepEqual(out.dataSync(), viaEngine.dataSync());
    out.dispose();
    assert.deepEqual(tf.memory(), before);
    assert.deepEqual(x.dataSync(), random(2 * 5 * 5 * 3, 1)); // the inputs are intact
    tf.dispose([x, dy, viaEngine]);
  });
});

/** Builds a model, sets seeded weights, returns every gradient of a seeded linear loss. */
function modelGrads(build: () => tf.LayersModel, input: () => tf.Tensor, seed: number): tf.Tensor[] {
  const model = build();
  model.setWeights(model.getWeights().map((w, i) => tf.tensor(random(w.size, seed + i), w.shape)));
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const x = input();
  const out = model.predict(x) as tf.Tensor;
  const r = tf.tensor(random(out.size, seed - 1), out.shape);
  out.dispose();
  const { grads } = tf.variableGrads(
    () => tf.sum(tf.mul(model.apply(x) as tf.Tensor, r)) as tf.Scalar,
    variables,
  );
  const list = variables.map((v) => grads[v.name] as tf.Tensor);
  model.dispose();
  return list;
}

const seq = (inputShape: number[], layers: Parameters<tf.Sequential['add']>[0][]) => {
  const m = tf.sequential();
  m.add(tf.layers.inputLayer({ inputShape }));
  for (const l of layers) m.add(l);
  return m;
};

describe(`layer gradients on wasm${tensorflow ? ' and tensorflow' : ''} match cpu`, () => {
  before(() => registerMissingWasmKernels(tf));

  const images = (shape: number[], seed: number) => () => tf.tensor(random(size(shape), seed), shape);
  const models: [string, () => tf.LayersModel, () => tf.Tensor][] = [
    [
      'conv1d (valid, then same stride 2)',
      () =>
        seq(
          [12, 3],
          [
            tf.layers.conv1d({ filters: 4, kernelSize: 3, activation: 'tanh' }),
            tf.layers.conv1d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same' }),
            tf.layers.flatten(),
            tf.layers.dense({ units: 2 }),
          ],
        ),
      images([3, 12, 3], 1),
    ],
    [
      'conv2d (valid, then same stride 2)',
      () =>
        seq(
          [9, 8, 2],
          [
            tf.layers.conv2d({ filters: 3, kernelSize: 3, activation: 'tanh' }),
            tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same' }),
            tf.layers.flatten(),
            tf.layers.dense({ units: 2 }),
          ],
        ),
      images([2, 9, 8, 2], 2),
    ],
    [
      'depthwiseConv2d and separableConv2d',
      () =>
        seq(
          [8, 8, 2],
          [
            tf.layers.conv2d({ filters: 3, kernelSize: 2, activation: 'tanh' }),
            tf.layers.depthwiseConv2d({
              kernelSize: 3,
              depthMultiplier: 2,
              padding: 'same',
              activation: 'tanh',
            }),
            tf.layers.separableConv2d({ filters: 4, kernelSize: 3, strides: 2, depthMultiplier: 2 }),
            tf.layers.flatten(),
            tf.layers.dense({ units: 2 }),
          ],
        ),
      images([2, 8, 8, 2], 3),
    ],
    [
      'embedding',
      () =>
        seq(
          [6],
          [
            tf.layers.embedding({ inputDim: 30, outputDim: 4 }),
            tf.layers.flatten(),
            tf.layers.dense({ units: 2 }),
          ],
        ),
      () => tf.tensor2d([1, 5, 5, 29, 0, 7, 3, 3, 3, 12, 29, 1], [2, 6], 'int32'),
    ],
  ];
  for (const [name, build, input] of models) {
    it(name, async () => {
      const grads = () => modelGrads(build, input, 1000);
      const reference = await on('cpu', grads);
      assertClose(await on('wasm', grads), reference, `${name} wasm`);
      if (tensorflow) assertClose(await on('tensorflow', grads), reference, `${name} tensorflow`);
    });
  }
});

/** conv2d → maxPool → depthwise → conv2d (stride 2) + a conv1d-over-embeddings branch-free CNN. */
function tinyCnn(): tf.LayersModel {
  return seq(
    [12, 12, 1],
    [
      tf.layers.conv2d({ filters: 6, kernelSize: 3, activation: 'relu', kernelInitializer: 'heNormal' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 2, activation: 'softmax' }),
    ],
  );
}

/** Two classes: a bright blob in the top or in the bottom half. */
function blobs(n: number, seed: number): { xs: tf.Tensor; ys: tf.Tensor } {
  const noise = random(n * 144, seed);
  const xs = new Float32Array(n * 144);
  const ys = new Float32Array(n * 2);
  for (let s = 0; s < n; s++) {
    const cls = s % 2;
    ys[s * 2 + cls] = 1;
    for (let p = 0; p < 144; p++) {
      const row = Math.floor(p / 12);
      xs[s * 144 + p] = 0.3 * (noise[s * 144 + p] as number) + (row < 6 === (cls === 0) ? 1 : 0);
    }
  }
  return { xs: tf.tensor4d(xs, [n, 12, 12, 1]), ys: tf.tensor2d(ys, [n, 2]) };
}

describe('training on wasm', () => {
  before(async () => {
    registerMissingWasmKernels(tf);
    assert.ok(await tf.setBackend('wasm'));
  });

  it('a tiny CNN learns (loss goes down)', () => {
    const model = tinyCnn();
    const { xs, ys } = blobs(32, 9);
    const optimizer = tf.train.adam(0.01);
    const losses: number[] = [];
    for (let step = 0; step < 15; step++) {
      const loss = optimizer.minimize(
        () => tf.losses.softmaxCrossEntropy(ys, model.apply(xs) as tf.Tensor) as tf.Scalar,
        true,
      ) as tf.Scalar;
      losses.push(loss.dataSync()[0] as number);
      loss.dispose();
    }
    const first = losses[0] as number;
    const last = losses.at(-1) as number;
    assert.ok(last < 0.6 * first, `loss ${first} → ${last}`);
    optimizer.dispose();
    model.dispose();
    tf.dispose([xs, ys]);
  });

  it('does not leak tensors or bytes over 50 steps through all four kernels', () => {
    const input = tf.input({ shape: [8] });
    const emb = tf.layers.embedding({ inputDim: 500, outputDim: 6 }).apply(input) as tf.SymbolicTensor;
    const c1 = tf.layers.conv1d({ filters: 5, kernelSize: 3, strides: 2 }).apply(emb) as tf.SymbolicTensor;
    const img = tf.layers.reshape({ targetShape: [3, 5, 1] }).apply(c1) as tf.SymbolicTensor;
    const dw = tf.layers
      .depthwiseConv2d({ kernelSize: 2, depthMultiplier: 2 })
      .apply(img) as tf.SymbolicTensor;
    const c2 = tf.layers
      .conv2d({ filters: 3, kernelSize: 2, padding: 'same' })
      .apply(dw) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 1 }).apply(tf.layers.flatten().apply(c2)) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    const xs = tf.tensor2d(
      Int32Array.from(random(16 * 8, 11), (v) => Math.floor((v + 1) * 250)),
      [16, 8],
      'int32',
    );
    const ys = tf.tensor2d(random(16, 12), [16, 1]);
    const optimizer = tf.train.adam(0.01);
    const step = () =>
      optimizer.minimize(() => tf.losses.meanSquaredError(ys, model.apply(xs) as tf.Tensor) as tf.Scalar);
    step(); // Adam creates its slot variables on the first step.
    const before = tf.memory();
    for (let i = 0; i < 50; i++) step();
    const after = tf.memory();
    assert.equal(after.numTensors, before.numTensors);
    assert.equal(after.numBytes, before.numBytes);
    assert.equal(after.numDataBuffers, before.numDataBuffers);
    optimizer.dispose();
    model.dispose();
    tf.dispose([xs, ys]);
  });
});
