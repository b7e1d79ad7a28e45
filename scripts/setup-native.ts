/**
 * `npm run setup:native [-- --gpu] [-- --rebuild]`: makes TensorFlow's native runtime available to
 * the trainer (the `tensorflow` backend), by building tfjs-node 4.22's addon against TensorFlow
 * 2.21 from its official wheel. Optional: without it jobs train on wasm. See docs/native.md.
 *
 *   --gpu       the GPU build: @tensorflow/tfjs-node-gpu from the `tensorflow` wheel and its CUDA 12
 *               wheels (the trainer image runs this); default: @tensorflow/tfjs-node, `tensorflow-cpu`
 *   --system-cuda  with --gpu: use the CUDA 12 and cuDNN 9 libraries already on the loader path (a
 *               CUDA runtime base image) instead of downloading the nvidia-*-cu12 wheels
 *   --rebuild   build the addon again even when the package already works or the cache has it
 *
 * Environment: DESCENT_TF_WHEEL (a wheel file to use instead of `pip download`), DESCENT_CACHE_DIR
 * (default ~/.cache/descent: wheels, the extracted library, staged packages, built addons).
 *
 * The last line is `native: ready (TensorFlow 2.21.0, N threads, compiled engine)` or `native: not ready: <why>`.
 * Exit codes: 0 ready; 1 not ready (a step failed: the line says which and why); 2 bad arguments.
 */

import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { defaultCacheDir, SetupError, setupNative } from './native/setup.ts';

const say = (line: string) => process.stdout.write(`native: ${line}\n`);

const options = {
  gpu: { type: 'boolean' },
  'system-cuda': { type: 'boolean' },
  rebuild: { type: 'boolean' },
} as const;
let values: { gpu?: boolean; 'system-cuda'?: boolean; rebuild?: boolean };
try {
  ({ values } = parseArgs({ options }));
} catch (error) {
  say(`not ready: ${(error as Error).message} (options: --gpu, --system-cuda, --rebuild)`);
  process.exit(2);
}

const started = performance.now();
try {
  const { probe, graphAddon } = await setupNative({
    projectRoot: fileURLToPath(new URL('..', import.meta.url)),
    gpu: values.gpu ?? false,
    systemCuda: values['system-cuda'] ?? false,
    rebuild: values.rebuild ?? false,
    cacheDir: defaultCacheDir(),
    ...(process.env.DESCENT_TF_WHEEL ? { wheel: process.env.DESCENT_TF_WHEEL } : {}),
    say,
  });
  const gpuNote = values.gpu ? `, ${probe.device === 'gpu' ? 'on the GPU' : 'no GPU visible here'}` : '';
  say(`${probe.package} set up in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  if (graphAddon !== probe.version)
    throw new SetupError(`the graph addon runs TensorFlow ${graphAddon} but tfjs-node ${probe.version}`);
  say(`ready (TensorFlow ${probe.version}, ${probe.threads} threads${gpuNote}, compiled engine)`);
} catch (error) {
  say(`not ready: ${error instanceof SetupError ? error.message : (error as Error).stack}`);
  process.exit(1);
}
