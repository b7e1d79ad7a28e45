/**
 * What setup:native takes from a TensorFlow wheel: the two shared libraries that export the C API,
 * the C headers tfjs-node's addon includes (and the headers those include, nothing more), and for
 * the GPU build the CUDA libraries of the wheels its `and-cuda` extra names.
 */
import { readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ZipFile } from './zip.ts';

/** The shared libraries of a TensorFlow wheel (since 2.x) that export the C and eager C APIs. */
export const TENSORFLOW_LIBRARIES = ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2'] as const;

/** `tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl` → name and version (PEP 427). */
export function parseWheelName(file: string): { name: string; version: string } {
  const match = /^([A-Za-z0-9_.]+)-([^-]+)-/.exec(basename(file));
  if (!match || !file.endsWith('.whl')) throw new Error(`${basename(file)} is not a wheel file name`);
  return { name: (match[1] as string).toLowerCase(), version: match[2] as string };
}

/** `#include "a/b.h"` targets of a C/C++ source (angle-bracket includes are the compiler's). */
export function quotedIncludes(source: string): string[] {
  return [...source.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)].map((m) => m[1] as string);
}

/**
 * The wheel's headers (paths under `tensorflow/include/`) needed to compile sources whose quoted
 * includes are `seeds`: each seed found in the wheel, and recursively what it includes.
 */
export async function headerClosure(zip: ZipFile, seeds: readonly string[]): Promise<string[]> {
  const prefix = 'tensorflow/include/';
  const found = new Set<string>();
  const todo = [...seeds];
  for (let header = todo.pop(); header !== undefined; header = todo.pop()) {
    if (found.has(header) || !zip.entries.has(prefix + header)) continue;
    found.add(header);
    todo.push(...quotedIncludes((await zip.read(prefix + header)).toString('utf8')));
  }
  return [...found].sort();
}

/** The requirements of a wheel's extra, e.g. `and-cuda` → `nvidia-cublas-cu12<13.0,>=12.5.3.2`, … */
export function extraRequirements(metadata: string, extra: string): string[] {
  const out: string[] = [];
  for (const line of metadata.split('\n')) {
    const match = /^Requires-Dist:\s*([^;]+);\s*(.*)$/.exec(line.trim());
    if (!match) continue;
    const marker = match[2] as string;
    if (new RegExp(`extra\\s*==\\s*["']${extra}["']`).test(marker)) out.push((match[1] as string).trim());
  }
  return out;
}

/** The wheel's `*.dist-info/METADATA`. */
export async function wheelMetadata(zip: ZipFile): Promise<string> {
  const name = [...zip.entries.keys()].find((n) => /^[^/]+\.dist-info\/METADATA$/.test(n));
  if (!name) throw new Error(`${zip.path} has no METADATA`);
  return (await zip.read(name)).toString('utf8');
}

/** Shared libraries of an NVIDIA CUDA wheel (`nvidia/cublas/lib/libcublas.so.12`, …). */
export function isCudaLibrary(entry: string): boolean {
  return /^nvidia\/[^/]+\/lib\/[^/]+\.so(\.\d+)*$/.test(entry);
}

export interface ExtractedTensorFlow {
  /** The folder tfjs-node's `deps` link points at: `include/` and `lib/`. */
  readonly dir: string;
  readonly version: string;
  /** Whether this call extracted it (false: it was in the cache). */
  readonly extracted: boolean;
}

const COMPLETE = '.complete';

/**
 * Extracts the libraries (plus the link names `-ltensorflow` and `-ltensorflow_framework` need) and
 * the header closure of `seeds` from `wheel` into `dir`, and the CUDA libraries of `cudaWheels`
 * into the same `lib/`. Once: a finished folder has a `.complete` marker and is reused; an
 * interrupted one is replaced (work happens in a temporary folder renamed at the end).
 */
export async function extractTensorFlow(
  wheel: string,
  dir: string,
  seeds: readonly string[],
  cudaWheels: readonly string[] = [],
): Promise<ExtractedTensorFlow> {
  const { version } = parseWheelName(wheel);
  if (await exists(join(dir, COMPLETE))) return { dir, version, extracted: false };
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  const zip = await ZipFile.open(wheel);
  try {
    for (const library of TENSORFLOW_LIBRARIES) {
      await zip.extract(`tensorflow/${library}`, join(tmp, 'lib', library), 0o755);
    }
    for (const header of await headerClosure(zip, seeds)) {
      await zip.extract(`tensorflow/include/${header}`, join(tmp, 'include', header));
    }
  } finally {
    await zip.close();
  }
  // The addon links with -ltensorflow -ltensorflow_framework; it then records the sonames (.so.2).
  await symlink('libtensorflow_cc.so.2', join(tmp, 'lib', 'libtensorflow.so'));
  await symlink('libtensorflow_framework.so.2', join(tmp, 'lib', 'libtensorflow_framework.so'));
  for (const cudaWheel of cudaWheels) {
    const cuda = await ZipFile.open(cudaWheel);
    try {
      for (const name of cuda.entries.keys()) {
        if (isCudaLibrary(name)) await cuda.extract(name, join(tmp, 'lib', basename(name)), 0o755);
      }
    } finally {
      await cuda.close();
    }
  }
  await writeFile(
    join(tmp, COMPLETE),
    `${JSON.stringify({ wheel: basename(wheel), cudaWheels: cudaWheels.map((w) => basename(w)) })}\n`,
  );
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return { dir, version, extracted: true };
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Bytes of the files under `dir` (links not followed). */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size;
  }
  return total;
}

/** The quoted includes of every C/C++ source of an addon's `binding/` folder. */
export async function bindingIncludes(bindingDir: string): Promise<string[]> {
  const includes = new Set<string>();
  for (const file of await readdir(bindingDir)) {
    if (!/\.(cc|cpp|c|h)$/.test(file)) continue;
    for (const include of quotedIncludes(await readFile(join(bindingDir, file), 'utf8')))
      includes.add(include);
  }
  return [...includes].sort();
}
