/**
 * What ships: each Lambda handler bundled the way `DescentFunction` bundles it (esbuild, ESM, minified,
 * the pinned AWS SDK bundled in), with its size printed; and the trainer image's build context, which
 * must hold every file `trainer/main.ts` imports.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { build, type Metafile } from 'esbuild';
import { routes } from '../../core/api/routes.ts';
import { addonSources } from '../../scripts/native/graph-addon.ts';

const root = new URL('../../', import.meta.url);
const handlers = [
  ...new Set([
    ...routes.map((r) => r.handler),
    'dead-letter',
    'dispatch-jobs',
    'batch-events',
    'advance-sweeps',
    'watch-training',
  ]),
].sort();

/** Bytes in a bundle by origin: an npm package name, or a top-level folder of this repository. */
function originsOf(output: Metafile['outputs'][string]): Map<string, number> {
  const origins = new Map<string, number>();
  for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
    const origin = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)?.[1] ?? `${input.split('/')[0]}/`;
    origins.set(origin, (origins.get(origin) ?? 0) + bytesInOutput);
  }
  return origins;
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;

/**
 * The predict route runs TensorFlow.js: tfjs-core, tfjs-layers and the CPU backend (no WebGL, no
 * converter, no native or wasm files), within its own budget.
 */
const TFJS_HANDLERS = new Set(['predict-job']);
const TFJS_ALLOWED = ['@tensorflow/tfjs-core', '@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-cpu'];
const TFJS_BUDGET = 4 * 1024 * 1024;

describe('Lambda handler bundles', () => {
  it('stay small: no TensorFlow.js but in predict-job (CPU only, under 4 MiB), the pinned AWS SDK bundled, the rest under 2 MiB (sizes printed)', async (t) => {
    const result = await build({
      absWorkingDir: root.pathname,
      entryPoints: handlers.map((h) => `functions/${h}.ts`),
      outdir: 'out',
      outExtension: { '.js': '.mjs' },
      write: false,
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node24',
      mainFields: ['module', 'main'],
      minify: true,
      keepNames: true,
      metafile: true,
      logLevel: 'silent',
    });
    for (const [file, output] of Object.entries(result.metafile.outputs)) {
      const origins = originsOf(output);
      const top = [...origins].sort((a, b) => b[1] - a[1]).slice(0, 3);
      t.diagnostic(
        `${file.replace('out/', '').padEnd(22)} ${kib(output.bytes).padStart(8)}  (${top.map(([o, b]) => `${o} ${kib(b)}`).join(', ')})`,
      );
      const handler = file.replace('out/', '').replace('.mjs', '');
      const tfjs = TFJS_HANDLERS.has(handler);
      assert.ok(output.bytes < (tfjs ? TFJS_BUDGET : 2 * 1024 * 1024), `${file} is ${kib(output.bytes)}`);
      for (const origin of origins.keys()) {
        const allowed = tfjs && TFJS_ALLOWED.includes(origin);
        assert.ok(allowed || !origin.startsWith('@tensorflow/'), `${file} bundles ${origin}`);
        assert.ok(!['trainer/', 'local/', 'infra/'].includes(origin), `${file} bundles ${origin}`);
      }
    }
    assert.equal(Object.keys(result.metafile.outputs).length, handlers.length);
    // The public document bundles no AWS client at all (its function has no permission to use one).
    const openapi = Object.entries(result.metafile.outputs).find(([file]) => file.includes('get-openapi'));
    assert.ok(openapi);
    assert.deepEqual(
      [...originsOf(openapi[1]).keys()].filter((o) => o.startsWith('@aws-sdk/')),
      [],
    );
  });
});

describe('Trainer image build context', () => {
  it('lets in (.dockerignore) every file of this repository that trainer/main.ts imports', async () => {
    const allowed = readFileSync(new URL('.dockerignore', root), 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('!'))
      .map((line) => line.slice(1));
    assert.ok(allowed.includes('package-lock.json'));
    const result = await build({
      absWorkingDir: root.pathname,
      entryPoints: ['trainer/main.ts'],
      write: false,
      bundle: true,
      format: 'esm',
      platform: 'node',
      packages: 'external',
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs);
    assert.ok(inputs.includes('trainer/run-job.ts'));
    const outside = inputs.filter(
      (file) => !allowed.some((a) => (a.endsWith('/') ? file.startsWith(a) : file === a)),
    );
    assert.deepEqual(outside, [], 'add these to .dockerignore (and the Dockerfile) or stop importing them');
    const dockerfile = readFileSync(new URL('trainer/Dockerfile', root), 'utf8');
    for (const folder of allowed.filter((a) => a.endsWith('/'))) {
      assert.match(
        dockerfile,
        new RegExp(`^COPY ${folder.slice(0, -1)} \\./${folder.slice(0, -1)}$`, 'm'),
        folder,
      );
    }
  });

  it("copies every source of the graph addon into the stage that builds it (setup:native's list)", async () => {
    const dir = 'trainer/compiled/native';
    const sources = await addonSources(new URL(dir, root).pathname);
    assert.ok(
      sources.includes('graph.cc') && sources.includes('binding.gyp') && sources.length > 2,
      String(sources),
    );
    // The build stage: the one that runs setup:native.
    const stage = readFileSync(new URL('trainer/Dockerfile', root), 'utf8')
      .split(/^FROM /m)
      .find((text) => text.includes('RUN npm run setup:native'));
    assert.ok(stage, 'no stage of trainer/Dockerfile runs setup:native');
    const copied = stage
      .split('\n')
      .filter((line) => line.startsWith('COPY ') && !line.includes('--from'))
      .flatMap((line) => line.split(/\s+/).slice(1, -1));
    const missing = sources.filter(
      (file) =>
        !copied.some(
          (c) => c === `${dir}/${file}` || `${dir}/${file}`.startsWith(`${c.replace(/\/$/, '')}/`),
        ),
    );
    assert.deepEqual(missing, [], 'COPY these into trainer/Dockerfile');
  });
});
