/**
 * The steps of `npm run setup:native` (scripts/setup-native.ts is the command line): make the
 * `tensorflow` backend available by building tfjs-node 4.22's own addon against the TensorFlow C
 * library of an official TensorFlow wheel. docs/native.md explains the why and the layout.
 *
 *   1. probe    does `@tensorflow/tfjs-node` (-gpu) already load and run an op? Then stop.
 *   2. wheel    DESCENT_TF_WHEEL, or the cached download, or `pip download` of the pinned wheel
 *   3. extract  the two libraries and the headers the addon includes, once, into the cache
 *   4. package  the npm package's files and dependencies at package-lock.json's versions
 *   5. link     node_modules/<package>/deps → the extracted folder (where its binding.gyp looks)
 *   6. addon    node-gyp against this Node's headers (no download), once per wheel; cached
 *   7. probe    again, in a fresh process
 *   8. graph    descent's own graph addon (the compiled engine, trainer/compiled/native/), built
 *               against the same extracted TensorFlow and probed (graph-addon.ts)
 *
 * Every step keeps its result in the cache (`$DESCENT_CACHE_DIR`, default ~/.cache/descent), so a
 * second run, or a run after `npm ci` dropped the package, takes seconds.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureGraphAddon, tensorflowDirOf } from './graph-addon.ts';
import { ensurePackageFiles } from './package-files.ts';
import {
  bindingIncludes,
  diskUsage,
  exists,
  extractTensorFlow,
  extraRequirements,
  wheelMetadata,
} from './wheel.ts';
import { ZipFile } from './zip.ts';

/** The TensorFlow release the addon is built against, and the wheels that carry it. */
export const TENSORFLOW_VERSION = '2.21.0';
export const CPU_WHEEL = 'tensorflow-cpu';
/** On Linux x86-64 the `tensorflow` wheel is the CUDA 12 build; its CUDA libraries come from `nvidia-*-cu12` wheels. */
export const GPU_WHEEL = 'tensorflow';

export interface SetupOptions {
  readonly projectRoot: string;
  /** Build `@tensorflow/tfjs-node-gpu` from the GPU wheel (and its CUDA wheels) instead of the CPU pair. */
  readonly gpu: boolean;
  /**
   * GPU build only: do not download the CUDA wheels; CUDA 12 and cuDNN 9 are already on the loader
   * path (a CUDA runtime base image, or a machine with them installed).
   */
  readonly systemCuda?: boolean;
  /** A wheel file to use instead of downloading one (DESCENT_TF_WHEEL). */
  readonly wheel?: string;
  /** The cache folder (DESCENT_CACHE_DIR). */
  readonly cacheDir: string;
  /** Build the addon again even if the cache has it. */
  readonly rebuild?: boolean;
  /** Progress lines. */
  readonly say: (line: string) => void;
}

export interface ProbeResult {
  readonly ok: boolean;
  readonly package?: string;
  readonly version?: string;
  readonly device?: string;
  readonly threads?: number;
  readonly reason?: string;
}

export interface SetupResult {
  /** The probe after setup (or the first one, when nothing had to be done). */
  readonly probe: ProbeResult;
  /** Whether the first probe already succeeded. */
  readonly alreadyWorked: boolean;
  /** TensorFlow's version as the graph addon (the compiled engine) reports it. */
  readonly graphAddon: string;
}

/** A failure of a step, with what to do about it. */
export class SetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SetupError';
  }
}

/** Default cache folder: $DESCENT_CACHE_DIR, else $XDG_CACHE_HOME/descent, else ~/.cache/descent. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DESCENT_CACHE_DIR) return resolve(env.DESCENT_CACHE_DIR);
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'descent');
}

export const packageFor = (gpu: boolean) => (gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');

interface RunResult {
  code: number;
  output: string;
}

/** Runs a command, collecting stdout and stderr together; never rejects on a non-zero exit. */
function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<RunResult>((resolvePromise) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('error', (error) => resolvePromise({ code: 127, output: `${output}${error.message}` }));
    child.on('close', (code) => resolvePromise({ code: code ?? 1, output }));
  });
}

const tail = (text: string, lines = 15) => text.trimEnd().split('\n').slice(-lines).join('\n');
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;
const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;

/**
 * Loads the package in a fresh Node process, the way the trainer does (trainer/native-tensorflow.ts:
 * compatibility patch, thread and log settings), and runs an op.
 */
export async function probe(projectRoot: string, name: string): Promise<ProbeResult> {
  const loader = pathToFileURL(join(projectRoot, 'trainer', 'native-tensorflow.ts')).href;
  const code = `
    const { loadNativeTensorFlow } = await import(${JSON.stringify(loader)});
    try {
      const r = await loadNativeTensorFlow([${JSON.stringify(name)}]);
      console.log(JSON.stringify({ ok: true, package: r.package, version: r.tensorflowVersion, device: r.device, threads: r.threads.intraOp }));
    } catch (error) {
      console.log(JSON.stringify({ ok: false, reason: error.message }));
    }`;
  const result = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: projectRoot });
  const last = result.output.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as ProbeResult;
  } catch {
    return { ok: false, reason: `the probe process failed (exit ${result.code}): ${tail(result.output, 5)}` };
  }
}

/** `python3 -m pip download --no-deps` of `requirements` into `dir`; returns the wheel files it saved. */
async function pipDownload(requirements: string[], dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const before = new Set(await readdir(dir));
  const result = await run('python3', [
    '-m',
    'pip',
    'download',
    '--no-deps',
    '--only-binary=:all:',
    '--disable-pip-version-check',
    '--dest',
    dir,
    ...requirements,
  ]);
  if (result.code !== 0) {
    throw new SetupError(
      `pip download ${requirements.join(' ')} failed (exit ${result.code}). Set DESCENT_TF_WHEEL to a downloaded wheel instead.\n${tail(result.output)}`,
    );
  }
  // pip names what it saved (or found already there): "Saved <path>" / "File was already downloaded <path>".
  const named = [...result.output.matchAll(/(?:Saved|already downloaded) (\S+\.whl)/g)].map((m) =>
    resolve(dir, basename(m[1] as string)),
  );
  const added = (await readdir(dir))
    .filter((f) => f.endsWith('.whl') && !before.has(f))
    .map((f) => join(dir, f));
  return [...new Set([...named, ...added])];
}

/** The TensorFlow wheel: DESCENT_TF_WHEEL, else a cached one of the pinned version, else downloaded. */
async function findWheel(options: SetupOptions): Promise<string> {
  if (options.wheel) {
    const wheel = resolve(options.wheel);
    if (!(await exists(wheel))) throw new SetupError(`DESCENT_TF_WHEEL=${options.wheel}: no such file`);
    options.say(`wheel: ${wheel} (DESCENT_TF_WHEEL)`);
    return wheel;
  }
  const project = options.gpu ? GPU_WHEEL : CPU_WHEEL;
  const dir = join(options.cacheDir, 'wheels');
  const prefix = `${project.replace(/-/g, '_')}-${TENSORFLOW_VERSION}-`;
  const cached = (await readdir(dir).catch(() => [] as string[])).find(
    (f) => f.startsWith(prefix) && f.endsWith('.whl'),
  );
  if (cached) {
    options.say(`wheel: ${join(dir, cached)} (cached)`);
    return join(dir, cached);
  }
  const started = performance.now();
  options.say(`wheel: pip download ${project}==${TENSORFLOW_VERSION} …`);
  const saved = (await pipDownload([`${project}==${TENSORFLOW_VERSION}`], dir)).find((f) =>
    basename(f).startsWith(prefix),
  );
  if (!saved) throw new SetupError(`pip download saved no ${prefix}*.whl in ${dir}`);
  options.say(`wheel: ${saved} (${mib((await stat(saved)).size)}, ${seconds(started)})`);
  return saved;
}

/** The CUDA wheels the GPU wheel's `and-cuda` extra names, downloaded once into the cache. */
async function cudaWheels(options: SetupOptions, wheel: string): Promise<string[]> {
  const zip = await ZipFile.open(wheel);
  const requirements = extraRequirements(await wheelMetadata(zip), 'and-cuda');
  await zip.close();
  if (requirements.length === 0)
    throw new SetupError(`${basename(wheel)} has no and-cuda extra: is it the GPU wheel?`);
  const dir = join(options.cacheDir, 'wheels', `cuda-for-${basename(wheel, '.whl')}`);
  const listing = join(dir, 'wheels.json');
  if (await exists(listing)) return JSON.parse(await readFile(listing, 'utf8')) as string[];
  const started = performance.now();
  options.say(`cuda: pip download ${requirements.length} wheels (${requirements.join(' ')}) …`);
  const saved = await pipDownload(requirements, dir);
  await writeFile(listing, `${JSON.stringify(saved)}\n`);
  options.say(`cuda: ${saved.length} wheels (${seconds(started)})`);
  return saved;
}

/** Headers of this Node (node_api.h): its install prefix, or the `node` npm package's platform build. */
async function nodeHeaders(projectRoot: string): Promise<string> {
  const major = process.versions.node.split('.')[0] as string;
  const candidates = [
    dirname(dirname(process.execPath)),
    join(projectRoot, 'node_modules', 'node', 'node_modules', `node-${process.platform}-${process.arch}`),
  ];
  for (const dir of candidates) {
    const versionHeader = join(dir, 'include', 'node', 'node_version.h');
    const text = await readFile(versionHeader, 'utf8').catch(() => '');
    if (new RegExp(`#define NODE_MAJOR_VERSION ${major}\\b`).test(text)) return dir;
  }
  throw new SetupError(
    `no headers of Node ${process.versions.node} (include/node/node_api.h) in ${candidates.join(' or ')}`,
  );
}

/** npm's bundled node-gyp: the one `npm run` names, or the one beside the npm that runs this. */
async function nodeGyp(): Promise<string> {
  const candidates = [
    process.env.npm_config_node_gyp,
    process.env.npm_execpath &&
      join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].filter((c): c is string => Boolean(c));
  for (const candidate of candidates) if (await exists(candidate)) return candidate;
  const which = await run('sh', ['-c', 'command -v npm']);
  if (which.code === 0) {
    const npmBin = await run('readlink', ['-f', which.output.trim()]);
    const gyp = join(dirname(npmBin.output.trim()), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (await exists(gyp)) return gyp;
  }
  throw new SetupError('node-gyp (it ships with npm) was not found: run this as `npm run setup:native`');
}

/** python3, make and a C++ compiler: what node-gyp needs. */
async function checkToolchain(): Promise<void> {
  const missing: string[] = [];
  for (const [tool, args] of [
    ['python3', ['--version']],
    ['make', ['--version']],
    [process.env.CXX || 'c++', ['--version']],
  ] as const) {
    if ((await run(tool, [...args])).code !== 0) missing.push(tool);
  }
  if (missing.length)
    throw new SetupError(
      `building the addon needs ${missing.join(', ')} (Debian/Ubuntu: apt-get install python3 make g++)`,
    );
}

/** Where tfjs-node's `dist/index.js` looks for the addon (node-pre-gyp's rule, for this Node's N-API). */
function addonPath(packageDir: string): { path: string; napi: string } {
  const require = createRequire(join(packageDir, 'package.json'));
  const preGyp = require('@mapbox/node-pre-gyp') as { find(packageJson: string): string };
  const path = preGyp.find(join(packageDir, 'package.json'));
  const napi = /napi-v(\d+)/.exec(path)?.[1];
  if (!napi) throw new SetupError(`unexpected addon path ${path}`);
  return { path, napi };
}

async function buildAddon(
  options: SetupOptions,
  packageDir: string,
  target: string,
  napi: string,
): Promise<void> {
  await checkToolchain();
  const [gyp, nodedir] = [await nodeGyp(), await nodeHeaders(options.projectRoot)];
  const started = performance.now();
  options.say(`addon: node-gyp rebuild against ${nodedir} (N-API ${napi}) …`);
  const result = await run(
    process.execPath,
    [
      gyp,
      'rebuild',
      `--nodedir=${nodedir}`,
      `--devdir=${join(options.cacheDir, 'node-gyp')}`,
      `--napi_build_version=${napi}`,
      '--module_name=tfjs_binding',
      `--module_path=${dirname(target)}`,
      `--jobs=${availableParallelism()}`,
    ],
    { cwd: packageDir },
  );
  if (result.code !== 0)
    throw new SetupError(`node-gyp failed (exit ${result.code}):\n${tail(result.output)}`);
  await rm(join(packageDir, 'build'), { recursive: true, force: true });
  options.say(`addon: built (${seconds(started)})`);
}

/** Points `deps` (where binding.gyp and the addon's rpath `$ORIGIN/../../deps/lib` look) at `dir`. */
async function linkDeps(packageDir: string, dir: string): Promise<void> {
  const deps = join(packageDir, 'deps');
  await rm(deps, { recursive: true, force: true });
  await symlink(dir, deps);
}

/** Runs the steps; never exits the process. Throws `SetupError` with the reason when a step fails. */
export async function setupNative(options: SetupOptions): Promise<SetupResult> {
  const result = await setupPackage(options);
  const [gyp, nodedir] = [await nodeGyp(), await nodeHeaders(options.projectRoot)];
  try {
    const graphAddon = await ensureGraphAddon(
      {
        projectRoot: options.projectRoot,
        cacheDir: options.cacheDir,
        ...(options.rebuild ? { rebuild: true } : {}),
        say: options.say,
        nodeGyp: async (dir) => {
          await checkToolchain();
          const gypRun = await run(
            process.execPath,
            [
              gyp,
              'rebuild',
              `--nodedir=${nodedir}`,
              `--devdir=${join(options.cacheDir, 'node-gyp')}`,
              `--jobs=${availableParallelism()}`,
            ],
            { cwd: dir },
          );
          if (gypRun.code !== 0)
            throw new SetupError(
              `node-gyp failed for the graph addon (exit ${gypRun.code}):\n${tail(gypRun.output)}`,
            );
        },
        node: async (code) =>
          (await run(process.execPath, ['--input-type=module', '-e', code], { cwd: options.projectRoot }))
            .output,
      },
      await tensorflowDirOf(join(options.projectRoot, 'node_modules', packageFor(options.gpu))),
    );
    return { ...result, graphAddon };
  } catch (error) {
    if (error instanceof SetupError) throw error;
    throw new SetupError((error as Error).message);
  }
}

/** Steps 1–7: the tfjs-node package and its addon. */
async function setupPackage(options: SetupOptions): Promise<Omit<SetupResult, 'graphAddon'>> {
  const { projectRoot, say } = options;
  const name = packageFor(options.gpu);

  const first = await probe(projectRoot, name);
  if (first.ok && !options.rebuild) {
    say(`${name} already loads and runs an op: nothing to do`);
    return { probe: first, alreadyWorked: true };
  }
  say(first.ok ? `${name} loads; rebuilding (--rebuild)` : `probe: ${first.reason}`);

  const wheel = await findWheel(options);
  const cuda = options.gpu && !options.systemCuda ? await cudaWheels(options, wheel) : [];

  let started = performance.now();
  const pkg = await ensurePackageFiles({
    projectRoot,
    name,
    cacheDir: join(options.cacheDir, 'npm'),
    npm: async (args, cwd) => {
      const result = await run('npm', args, { cwd });
      if (result.code !== 0) throw new SetupError(`npm ${args.join(' ')} failed:\n${tail(result.output)}`);
    },
  });
  say(
    `package: ${name}@${pkg.version} ${pkg.installed ? `installed from package-lock.json without its install script (${seconds(started)})` : 'present'}`,
  );

  started = performance.now();
  // With the CUDA libraries or without: two different folders, so that neither run finds the other's.
  const extractedDir = join(
    options.cacheDir,
    'tensorflow',
    `${basename(wheel, '.whl')}${cuda.length ? '+cuda' : ''}`,
  );
  const seeds = await bindingIncludes(join(pkg.dir, 'binding'));
  const tensorflow = await extractTensorFlow(wheel, extractedDir, seeds, cuda);
  say(
    tensorflow.extracted
      ? `tensorflow: extracted ${mib(await diskUsage(tensorflow.dir))} into ${tensorflow.dir} (${seconds(started)})`
      : `tensorflow: ${tensorflow.dir} (cached)`,
  );
  await linkDeps(pkg.dir, tensorflow.dir);

  const { path: target, napi } = addonPath(pkg.dir);
  const cached = join(
    options.cacheDir,
    'addons',
    `${name.replace('/', '+')}-${pkg.version}+${basename(wheel, '.whl')}+napi-v${napi}`,
    'tfjs_binding.node',
  );
  if (options.rebuild || !(await exists(cached))) {
    await buildAddon(options, pkg.dir, target, napi);
    await mkdir(dirname(cached), { recursive: true });
    await copyFile(target, `${cached}.tmp-${process.pid}`);
    await rename(`${cached}.tmp-${process.pid}`, cached);
  } else {
    await mkdir(dirname(target), { recursive: true });
    await copyFile(cached, target);
    say(`addon: ${cached} (cached)`);
  }

  const after = await probe(projectRoot, name);
  if (!after.ok) throw new SetupError(`${name} still does not load: ${after.reason}`);
  return { probe: after, alreadyWorked: false };
}
