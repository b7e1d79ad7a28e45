/**
 * Training-step speed with the kernels from trainer/wasm-kernels.ts: wasm against the cpu
 * backend, for a small CNN (28×28×1 images) and a small text model (embedding + conv1d).
 * Prints, asserts nothing. Run: npx node bench/wasm-kernels.ts [wasmSteps] [cpuSteps]
 *
 * Measured on the shared 2-core dev machine (Node 24, tfjs 4.22.0, one wasm thread, load ≈ 3),
 * batch 32, `npx node bench/wasm-kernels.ts 40 1`:
 *   cnn   wasm 11.3 ms/step (2,838 samples/s)   cpu   835 ms/step (38 samples/s)   ≈ 74×
 *   text  wasm  9.2 ms/step (3,480 samples/s)   cpu 23075 ms/step (1 samples/s)    (cpu's
 *         UnsortedSegmentSum runs a few ops per segment: 10k segments per step)
 * An earlier run under heavier load: cnn 16.4 vs 1049 ms, text 24.5 vs 20434 ms.
 *
 * Filter-gradient formulations tried (ms per Conv2DBackpropFilter, best of 3; x, filters, kernel/stride):
 *                         per-offset slice+matMul   as one conv2d (kept)   forward conv2d
 *   [32,28,28,1] 16 3x3/1        5.6 – 7.3                 1.25                0.74
 *   [32,13,13,16] 32 3x3/1       2.3 – 3.2                 1.54                1.12
 *   [32,28,28,8] 16 3x3/2         30 – 32                  1.37                0.39
 *   [8,64,64,3] 16 5x5/2          39 – 41                  1.73                0.46
 *   [32,1,100,32] 64 1x5/1       1.9 – 4.9                 4.23                1.78
 * (wasm's StridedSlice is slow, hence the strided cases.) Depthwise filter gradient, per-offset
 * multiply+sum vs one depthwise conv (kept): 6.0 → 0.29, 36.9 → 1.27, 47 → 1.4 ms, same cases.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerMissingWasmKernels } from '../trainer/wasm-kernels.ts';

const wasmSteps = Number(process.argv[2] ?? 30);
const cpuSteps = Number(process.argv[3] ?? 1); // cpu text: ~20 s a step (UnsortedSegmentSum loops over 10k ids)
const batch = 32;

function cnn(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 8, kernelSize: 3, activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  });
}

function text(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.embedding({ inputShape: [40], inputDim: 10_000, outputDim: 16 }),
      tf.layers.conv1d({ filters: 32, kernelSize: 5, activation: 'relu' }),
      tf.layers.globalMaxPooling1d(),
      tf.layers.dense({ units: 2, activation: 'softmax' }),
    ],
  });
}

const data = {
  cnn: () => ({
    xs: tf.randomUniform([batch, 28, 28, 1]),
    ys: tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32') as tf.Tensor1D, 10),
  }),
  text: () => ({
    xs: tf.randomUniform([batch, 40], 0, 10_000, 'int32'),
    ys: tf.oneHot(tf.randomUniform([batch], 0, 2, 'int32') as tf.Tensor1D, 2),
  }),
};

async function msPerStep(backend: string, name: 'cnn' | 'text', steps: number): Promise<number> {
  await tf.setBackend(backend);
  const model = name === 'cnn' ? cnn() : text();
  const { xs, ys } = data[name]();
  const optimizer = tf.train.adam(0.001);
  const step = () => {
    const loss = optimizer.minimize(
      () => tf.losses.softmaxCrossEntropy(ys, model.apply(xs) as tf.Tensor) as tf.Scalar,
      true,
    );
    loss?.dataSync();
    loss?.dispose();
  };
  step(); // warm-up (operator creation, Adam slots)
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const ms = (performance.now() - t0) / steps;
  optimizer.dispose();
  model.dispose();
  tf.dispose([xs, ys]);
  return ms;
}

await tf.setBackend('wasm');
registerMissingWasmKernels(tf);
for (const name of ['cnn', 'text'] as const) {
  const wasm = await msPerStep('wasm', name, wasmSteps);
  const cpu = await msPerStep('cpu', name, cpuSteps);
  const rate = (ms: number) => Math.round((batch * 1000) / ms).toLocaleString('en');
  console.log(
    `${name.padEnd(5)} wasm ${wasm.toFixed(1)} ms/step (${rate(wasm)} samples/s)   ` +
      `cpu ${cpu.toFixed(0)} ms/step (${rate(cpu)} samples/s)   ≈ ${Math.round(cpu / wasm)}×`,
  );
}
