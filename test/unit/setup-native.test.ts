/**
 * `npm run setup:native`: the wheel reader, what it takes out of a TensorFlow wheel, the staging
 * lockfile that installs tfjs-node at package-lock.json's versions, and the command's last line and
 * exit codes. CI runs the whole setup itself (`.ci/run`) before the tests.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstat, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Lockfile, resolveLocked, stagingLockfile } from '../../scripts/native/package-files.ts';
import { defaultCacheDir } from '../../scripts/native/setup.ts';
import {
  extractTensorFlow,
  extraRequirements,
  headerClosure,
  isCudaLibrary,
  parseWheelName,
  quotedIncludes,
} from '../../scripts/native/wheel.ts';
import { ZipFile } from '../../scripts/native/zip.ts';
import { nativeInstalled } from '../helpers/backends.ts';
import { zipOf } from '../helpers/zip.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A wheel shaped like TensorFlow's: the two libraries, headers that include each other, and noise. */
const FAKE_WHEEL = {
  'tensorflow/libtensorflow_cc.so.2': 'cc library',
  'tensorflow/libtensorflow_framework.so.2': 'framework library',
  'tensorflow/include/tensorflow/c/c_api.h': '#include "tensorflow/c/tf_status.h"\n#include <stddef.h>\n',
  'tensorflow/include/tensorflow/c/tf_status.h': '#include "xla/tsl/c/tsl_status.h"\n',
  'tensorflow/include/xla/tsl/c/tsl_status.h': '// leaf\n',
  'tensorflow/include/tensorflow/core/unrelated.h': '// not needed\n',
  'tensorflow/python/_pywrap_tensorflow_internal.so': 'python only',
  'tensorflow_cpu-2.21.0.dist-info/METADATA': [
    'Name: tensorflow_cpu',
    'Requires-Dist: numpy>=1.26.0',
    'Provides-Extra: and-cuda',
    'Requires-Dist: nvidia-cublas-cu12<13.0,>=12.5.3.2; extra == "and-cuda"',
    'Requires-Dist: nvidia-cudnn-cu12<10.0,>=9.3.0.75; extra == "and-cuda"',
    'Requires-Dist: tensorflow-io-gcs-filesystem>=0.23.1; (sys_platform != "win32") and extra == "gcs-filesystem"',
  ].join('\n'),
};

describe('the wheel reader', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'descent-zip-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const deflate of [true, false]) {
    it(`lists and extracts ${deflate ? 'deflated' : 'stored'} entries, CRC-checked`, async () => {
      const path = join(dir, `a-${deflate}.zip`);
      const big = 'x'.repeat(200_000);
      await writeFile(path, zipOf({ 'a/b.txt': 'hello', 'big.bin': big, 'empty.txt': '' }, { deflate }));
      const zip = await ZipFile.open(path);
      try {
        assert.deepEqual([...zip.entries.keys()], ['a/b.txt', 'big.bin', 'empty.txt']);
        assert.equal((await zip.read('a/b.txt')).toString(), 'hello');
        await zip.extract('big.bin', join(dir, 'out', 'big.bin'));
        assert.equal(await readFile(join(dir, 'out', 'big.bin'), 'utf8'), big);
        await zip.extract('empty.txt', join(dir, 'out', 'empty.txt'));
        assert.equal(await readFile(join(dir, 'out', 'empty.txt'), 'utf8'), '');
        await assert.rejects(zip.read('missing'), /has no missing/);
      } finally {
        await zip.close();
      }
    });
  }

  it('refuses a corrupt entry and leaves no file behind', async () => {
    const bytes = zipOf({ 'f.txt': 'abcdefgh' }, { deflate: false });
    bytes[30 + 'f.txt'.length] = 'z'.charCodeAt(0); // the first byte of the stored data
    const path = join(dir, 'corrupt.zip');
    await writeFile(path, bytes);
    const zip = await ZipFile.open(path);
    try {
      await assert.rejects(zip.extract('f.txt', join(dir, 'corrupt.txt')), /corrupt/);
      await assert.rejects(lstat(join(dir, 'corrupt.txt')));
    } finally {
      await zip.close();
    }
  });

  it('refuses a file that is not a ZIP archive', async () => {
    await writeFile(join(dir, 'not.zip'), 'plain text');
    await assert.rejects(ZipFile.open(join(dir, 'not.zip')), /is not a ZIP file/);
  });
});

describe('what setup takes from a TensorFlow wheel', () => {
  let dir: string;
  let wheel: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'descent-wheel-'));
    wheel = join(dir, 'tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl');
    await writeFile(wheel, zipOf(FAKE_WHEEL));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads name and version from the file name', () => {
    assert.deepEqual(parseWheelName(wheel), { name: 'tensorflow_cpu', version: '2.21.0' });
    assert.throws(() => parseWheelName('tensorflow.tar.gz'), /not a wheel/);
  });

  it('follows quoted includes only', () => {
    assert.deepEqual(
      quotedIncludes('#include "a.h"\n  #  include "b/c.h"\n#include <d.h>\n// #include "e.h"'),
      ['a.h', 'b/c.h'],
    );
  });

  it('takes the headers the addon includes and what they include, nothing else', async () => {
    const zip = await ZipFile.open(wheel);
    try {
      assert.deepEqual(await headerClosure(zip, ['tensorflow/c/c_api.h', 'napi_auto_ref.h']), [
        'tensorflow/c/c_api.h',
        'tensorflow/c/tf_status.h',
        'xla/tsl/c/tsl_status.h',
      ]);
    } finally {
      await zip.close();
    }
  });

  it('reads the CUDA wheels of the and-cuda extra, and picks CUDA libraries out of their wheels', () => {
    assert.deepEqual(extraRequirements(FAKE_WHEEL['tensorflow_cpu-2.21.0.dist-info/METADATA'], 'and-cuda'), [
      'nvidia-cublas-cu12<13.0,>=12.5.3.2',
      'nvidia-cudnn-cu12<10.0,>=9.3.0.75',
    ]);
    assert.ok(isCudaLibrary('nvidia/cublas/lib/libcublas.so.12'));
    assert.ok(isCudaLibrary('nvidia/cudnn/lib/libcudnn_ops.so.9'));
    assert.ok(!isCudaLibrary('nvidia/cudnn/include/cudnn.h'));
    assert.ok(!isCudaLibrary('nvidia/cublas/lib/__init__.py'));
  });

  it('extracts libraries, link names and headers once, with CUDA libraries beside them', async () => {
    const cuda = join(dir, 'nvidia_cublas_cu12-12.9.1.4-py3-none-manylinux_2_27_x86_64.whl');
    await writeFile(
      cuda,
      zipOf({ 'nvidia/cublas/lib/libcublas.so.12': 'cublas', 'nvidia/cublas/include/x.h': '' }),
    );
    const target = join(dir, 'cache', 'tf');
    const first = await extractTensorFlow(wheel, target, ['tensorflow/c/c_api.h'], [cuda]);
    assert.deepEqual(first, { dir: target, version: '2.21.0', extracted: true });
    assert.equal(await readFile(join(target, 'lib', 'libtensorflow_cc.so.2'), 'utf8'), 'cc library');
    assert.equal(await readlink(join(target, 'lib', 'libtensorflow.so')), 'libtensorflow_cc.so.2');
    assert.equal(
      await readlink(join(target, 'lib', 'libtensorflow_framework.so')),
      'libtensorflow_framework.so.2',
    );
    assert.equal(
      await readFile(join(target, 'include', 'xla', 'tsl', 'c', 'tsl_status.h'), 'utf8'),
      '// leaf\n',
    );
    await assert.rejects(lstat(join(target, 'include', 'tensorflow', 'core', 'unrelated.h')));
    assert.equal(await readFile(join(target, 'lib', 'libcublas.so.12'), 'utf8'), 'cublas');
    assert.equal((await lstat(join(target, 'lib', 'libtensorflow_cc.so.2'))).mode & 0o111, 0o111);
    const second = await extractTensorFlow(wheel, target, ['tensorflow/c/c_api.h']);
    assert.equal(second.extracted, false);
  });
});

describe('tfjs-node at package-lock.json versions', () => {
  const lock: Lockfile = {
    lockfileVersion: 3,
    packages: {
      '': { name: 'app' },
      'node_modules/@tensorflow/tfjs': { version: '4.22.0', dependencies: { seedrandom: '^3' } },
      'node_modules/seedrandom': { version: '3.0.5' },
      'node_modules/@tensorflow/tfjs-node': {
        version: '4.22.0',
        integrity: 'sha512-x',
        hasInstallScript: true,
        optional: true,
        dependencies: { '@tensorflow/tfjs': '4.22.0', tar: '^6', '@mapbox/node-pre-gyp': '1.0.9' },
      },
      'node_modules/tar': { version: '6.2.1', dependencies: { minipass: '^5' } },
      'node_modules/minipass': { version: '7.0.0' },
      'node_modules/tar/node_modules/minipass': { version: '5.0.0' },
      'node_modules/@mapbox/node-pre-gyp': { version: '1.0.9', optionalDependencies: { fsevents: '*' } },
      'node_modules/unrelated': { version: '1.0.0' },
    },
  };

  it('resolves a dependency the way Node does: nested first, then up', () => {
    assert.equal(
      resolveLocked(lock, 'node_modules/tar', 'minipass'),
      'node_modules/tar/node_modules/minipass',
    );
    assert.equal(resolveLocked(lock, 'node_modules/@mapbox/node-pre-gyp', 'tar'), 'node_modules/tar');
    assert.equal(resolveLocked(lock, 'node_modules/tar', 'nothing'), undefined);
  });

  it("stages the package and its tree at the locked versions, without tfjs (the project's one is used)", () => {
    const staged = stagingLockfile(lock, '@tensorflow/tfjs-node');
    assert.deepEqual(Object.keys(staged.packages).sort(), [
      '',
      'node_modules/@mapbox/node-pre-gyp',
      'node_modules/@tensorflow/tfjs-node',
      'node_modules/tar',
      'node_modules/tar/node_modules/minipass',
    ]);
    const pkg = staged.packages['node_modules/@tensorflow/tfjs-node'];
    assert.deepEqual(pkg?.dependencies, { tar: '^6', '@mapbox/node-pre-gyp': '1.0.9' });
    assert.equal(pkg?.integrity, 'sha512-x');
    assert.equal(pkg?.hasInstallScript, undefined);
    assert.deepEqual(staged.packages['']?.dependencies, { '@tensorflow/tfjs-node': '4.22.0' });
  });

  it('refuses a lockfile that does not pin the package', () => {
    assert.throws(() => stagingLockfile(lock, '@tensorflow/tfjs-node-gpu'), /does not pin/);
  });

  it('the real lockfile pins both native packages', async () => {
    const real = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as Lockfile;
    for (const name of ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']) {
      const staged = stagingLockfile(real, name);
      assert.equal(staged.packages[`node_modules/${name}`]?.version, '4.22.0');
      assert.ok(!Object.keys(staged.packages).some((p) => p.includes('@tensorflow/tfjs/')));
    }
  });
});

describe('npm run setup:native', () => {
  const setup = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, ['scripts/setup-native.ts', ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 120_000,
    });
  const lastLine = (out: string) => out.trim().split('\n').at(-1);

  it('uses $DESCENT_CACHE_DIR, else ~/.cache/descent', () => {
    assert.equal(defaultCacheDir({ DESCENT_CACHE_DIR: '/c' }), '/c');
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x', HOME: '/h' }), '/x/descent');
  });

  it('when the package already works: says so, changes nothing, ends with the ready line, exit 0', {
    skip: !nativeInstalled() && 'no native package here: run `npm run setup:native`',
  }, () => {
    const run = setup([]);
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /already loads and runs an op: nothing to do/);
    assert.match(
      lastLine(run.stdout) ?? '',
      /^native: ready \(TensorFlow \d+\.\d+\.\d+, \d+ threads, compiled engine\)$/,
    );
  });

  it('when a step fails: the last line says why, exit 1; bad arguments exit 2', () => {
    const run = setup(['--rebuild'], { DESCENT_TF_WHEEL: '/nonexistent/tensorflow.whl' });
    assert.equal(run.status, 1, run.stdout + run.stderr);
    assert.equal(
      lastLine(run.stdout),
      'native: not ready: DESCENT_TF_WHEEL=/nonexistent/tensorflow.whl: no such file',
    );
    const bad = setup(['--cpu-please']);
    assert.equal(bad.status, 2);
    assert.match(lastLine(bad.stdout) ?? '', /^native: not ready: .*--cpu-please/);
  });
});
