/**
 * A worker whose `DESCENT_BACKEND` cannot start stops at boot with a message that names the backend
 * and why, and exit code 78 (EX_CONFIG); the local supervisor does not restart it.
 *
 * "The addon removed" is real: tfjs-node's own files are copied without `lib/` (where its addon
 * lives) and the worker is pointed at the copy, so that the real package stays in place for the tests
 * running beside this one. Without a native package here, the worker meets it missing altogether.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { EXIT_BACKEND_UNAVAILABLE } from '../../core/platform/config.ts';
import { TFJS_NODE, TFJS_NODE_GPU } from '../../trainer/native-tensorflow.ts';
import { nativeInstalled } from '../helpers/backends.ts';
import { startTestStack } from '../helpers/local-stack.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKER = join(ROOT, 'local', 'worker-process.ts');
const REDIRECT = join(ROOT, 'test', 'helpers', 'redirect-packages.ts');
const native = nativeInstalled();

/** Starts a worker process as the supervisor would, and waits for it to exit. */
function bootWorker(env: Record<string, string>, redirects: Record<string, string> = {}) {
  const run = spawnSync(process.execPath, ['--import', pathToFileURL(REDIRECT).href, WORKER], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env, DESCENT_TEST_REDIRECTS: JSON.stringify(redirects) },
    timeout: 60_000,
  });
  const lines = `${run.stdout}${run.stderr}`.split('\n').filter(Boolean);
  const errors = lines.flatMap((line) => {
    try {
      const entry = JSON.parse(line) as { level?: string; error?: string };
      return entry.level === 'error' ? [entry] : [];
    } catch {
      return [];
    }
  });
  return { status: run.status, lines, errors };
}

describe('a worker whose named backend cannot start stops at boot', { timeout: 120_000 }, () => {
  let dataDir: string;
  let copy: string | undefined;
  const packageDir = join(ROOT, 'node_modules', TFJS_NODE);

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'descent-boot-'));
    if (native) {
      // Inside node_modules, so that the copy's require('@tensorflow/tfjs') finds the project's one.
      copy = join(ROOT, 'node_modules', '.cache', `descent-test-${process.pid}`, 'tfjs-node');
      await cp(packageDir, copy, {
        recursive: true,
        verbatimSymlinks: true,
        filter: (source) => source !== join(packageDir, 'lib'),
      });
    }
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
    if (copy) await rm(join(copy, '..'), { recursive: true, force: true });
  });

  it('DESCENT_BACKEND=tensorflow with the addon removed: exit 78, naming the backend, the missing addon and the fix', () => {
    const redirects: Record<string, string> = copy
      ? { [TFJS_NODE]: pathToFileURL(join(copy, 'dist', 'index.js')).href }
      : {};
    const worker = bootWorker({ DESCENT_DATA_DIR: dataDir, DESCENT_BACKEND: 'tensorflow' }, redirects);
    assert.equal(worker.status, EXIT_BACKEND_UNAVAILABLE, worker.lines.join('\n'));
    assert.equal(worker.errors.length, 1, worker.lines.join('\n'));
    const message = worker.errors[0]?.error ?? '';
    assert.match(message, /^DESCENT_BACKEND=tensorflow but /);
    assert.match(
      message,
      native
        ? /@tensorflow\/tfjs-node could not load: The Node.js native addon module \(tfjs_binding.node\) can not be found/
        : /neither @tensorflow\/tfjs-node-gpu nor @tensorflow\/tfjs-node is installed/,
    );
    assert.match(message, /Run `npm run setup:native`/);
    assert.ok(!worker.lines.some((l) => /backend selected/.test(l)), 'no backend was selected');
  });

  it('DESCENT_BACKEND=tensorflow-gpu where TensorFlow sees no GPU: exit 78, saying so', {
    skip: !native && 'no native package here: run `npm run setup:native`',
  }, () => {
    // The GPU package's name on the CPU build: TensorFlow loads and finds no GPU, as on a GPU task
    // whose driver or CUDA libraries are missing.
    const worker = bootWorker(
      { DESCENT_DATA_DIR: dataDir, DESCENT_BACKEND: 'tensorflow-gpu' },
      { [TFJS_NODE_GPU]: pathToFileURL(join(packageDir, 'dist', 'index.js')).href },
    );
    assert.equal(worker.status, EXIT_BACKEND_UNAVAILABLE, worker.lines.join('\n'));
    assert.match(
      worker.errors[0]?.error ?? '',
      /^DESCENT_BACKEND=tensorflow-gpu but TensorFlow \d+\.\d+\.\d+ \(@tensorflow\/tfjs-node-gpu\) sees no GPU/,
    );
  });

  it('the local supervisor does not restart such a worker, and reports it', async () => {
    const unavailable: number[] = [];
    const stack = await startTestStack({
      workerEnv: { DESCENT_LOG_LEVEL: 'error', DESCENT_BACKEND: 'webgl' },
      onWorkerUnavailable: (worker) => unavailable.push(worker),
    });
    try {
      const deadline = Date.now() + 30_000;
      while (unavailable.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(unavailable, [0]);
      await new Promise((r) => setTimeout(r, 1500)); // a restart would come after 1 s
      assert.deepEqual(stack.workerPids(), []);
    } finally {
      await stack.destroy();
    }
  });
});
