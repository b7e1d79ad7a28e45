/**
 * TensorFlow.js for the predict route: tfjs-core, tfjs-layers and the pure-JavaScript CPU backend
 * only (no WebGL, converter or data packages, no native or wasm files), so the Lambda bundle stays
 * a few MiB and starts in any Node.js. The small tabular models descent trains run fast enough on it.
 */
import '@tensorflow/tfjs-backend-cpu';
import * as core from '@tensorflow/tfjs-core';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
import type { InferenceTf } from './runner.ts';

export const cpuTf = {
  tensor: core.tensor,
  tidy: core.tidy,
  grad: core.grad,
  io: core.io,
  dispose: core.dispose,
  ready: core.ready,
  mul: core.mul,
  sum: core.sum,
  loadLayersModel,
} as unknown as InferenceTf;
