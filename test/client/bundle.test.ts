/**
 * The client library is browser-safe: `client/index.ts` (the typed client and the model loader)
 * bundles for the browser platform, which refuses Node built-ins, and the only server code it takes
 * along is the pure transform (`core/training/transform.ts` and `core/datasets/cells.ts`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { build } from 'esbuild';

describe('client bundle for browsers', () => {
  it('builds without Node built-ins, carrying only the pure transform from core/', async () => {
    const result = await build({
      absWorkingDir: new URL('../../', import.meta.url).pathname,
      entryPoints: ['client/index.ts'],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      metafile: true,
      // TensorFlow.js is the application's: the loader imports it only when not given one.
      external: ['@tensorflow/tfjs'],
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs);
    const core = inputs.filter((i) => i.startsWith('core/')).sort();
    assert.deepEqual(core, ['core/datasets/cells.ts', 'core/training/transform.ts']);
    assert.ok(inputs.includes('client/model.ts'));
    const bytes = result.outputFiles[0]?.contents.byteLength ?? 0;
    assert.ok(bytes < 200 * 1024, `client bundle ${bytes} bytes`);
  });
});
