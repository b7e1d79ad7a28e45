/**
 * The anchors of `npm run bench:train`: PyTorch 2 and Keras 3 (on TensorFlow 2) training the same
 * shapes in the same run, from a virtual environment the bench makes once in the cache
 * (`$DESCENT_CACHE_DIR/bench/venv`, default ~/.cache/descent/bench/venv) with pip and pinned
 * versions. Where pip cannot install them, Debian's python3-torch (/usr/bin/python3) stands in for
 * PyTorch and the bench says so. `DESCENT_BENCH_PYTHON` names a Python to use instead.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultCacheDir } from '../scripts/native/setup.ts';

/** What the venv installs: PyTorch's CPU build and TensorFlow's CPU wheel (which brings Keras 3). */
export const PINNED = ['torch==2.13.0', 'tensorflow-cpu==2.21.0'] as const;

export interface AnchorPython {
  python: string;
  torch?: string;
  keras?: string;
  tensorflow?: string;
  /** Where it came from, and anything missing. */
  note: string;
}

export interface AnchorResult {
  windows: number[];
  detail: string;
}

interface RunOutput {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: Record<string, string> = {}): Promise<RunOutput> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', (error) => resolve({ code: 127, stdout, stderr: `${stderr}${error.message}` }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

const PROBE = `
import json
out = {}
for name in ("torch", "keras", "tensorflow"):
    try:
        module = __import__(name)
        out[name] = module.__version__
    except Exception:
        pass
print(json.dumps(out))
`;

async function versions(python: string): Promise<Record<string, string>> {
  if (!existsSync(python)) return {};
  const result = await run(python, ['-c', PROBE], { TF_CPP_MIN_LOG_LEVEL: '3' });
  try {
    return JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, string>;
  } catch {
    return {};
  }
}

const pinnedVersion = (pin: string) => pin.split('==')[1] as string;
const matches = (found: string | undefined, pin: string) => found?.split('+')[0] === pinnedVersion(pin);

/**
 * The Python the anchors run on: `DESCENT_BENCH_PYTHON`, else the bench venv (made and filled with
 * `PINNED` by pip on first use; a few minutes), else the system's python3 with Debian's torch.
 */
export async function anchorPython(say: (line: string) => void): Promise<AnchorPython | undefined> {
  if (process.env.DESCENT_BENCH_PYTHON) {
    const python = process.env.DESCENT_BENCH_PYTHON;
    return { python, ...(await versions(python)), note: 'DESCENT_BENCH_PYTHON' };
  }
  const dir = join(defaultCacheDir(), 'bench');
  const python = join(dir, 'venv', 'bin', 'python');
  let found = await versions(python);
  if (!(matches(found.torch, PINNED[0]) && matches(found.tensorflow, PINNED[1]))) {
    say(`anchors: installing ${PINNED.join(' ')} into ${join(dir, 'venv')} (once; pip) …`);
    await mkdir(dir, { recursive: true });
    const log: string[] = [];
    if (!existsSync(python)) log.push((await run('python3', ['-m', 'venv', join(dir, 'venv')])).stderr);
    const pip = await run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', ...PINNED]);
    log.push(pip.stdout, pip.stderr);
    await writeFile(join(dir, 'install.log'), log.join('\n'));
    found = await versions(python);
    if (pip.code !== 0) say(`anchors: pip failed (exit ${pip.code}); see ${join(dir, 'install.log')}`);
  }
  if (found.torch || found.keras) return { python, ...found, note: `venv ${join(dir, 'venv')}` };
  const system = await versions('/usr/bin/python3');
  if (system.torch)
    return {
      python: '/usr/bin/python3',
      torch: system.torch,
      note: "pip could not install the pinned anchors: PyTorch is Debian's python3-torch, no Keras",
    };
  return undefined;
}

const script = (name: string) => fileURLToPath(new URL(name, import.meta.url));

/** One anchor run of `shape` on `threads` threads; rejects with the Python error when it fails. */
export async function runAnchor(
  python: string,
  system: 'torch' | 'keras',
  shape: { name: string; batch: number },
  steps: number,
  windows: number,
  threads: number,
): Promise<AnchorResult> {
  const t = String(threads);
  const file = script(system === 'torch' ? './train_throughput_torch.py' : './train_throughput_keras.py');
  const result = await run(
    python,
    [file, shape.name, String(shape.batch), String(steps), String(windows), t],
    // torch.set_num_threads sets OpenMP's threads; OpenBLAS keeps its own pool unless told.
    { OMP_NUM_THREADS: t, OPENBLAS_NUM_THREADS: t, MKL_NUM_THREADS: t, TF_CPP_MIN_LOG_LEVEL: '2' },
  );
  if (result.code !== 0)
    throw new Error(
      `${system} exited ${result.code}: ${result.stderr.trim().split('\n').slice(-3).join(' ')}`,
    );
  const out = JSON.parse(result.stdout.trim().split('\n').at(-1) as string) as {
    windows: number[];
    blas?: string;
    jit?: string;
  };
  return { windows: out.windows, detail: system === 'torch' ? `BLAS ${out.blas}` : `jit_compile=${out.jit}` };
}
