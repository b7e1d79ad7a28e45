/**
 * The last step of `npm run setup:native`: descent's own graph addon (trainer/compiled/native/,
 * the compiled training engine's binding of TensorFlow's C API), built with node-gyp against the
 * same extracted TensorFlow as tfjs-node's addon, so that both load one libtensorflow.
 *
 *   link    trainer/compiled/native/deps → the extracted folder (binding.gyp and the rpath look there)
 *   addon   node-gyp against this Node's headers, once per set of sources (addonSources) and wheel; cached
 *   probe   a fresh process loads it (through the trainer's loader) and runs a tiny graph
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, realpath, rename, rm, symlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { exists } from './wheel.ts';

export interface GraphAddonOptions {
  readonly projectRoot: string;
  readonly cacheDir: string;
  readonly rebuild?: boolean;
  readonly say: (line: string) => void;
  /** Runs node-gyp `rebuild` in `dir`; rejects with its output when it fails. */
  readonly nodeGyp: (dir: string) => Promise<void>;
  /** Runs `node --input-type=module -e code` in the project; resolves with its output. */
  readonly node: (code: string) => Promise<string>;
}

export const ADDON_DIR = ['trainer', 'compiled', 'native'] as const;
export const ADDON_FILE = 'descent_tf_graph.node';

/** The extracted TensorFlow folder tfjs-node's `deps` link points at. */
export async function tensorflowDirOf(packageDir: string): Promise<string> {
  const deps = join(packageDir, 'deps');
  if (!(await exists(join(deps, 'include', 'tensorflow', 'c', 'c_api.h'))))
    throw new Error(`${deps} does not hold TensorFlow's C headers: run setup:native with --rebuild`);
  return realpath(deps);
}

/** The files the addon is built from: binding.gyp and every C++ source, header and include. */
export async function addonSources(dir: string): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f === 'binding.gyp' || /\.(cc|h|inc)$/.test(f));
  return files.sort();
}

/** A key of what the addon is built from: its sources (names and contents), and the TensorFlow folder it links. */
async function buildKey(dir: string, tensorflowDir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const file of await addonSources(dir)) {
    hash.update(`${file}\u0000`);
    hash.update(await readFile(join(dir, file)));
  }
  return `${basename(tensorflowDir)}+${hash.digest('hex').slice(0, 12)}`;
}

/** Loads the addon as the trainer does and runs 2 + 3 in a session; throws with the reason. */
export async function probeGraphAddon(
  options: Pick<GraphAddonOptions, 'projectRoot' | 'node'>,
): Promise<string> {
  const loader = pathToFileURL(join(options.projectRoot, ...ADDON_DIR, '..', 'native.ts')).href;
  const code = `
    const { loadGraphAddon } = await import(${JSON.stringify(loader)});
    const { addon, error } = loadGraphAddon();
    if (!addon) { console.log(JSON.stringify({ ok: false, reason: error })); process.exit(0); }
    try {
      const g = new addon.Graph();
      const c = (v, name) => g.addOperation({ type: 'Const', name, inputs: [], attrs: [['value', 'tensor', { dtype: 1, shape: [], data: Float32Array.of(v) }], ['dtype', 'type', 1]] });
      const sum = g.addOperation({ type: 'AddV2', name: 'sum', inputs: [[c(2, 'a'), 0], [c(3, 'b'), 0]] });
      const s = new addon.Session(g, { intraOpThreads: 1, interOpThreads: 1, xla: false });
      const [out] = s.run([], [[sum, 0]], []);
      s.close();
      console.log(JSON.stringify({ ok: out.data[0] === 5, version: addon.version(), reason: 'a test graph computed ' + out.data[0] }));
    } catch (e) { console.log(JSON.stringify({ ok: false, reason: e.message })); }`;
  const output = await options.node(code);
  const last = output.trim().split('\n').at(-1) ?? '';
  let result: { ok: boolean; version?: string; reason?: string };
  try {
    result = JSON.parse(last) as typeof result;
  } catch {
    throw new Error(`the graph addon's probe failed: ${output.trim().split('\n').slice(-5).join(' ')}`);
  }
  if (!result.ok) throw new Error(`the graph addon does not work: ${result.reason}`);
  return result.version ?? 'unknown';
}

/** Builds (or takes from the cache) and probes the graph addon; returns TensorFlow's version it runs. */
export async function ensureGraphAddon(options: GraphAddonOptions, tensorflowDir: string): Promise<string> {
  const dir = join(options.projectRoot, ...ADDON_DIR);
  const target = join(dir, 'build', 'Release', ADDON_FILE);
  const deps = join(dir, 'deps');
  await rm(deps, { recursive: true, force: true });
  await symlink(tensorflowDir, deps);
  const cached = join(
    options.cacheDir,
    'addons',
    `descent-tf-graph+${await buildKey(dir, tensorflowDir)}`,
    ADDON_FILE,
  );
  if (options.rebuild || !(await exists(cached))) {
    const started = performance.now();
    options.say('graph addon: node-gyp rebuild (trainer/compiled/native) …');
    await options.nodeGyp(dir);
    await mkdir(dirname(cached), { recursive: true });
    await copyFile(target, `${cached}.tmp-${process.pid}`);
    await rename(`${cached}.tmp-${process.pid}`, cached);
    options.say(`graph addon: built (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  } else if (!(await sameFile(cached, target))) {
    await mkdir(dirname(target), { recursive: true });
    await copyFile(cached, target);
    options.say(`graph addon: ${cached} (cached)`);
  } else {
    options.say('graph addon: present');
  }
  return probeGraphAddon(options);
}

async function sameFile(a: string, b: string): Promise<boolean> {
  if (!(await exists(b))) return false;
  const [x, y] = await Promise.all([readFile(a), readFile(b)]);
  return x.equals(y);
}
