/**
 * Puts the files of `@tensorflow/tfjs-node` (or `-gpu`) and of its runtime dependencies into the
 * project's node_modules, at exactly the versions and integrity hashes of package-lock.json, without
 * running its install script (which downloads libtensorflow 2.9.1) and without touching anything
 * else in node_modules (a plain `npm install` there would re-resolve the whole tree).
 *
 * How: a staging project in the cache whose lockfile is the part of ours that the package needs
 * (its own entry, minus its dependency on `@tensorflow/tfjs`, which must stay the project's single
 * copy, and everything its other dependencies pull in); `npm ci --ignore-scripts` there, from npm's
 * cache when `npm ci` has already fetched the tarballs. The package is then copied into
 * node_modules, its dependencies into its own nested node_modules.
 */
import { createHash } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exists } from './wheel.ts';

interface LockEntry {
  version?: string;
  integrity?: string;
  resolved?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  [key: string]: unknown;
}

export interface Lockfile {
  name?: string;
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
}

/** Packages the native package shares with the project: never copied, so that tfjs stays one instance. */
export const SHARED = (name: string) => name.startsWith('@tensorflow/');

/** The lockfile path a package named `name`, required from the package at `from`, resolves to. */
export function resolveLocked(lock: Lockfile, from: string, name: string): string | undefined {
  let base = from;
  for (;;) {
    const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
    if (lock.packages[candidate]) return candidate;
    if (base === '') return undefined;
    const cut = base.lastIndexOf('/node_modules/');
    base = cut < 0 ? '' : base.slice(0, cut);
  }
}

/**
 * The lockfile of a staging project that installs `name` and its dependency tree from `lock`, with
 * `SHARED` packages left out (and dropped from the package's own dependencies). Throws when `lock`
 * does not pin `name`.
 */
export function stagingLockfile(lock: Lockfile, name: string): Lockfile {
  if (lock.lockfileVersion < 2) throw new Error('package-lock.json must be lockfileVersion 2 or 3');
  const root = `node_modules/${name}`;
  const entry = lock.packages[root];
  if (!entry?.version) throw new Error(`package-lock.json does not pin ${name}`);
  const keep = (deps: Record<string, string> | undefined) =>
    deps && Object.fromEntries(Object.entries(deps).filter(([dep]) => !SHARED(dep)));
  const packages: Record<string, LockEntry> = {
    '': { name: 'descent-native-staging', dependencies: { [name]: entry.version } },
    [root]: {
      ...entry,
      dependencies: keep(entry.dependencies) ?? {},
      ...(entry.optionalDependencies ? { optionalDependencies: keep(entry.optionalDependencies) } : {}),
    },
  };
  // Delete install-script flags: --ignore-scripts skips them anyway, and the entry is ours now.
  delete packages[root]?.hasInstallScript;
  const todo: string[] = [root];
  for (let at = todo.pop(); at !== undefined; at = todo.pop()) {
    const current = packages[at] as LockEntry;
    for (const dep of Object.keys({ ...current.dependencies, ...current.optionalDependencies })) {
      if (SHARED(dep)) continue;
      const path = resolveLocked(lock, at, dep);
      if (!path) {
        if (current.optionalDependencies?.[dep]) continue;
        throw new Error(`package-lock.json has no ${dep} for ${at}`);
      }
      if (packages[path]) continue;
      packages[path] = { ...(lock.packages[path] as LockEntry) };
      todo.push(path);
    }
  }
  return { name: 'descent-native-staging', lockfileVersion: 3, packages };
}

export interface PackageFilesOptions {
  readonly projectRoot: string;
  /** `@tensorflow/tfjs-node` or `@tensorflow/tfjs-node-gpu`. */
  readonly name: string;
  /** Where staging projects are kept. */
  readonly cacheDir: string;
  /** Runs `npm` with these arguments in `cwd`; rejects when it fails. */
  readonly npm: (args: string[], cwd: string) => Promise<void>;
}

/**
 * Makes `node_modules/<name>` hold the package and its dependencies at the lockfile's versions.
 * Returns the package folder and whether anything was installed (false: it was there already, at the
 * pinned version).
 */
export async function ensurePackageFiles(
  options: PackageFilesOptions,
): Promise<{ dir: string; version: string; installed: boolean }> {
  const { projectRoot, name, cacheDir, npm } = options;
  const lock = JSON.parse(await readFile(join(projectRoot, 'package-lock.json'), 'utf8')) as Lockfile;
  const staging = stagingLockfile(lock, name);
  const version = staging.packages[`node_modules/${name}`]?.version as string;
  const target = join(projectRoot, 'node_modules', name);
  const present = await readFile(join(target, 'package.json'), 'utf8').then(
    (text) => JSON.parse(text) as { version?: string },
    () => undefined,
  );
  const depsPresent = await exists(join(target, 'node_modules'));
  if (present?.version === version && depsPresent) return { dir: target, version, installed: false };

  const hash = createHash('sha256').update(JSON.stringify(staging)).digest('hex').slice(0, 12);
  const stageDir = join(cacheDir, `${name.replace('/', '+')}-${version}-${hash}`);
  if (!(await exists(join(stageDir, '.complete')))) {
    const tmp = `${stageDir}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    await writeFile(
      join(tmp, 'package.json'),
      `${JSON.stringify({ name: 'descent-native-staging', private: true, dependencies: { [name]: version } }, null, 2)}\n`,
    );
    await writeFile(join(tmp, 'package-lock.json'), `${JSON.stringify(staging, null, 2)}\n`);
    await npm(['ci', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], tmp);
    await writeFile(join(tmp, '.complete'), '');
    await rm(stageDir, { recursive: true, force: true });
    await rename(tmp, stageDir);
  }

  // The package itself, then its dependencies (everything staged except the package) inside it.
  await rm(target, { recursive: true, force: true });
  await cp(join(stageDir, 'node_modules', name), target, { recursive: true });
  const nested = join(target, 'node_modules');
  await mkdir(nested, { recursive: true });
  for (const entry of await readdir(join(stageDir, 'node_modules'))) {
    if (entry.startsWith('.')) continue;
    if (entry.startsWith('@')) {
      for (const scoped of await readdir(join(stageDir, 'node_modules', entry))) {
        const full = `${entry}/${scoped}`;
        if (full === name || SHARED(full)) continue;
        await cp(join(stageDir, 'node_modules', full), join(nested, full), { recursive: true });
      }
      continue;
    }
    await cp(join(stageDir, 'node_modules', entry), join(nested, entry), { recursive: true });
  }
  return { dir: target, version, installed: true };
}
