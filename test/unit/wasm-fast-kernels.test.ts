import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import {
  registerFastWasmKernels,
  restoreStockWasmKernels,
  WASM_FAST_KERNELS,
} from '../../trainer/wasm-fast-kernels.ts';
import { registerMissingWasmKernels } from '../../trainer/wasm-kernels.ts';
import { assertClose, on, type Pad, random, type Shape4, size } from '../helpers/backends.ts';

async function wasmVsCpu(label: string, f: () => tf.Tensor | tf.Tensor[], tol = 1e-5): Promise<void> {
  assertClose(await on('wasm', f), await on('cpu', f), label, tol);
}

const run = (name: string, inputs: tf.NamedTensorMap, attrs: object) =>
  tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor;
const t = (shape: number[], seed: number) => tf.tensor(random(size(shape), seed), shape);

describe('faster wasm kernels (trainer/wasm-fast-kernels.ts) match cpu', () => {
  before(async () => {
    assert.ok(await tf.setBackend('wasm'));
    await tf.ready();
    registerMissingWasmKernels(tf);
    registerFastWasmKernels(tf);
  });
  after(() => restoreStockWasmKernels(tf));

  it('replaces the five kernels once (idempotent) and can put the stock ones back', () => {
    restoreStockWasmKernels(tf);
    assert.deepEqual(registerFastWasmKernels(tf), [...WASM_FAST_KERNELS]);
    assert.deepEqual(registerFastWasmKernels(tf), []);
    const replaced = tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc;
    restoreStockWasmKernels(tf);
    assert.notEqual(tf.getKernel('BatchMatMul', 'wasm')?.kernelFunc, replaced);
    assert.deepEqual(registerFastWasmKernels(tf), [...WASM_FAST_KERNELS]);
  });

  it('BatchMatMul: every transpose combination, 2-D, batched and broadcast', async () => {
    const cases: [number[], number[], boolean, boolean][] = [
      [[5, 7], [7, 3], false, false],
      [[7, 5], [7, 3], true, false],
      [[5, 7], [3, 7], false, true],
      [[7, 5], [3, 7], true, true],
      [[128, 784], [128, 256], true, false], // a dense layer's dW = xᵀ·dy
      [[128, 256], [784, 256], false, true], // and dx = dy·Wᵀ
      [[2, 6, 4], [2, 6, 3], true, false],
      [[2, 4, 6], [2, 3, 6], false, true],
      [[3, 6, 4], [1, 5, 6], true, true], // the batch of b broadcasts
    ];
    for (const [i, [as, bs, ta, tb]] of cases.entries()) {
      await wasmVsCpu(`matMul ${as} ${bs} ${ta} ${tb}`, () => tf.matMul(t(as, i), t(bs, 50 + i), ta, tb));
    }
  });

  it('_FusedMatMul with bias and activation, transposed (stock wasm gets these wrong)', async () => {
    for (const [i, [ta, tb]] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ].entries()) {
      const a = () => t(ta ? [6, 5] : [5, 6], 10 + i);
      const b = () => t(tb ? [4, 6] : [6, 4], 20 + i);
      for (const activation of ['linear', 'relu'] as const) {
        await wasmVsCpu(`fused ${ta} ${tb} ${activation}`, () =>
          tf.fused.matMul({
            a: a(),
            b: b(),
            transposeA: ta as boolean,
            transposeB: tb as boolean,
            bias: t([4], 30 + i),
            activation,
          }),
        );
      }
    }
  });

  it('dense-layer gradients through the transposed products match cpu', async () => {
    await wasmVsCpu('dense grads', () => {
      const x = t([16, 12], 1);
      const w = t([12, 8], 2);
      const b = t([8], 3);
      const r = t([16, 8], 4);
      const g = tf.grads((x0: tf.Tensor, w0: tf.Tensor, b0: tf.Tensor) =>
        tf.sum(tf.mul(tf.fused.matMul({ a: x0, b: w0, bias: b0, activation: 'relu' }), r)),
      );
      return g([x, w, b]);
    });
  });

  it('GatherV2 on axis 0 copies rows exactly; other axes, batchDims and bad indices as before', async () => {
    const idx = [3, 0, 3, 5, 1];
    await wasmVsCpu('gather 2-D float', () => tf.gather(t([6, 7], 1), tf.tensor1d(idx, 'int32')), 0);
    await wasmVsCpu('gather 4-D float', () => tf.gather(t([6, 3, 2, 2], 2), tf.tensor1d(idx, 'int32')), 0);
    await wasmVsCpu('gather int32, 2-D indices', () =>
      tf.gather(tf.range(0, 24, 1, 'int32').reshape([6, 4]), tf.tensor2d([2, 5, 0, 1], [2, 2], 'int32')),
    );
    await wasmVsCpu('gather 1-D', () => tf.gather(t([6], 3), tf.tensor1d(idx, 'int32')), 0);
    await wasmVsCpu('gather axis 1 (stock)', () => tf.gather(t([4, 6], 4), tf.tensor1d(idx, 'int32'), 1), 0);
    await wasmVsCpu(
      'gather batchDims 1 (stock)',
      () => tf.gather(t([2, 6, 3], 5), tf.tensor2d([0, 5, 1, 2], [2, 2], 'int32'), 1, 1),
      0,
    );
    await wasmVsCpu('gather no rows', () => tf.gather(t([6, 3], 6), tf.tensor1d([], 'int32')), 0);
    assert.ok(await tf.setBackend('wasm'));
    const x = t([4, 2], 7);
    const before = tf.memory();
    for (const [bad, message] of [
      [[1, 4], /index value 4 is not in \[0, 3\]/],
      [[-1], /index value -1/],
    ] as const) {
      const indices = tf.tensor1d(bad as unknown as number[], 'int32');
      assert.throws(() => tf.gather(x, indices), message);
      indices.dispose();
      assert.deepEqual(tf.memory(), before); // no output left behind
    }
    x.dispose();
  });

  it('Conv2DBackpropInput matches cpu over strides, paddings and rounding', async () => {
    const cases: { x: Shape4; k: [number, number]; f: number; s: number | [number, number]; p: Pad }[] = [
      { x: [2, 7, 8, 3], k: [3, 3], f: 4, s: 1, p: 'valid' },
      { x: [2, 7, 8, 3], k: [3, 3], f: 4, s: 1, p: 'same' },
      { x: [2, 7, 8, 3], k: [3, 3], f: 4, s: 2, p: 'same' },
      { x: [2, 9, 8, 3], k: [3, 2], f: 4, s: [2, 3], p: 'valid' },
      { x: [1, 9, 8, 2], k: [2, 3], f: 5, s: [3, 2], p: 'same' },
      { x: [3, 1, 20, 4], k: [1, 5], f: 6, s: [1, 2], p: 'same' }, // conv1d's shape
      { x: [2, 6, 6, 5], k: [1, 1], f: 3, s: 1, p: 'valid' },
      { x: [2, 8, 7, 3], k: [5, 5], f: 2, s: 2, p: 1 },
      { x: [64, 13, 13, 16], k: [3, 3], f: 32, s: 1, p: 'valid' }, // the bench CNN's second conv
      {
        x: [2, 7, 8, 3],
        k: [3, 3],
        f: 4,
        s: 2,
        p: [
          [0, 0],
          [1, 2],
          [0, 1],
          [0, 0],
        ],
      },
    ];
    for (const [i, c] of cases.entries()) {
      const filterShape: Shape4 = [c.k[0], c.k[1], c.x[3], c.f];
      const y = tf.tidy(() =>
        tf.conv2d(tf.zeros(c.x) as tf.Tensor4D, tf.zeros(filterShape) as tf.Tensor4D, c.s, c.p),
      );
      const dyShape = y.shape;
      y.dispose();
      await wasmVsCpu(`conv2d input ${JSON.stringify(c)}`, () =>
        run(
          'Conv2DBackpropInput',
          { dy: t(dyShape, 100 + i), filter: t(filterShape, 200 + i) },
          { inputShape: c.x, strides: c.s, pad: c.p, dataFormat: 'NHWC' },
        ),
      );
    }
    // NCHW goes to the stock kernel.
    await wasmVsCpu('conv2d input NCHW', () =>
      run(
        'Conv2DBackpropInput',
        { dy: t([2, 4, 5, 6], 7), filter: t([3, 3, 3, 4], 8) },
        { inputShape: [2, 3, 7, 8], strides: 1, pad: 'valid', dataFormat: 'NCHW' },
      ),
    );
  });

  it('MaxPoolGrad: the first maximum of each window gets the gradient, exactly as on cpu', async () => {
    const cases: { x: Shape4; k: number | [number, number]; s: number | [number, number]; p: Pad }[] = [
      { x: [4, 26, 26, 16], k: 2, s: 2, p: 'valid' }, // the bench CNN's pool
      { x: [2, 7, 8, 3], k: 2, s: 2, p: 'same' },
      { x: [2, 7, 8, 3], k: 3, s: 2, p: 'valid' }, // overlapping windows
      { x: [2, 7, 8, 3], k: 3, s: 1, p: 'same' },
      { x: [1, 9, 8, 2], k: [2, 3], s: [3, 2], p: 'same' },
      { x: [2, 6, 6, 4], k: 3, s: 2, p: 1 },
    ];
    for (const [i, c] of cases.entries()) {
      const make = () => {
        // relu makes many ties (windows of zeros): the tie rule must match too.
        const x = tf.relu(t(c.x, 300 + i)) as tf.Tensor4D;
        const y = tf.maxPool(x, c.k, c.s, c.p as 'valid');
        const dy = t(y.shape, 400 + i);
        return run('MaxPoolGrad', { dy, input: x, output: y }, { filterSize: c.k, strides: c.s, pad: c.p });
      };
      const overlapping = (typeof c.k === 'number' ? c.k : c.k[0]) > (typeof c.s === 'number' ? c.s : c.s[0]);
      await wasmVsCpu(`maxPoolGrad ${JSON.stringify(c)}`, make, overlapping ? 1e-6 : 0);
    }
    // NaN never wins a window, and a window of −∞ passes no gradient (the 2×2 path and the general one).
    for (const k of [2, 3]) {
      await wasmVsCpu(
        `maxPoolGrad NaN and −∞, ${k}×${k}`,
        () => {
          const values = random(2 * 6 * 6 * 2, 9);
          for (const i of [0, 5, 17, 40]) values[i] = Number.NaN;
          for (const r of [0, 1])
            for (const col of [2, 3]) for (const d of [0, 1]) values[(r * 6 + col) * 2 + d] = -Infinity;
          const x = tf.tensor4d(values, [2, 6, 6, 2]);
          const y = tf.maxPool(x, k, k, 'valid');
          return run(
            'MaxPoolGrad',
            { dy: t(y.shape, 10), input: x, output: y },
            { filterSize: k, strides: k, pad: 'valid' },
          );
        },
        0,
      );
    }
  });

  it('each kernel adds exactly its output (engine leak check on) and nothing stays after dispose', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const x = t([2, 6, 6, 3], 1);
    const pooled = tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid');
    const calls: [string, tf.NamedTensorMap, object][] = [
      ['BatchMatMul', { a: t([1, 5, 4], 2), b: t([1, 3, 5], 3) }, { transposeA: true, transposeB: true }],
      [
        '_FusedMatMul',
        { a: t([1, 5, 4], 2), b: t([1, 3, 5], 3), bias: t([3], 4) },
        { transposeA: true, transposeB: true, activation: 'relu' },
      ],
      ['GatherV2', { x: t([6, 3], 5), indices: tf.tensor1d([1, 1, 4], 'int32') }, { axis: 0, batchDims: 0 }],
      [
        'Conv2DBackpropInput',
        { dy: t([2, 3, 3, 4], 6), filter: t([3, 3, 3, 4], 7) },
        { inputShape: [2, 6, 6, 3], strides: 2, pad: 'same', dataFormat: 'NHWC' },
      ],
      [
        'MaxPoolGrad',
        { dy: t(pooled.shape, 8), input: x, output: pooled },
        { filterSize: 2, strides: 2, pad: 'valid' },
      ],
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
        out.dispose();
        assert.deepEqual(tf.memory(), before, name);
        tf.dispose(Object.values(inputs));
      }
    } finally {
      tf.env().set('IS_TEST', wasTest);
    }
    tf.dispose([x, pooled]);
  });

  it('whole models: every weight gradient of a CNN, an MLP and an LSTM matches cpu', async () => {
    registerFastWasmKernels(tf);
    assert.ok(WASM_FAST_KERNELS.every((name) => tf.getKernel(name, 'wasm')));
    const models: [string, number[], () => tf.LayersModel][] = [
      [
        'cnn',
        [4, 12, 12, 1],
        () =>
          tf.sequential({
            layers: [
              tf.layers.conv2d({ inputShape: [12, 12, 1], filters: 4, kernelSize: 3, activation: 'relu' }),
              tf.layers.maxPooling2d({ poolSize: 2 }),
              tf.layers.conv2d({
                filters: 6,
                kernelSize: 3,
                strides: 2,
                padding: 'same',
                activation: 'relu',
              }),
              tf.layers.flatten(),
              tf.layers.dense({ units: 3, activation: 'softmax' }),
            ],
          }),
      ],
      [
        'mlp',
        [8, 10],
        () =>
          tf.sequential({
            layers: [
              tf.layers.dense({ inputShape: [10], units: 16, activation: 'relu' }),
              tf.layers.dense({ units: 3, activation: 'softmax' }),
            ],
          }),
      ],
      [
        'lstm',
        [4, 6, 3],
        () =>
          tf.sequential({
            layers: [tf.layers.lstm({ inputShape: [6, 3], units: 5 }), tf.layers.dense({ units: 2 })],
          }),
      ],
    ];
    for (const [i, [name, inputShape, build]] of models.entries()) {
      await wasmVsCpu(
        `${name} gradients`,
        () => {
          const model = build();
          model.setWeights(model.getWeights().map((w, k) => t(w.shape, 500 + 10 * i + k)));
          const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
          const x = t(inputShape, 600 + i);
          const { grads } = tf.variableGrads(() => {
            const out = model.apply(x) as tf.Tensor;
            return tf.sum(tf.mul(out, t(out.shape, 700 + i))) as tf.Scalar;
          }, variables);
          const list = variables.map((v) => (grads[v.name] as tf.Tensor).clone());
          model.dispose();
          return list;
        },
        1e-4,
      );
    }
  });

  it('gives bitwise the same results on every run', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const once = () =>
      tf.tidy(() => {
        const x = tf.relu(t([4, 10, 10, 3], 1)) as tf.Tensor4D;
        const w = t([3, 3, 3, 5], 2) as tf.Tensor4D;
        const g = tf.grads((x0: tf.Tensor, w0: tf.Tensor) =>
          tf.sum(
            tf.mul(
              tf.maxPool(tf.conv2d(x0 as tf.Tensor4D, w0 as tf.Tensor4D, 1, 'same'), 2, 2, 'valid'),
              0.5,
            ),
          ),
        );
        return g([x, w]).map((r) => Array.from(r.dataSync()));
      });
    assert.deepEqual(once(), once());
  });
});
