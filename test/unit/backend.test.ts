/**
 * Backend selection never lies: a named backend is strict and says why it cannot start, the chosen
 * one reports its device truthfully, and what tfjs-node needs before it loads (Node ≥ 23's missing
 * `util.isNullOrUndefined`, thread counts, quiet logs) is set up.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  BackendUnavailableError,
  isTfjsNotice,
  parseBackendChoice,
  selectBackend,
} from '../../trainer/backend.ts';
import {
  firstLine,
  patchNodeUtilForTfjsNode,
  prepareNativeEnv,
  threadsPerWorker,
} from '../../trainer/native-tensorflow.ts';
import { nativeInstalled } from '../helpers/backends.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const native = nativeInstalled();

/** Runs ES module code in a fresh Node process at the repository root. */
function node(code: string, env: Record<string, string> = {}) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
}

describe('tfjs-node on Node ≥ 23', () => {
  it('the patch restores util.isNullOrUndefined and a quiet util.isArray, once', () => {
    const util = { isArray: (v: unknown) => Array.isArray(v) };
    assert.deepEqual(patchNodeUtilForTfjsNode(util), ['isNullOrUndefined', 'isArray']);
    const patched = util as unknown as { isNullOrUndefined(v: unknown): boolean; isArray: unknown };
    assert.deepEqual(
      [null, undefined, 0, '', false, {}].map((v) => patched.isNullOrUndefined(v)),
      [true, true, false, false, false, false],
    );
    assert.equal(patched.isArray, Array.isArray);
    assert.deepEqual(patchNodeUtilForTfjsNode(util), []);
  });

  it('without the patch a tfjs-node kernel throws; with it the same kernel runs', {
    skip: !native && 'no native package here: run `npm run setup:native`',
  }, () => {
    const op = `
        const tf = await import('@tensorflow/tfjs-node');
        try { console.log('result', tf.tensor1d([1, 2, 3]).square().sum().dataSync()[0]); }
        catch (error) { console.log('error', error.message); }`;
    const quiet = { TF_CPP_MIN_LOG_LEVEL: '3', TF_ENABLE_ONEDNN_OPTS: '0' };
    const bare = node(op, quiet);
    assert.match(bare.stdout, /error .*isNullOrUndefined\)? is not a function/, bare.stderr);
    const patched = node(
      `const { patchNodeUtilForTfjsNode } = await import('./trainer/native-tensorflow.ts');
         patchNodeUtilForTfjsNode();${op}`,
      quiet,
    );
    assert.match(patched.stdout, /result 14/, patched.stderr);
  });
});

describe('TensorFlow native settings', () => {
  it('splits the cores between workers, one thread at least', () => {
    assert.equal(threadsPerWorker(16, 4), 4);
    assert.equal(threadsPerWorker(2, 2), 1);
    assert.equal(threadsPerWorker(2, 4), 1);
    assert.equal(threadsPerWorker(8, 0), 8);
  });

  it('sets thread counts and quiet logs only where the operator has not', () => {
    const env: NodeJS.ProcessEnv = {};
    assert.deepEqual(prepareNativeEnv(env, 6), { intraOp: 6, interOp: 1 });
    assert.deepEqual(env, {
      TF_NUM_INTRAOP_THREADS: '6',
      TF_NUM_INTEROP_THREADS: '1',
      TF_CPP_MIN_LOG_LEVEL: '2',
      TF_ENABLE_ONEDNN_OPTS: '1',
    });
    const set: NodeJS.ProcessEnv = {
      TF_NUM_INTRAOP_THREADS: '3',
      TF_NUM_INTEROP_THREADS: '2',
      TF_CPP_MIN_LOG_LEVEL: '0',
      TF_ENABLE_ONEDNN_OPTS: '0',
    };
    assert.deepEqual(prepareNativeEnv(set, 6), { intraOp: 3, interOp: 2 });
    assert.equal(set.TF_CPP_MIN_LOG_LEVEL, '0');
    assert.equal(set.TF_ENABLE_ONEDNN_OPTS, '0');
    const malformed: NodeJS.ProcessEnv = { TF_NUM_INTRAOP_THREADS: 'lots' };
    assert.equal(prepareNativeEnv(malformed, 4).intraOp, 4);
  });

  it("shortens a package's load error to its first line, without tfjs-node's `npm rebuild` advice", () => {
    assert.equal(
      firstLine(new Error("Cannot find package '@tensorflow/tfjs-node' imported from /x/y.ts")),
      'not installed',
    );
    assert.equal(
      firstLine(
        new Error(
          'The Node.js native addon module (tfjs_binding.node) can not be found at path: /a/b.node. \nPlease run command ...',
        ),
      ),
      'The Node.js native addon module (tfjs_binding.node) can not be found at path: /a/b.node',
    );
  });
});

describe('selectBackend', () => {
  it('accepts the four names and nothing else, naming them in the error', () => {
    assert.equal(parseBackendChoice(undefined), undefined);
    assert.equal(parseBackendChoice(''), undefined);
    for (const name of ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'])
      assert.equal(parseBackendChoice(name), name);
    assert.throws(
      () => parseBackendChoice('webgl'),
      (e: unknown) =>
        e instanceof BackendUnavailableError &&
        /DESCENT_BACKEND=webgl is not a backend: use tensorflow-gpu/.test(e.message),
    );
  });

  it('a named backend is the one that runs, on the device it reports', async () => {
    const wasm = await selectBackend('wasm');
    assert.deepEqual(
      [wasm.name, wasm.choice, wasm.device, wasm.tf.getBackend()],
      ['wasm', 'wasm', 'cpu', 'wasm'],
    );
    assert.deepEqual(wasm.skipped, []);
  });

  it('without a preference takes the best that starts, and says why better ones were skipped', async () => {
    const best = await selectBackend();
    assert.equal(best.tf.getBackend(), best.name);
    assert.equal(best.name, native ? 'tensorflow' : 'wasm');
    assert.equal(best.skipped[0]?.backend, 'tensorflow-gpu');
    assert.ok(best.skipped.every((s) => s.reason.length > 0));
    if (best.name === 'tensorflow') {
      assert.match(best.tensorflow?.version ?? '', /^\d+\.\d+\.\d+/);
      assert.ok((best.tensorflow?.intraOpThreads ?? 0) >= 1);
    }
  });

  it('tensorflow-gpu without a GPU is refused, saying why and what to do', async () => {
    // Without `npm run setup:native` (the README's optional step) neither native package is there.
    const why = native
      ? /^DESCENT_BACKEND=tensorflow-gpu but .*@tensorflow\/tfjs-node-gpu (could not load|is not installed|is installed).*npm run setup:native -- --gpu/
      : /^DESCENT_BACKEND=tensorflow-gpu but neither @tensorflow\/tfjs-node-gpu nor @tensorflow\/tfjs-node is installed\..*npm run setup:native -- --gpu/;
    await assert.rejects(
      selectBackend('tensorflow-gpu'),
      (e: unknown) =>
        e instanceof BackendUnavailableError && e.backend === 'tensorflow-gpu' && why.test(e.message),
    );
  });
});

describe('no banner noise', () => {
  it('tfjs notices are recognised, everything else is not', () => {
    assert.ok(
      isTfjsNotice(
        'Orthogonal initializer is being called on a matrix with more than 2000 (16384) elements: Slowness may result.',
      ),
    );
    assert.ok(!isTfjsNotice('Orthogonal'));
    assert.ok(!isTfjsNotice(new Error('Orthogonal initializer is being called on a matrix with more than')));
  });

  /**
   * What TensorFlow prints when it loads with oneDNN on (the trainer's default): absl's preamble and
   * oneDNN's notice, before any log setting applies. Nothing else may be printed.
   */
  const withoutOneDnnNotice = (stderr: string) =>
    stderr
      .split('\n')
      .filter(
        (line) =>
          !/^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$/.test(
            line,
          ) && !/^I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on\./.test(line),
      )
      .join('\n');

  for (const backend of ['cpu', 'wasm', ...(native ? ['tensorflow'] : [])]) {
    it(`selecting ${backend} and training an LSTM prints nothing (no banner, notice or C++ log line but oneDNN's)`, () => {
      const run = node(`
        const { selectBackend } = await import('./trainer/backend.ts');
        const { tf } = await selectBackend(${JSON.stringify(backend)});
        const model = tf.sequential({ layers: [tf.layers.lstm({ units: 32, inputShape: [4, 8] }), tf.layers.dense({ units: 1 })] });
        model.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
        await model.fit(tf.ones([4, 4, 8]), tf.ones([4, 1]), { epochs: 1, verbose: 0 });`);
      assert.equal(run.status, 0, run.stderr);
      assert.equal(run.stdout, '');
      assert.equal(withoutOneDnnNotice(run.stderr), '');
    });
  }

  it('with TF_ENABLE_ONEDNN_OPTS=0, TensorFlow native prints nothing at all', {
    skip: !native && 'no tensorflow here',
  }, () => {
    const run = node(
      `const { selectBackend } = await import('./trainer/backend.ts');
       const { tf } = await selectBackend('tensorflow');
       tf.tidy(() => tf.ones([2, 2]).matMul(tf.ones([2, 2])).dataSync());`,
      { TF_ENABLE_ONEDNN_OPTS: '0' },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout + run.stderr, '');
  });

  it('the compiled engine training an LSTM of odd batch and units prints nothing either', {
    skip: !native && 'no tensorflow here',
  }, () => {
    // BlockLSTMV2 logs a WARNING for odd batch and cell sizes; the trainer's TF_CPP_MIN_LOG_LEVEL hides it.
    const run = node(`
      const { selectBackend } = await import('./trainer/backend.ts');
      const { compiledSetup, selectRunner } = await import('./trainer/compiled/select.ts');
      const { train } = await import('./trainer/engine.ts');
      const { specOf } = await import('./test/helpers/specs.ts');
      const backend = await selectBackend('tensorflow');
      const tf = backend.tf;
      const spec = specOf({ model: { layers: [{ type: 'lstm', units: 3 }] }, training: { epochs: 1, batchSize: 3 } });
      const model = tf.sequential({ layers: [tf.layers.lstm({ units: 3, inputShape: [4, 2] }), tf.layers.dense({ units: 2, activation: 'softmax' })] });
      const x = tf.ones([5, 4, 2]);
      const y = tf.oneHot(tf.tensor1d([0, 1, 0, 1, 0], 'int32'), 2).toFloat();
      const out = await train(tf, { spec, model, selectRunner: selectRunner(compiledSetup(backend)) }, { x, y });
      if (out.engine !== 'compiled') throw new Error(out.engineReason);`);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, '');
    assert.equal(withoutOneDnnNotice(run.stderr), '');
  });
});
