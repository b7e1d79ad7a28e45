/**
 * What the trainer learns from `nvidia-smi` (present in a GPU container: the NVIDIA container runtime
 * mounts it when `NVIDIA_DRIVER_CAPABILITIES` includes `utility`): the GPU's model, which with the
 * host's vCPU count tells the instance type (and so its price), and its utilisation while a job trains.
 * Without `nvidia-smi` (local mode, a CPU host) every probe answers `undefined`.
 */
import { execFile } from 'node:child_process';

export interface GpuSample {
  readonly name: string;
  readonly utilizationPercent: number;
  readonly memoryUsedMiB: number;
  readonly memoryTotalMiB: number;
}

/** Runs `nvidia-smi` with `args`; resolves its stdout, or `undefined` when it is missing or fails. */
export type SmiRunner = (args: readonly string[]) => Promise<string | undefined>;

export const runNvidiaSmi: SmiRunner = (args) =>
  new Promise((resolve) => {
    execFile('nvidia-smi', [...args], { timeout: 10_000 }, (error, stdout) =>
      resolve(error ? undefined : stdout),
    );
  });

const QUERY = ['--query-gpu=name,utilization.gpu,memory.used,memory.total', '--format=csv,noheader,nounits'];

/** One sample per GPU from `nvidia-smi`'s CSV (`NVIDIA A10G, 87, 20314, 23028`); bad lines are skipped. */
export function parseGpuSamples(csv: string): GpuSample[] {
  const samples: GpuSample[] = [];
  for (const line of csv.split('\n')) {
    const cells = line.split(',').map((c) => c.trim());
    if (cells.length !== 4 || !cells[0]) continue;
    const [utilization, used, total] = cells.slice(1).map(Number) as [number, number, number];
    if (![utilization, used, total].every(Number.isFinite)) continue;
    samples.push({
      name: cells[0],
      utilizationPercent: utilization,
      memoryUsedMiB: used,
      memoryTotalMiB: total,
    });
  }
  return samples;
}

/** The GPUs as `nvidia-smi` sees them now, or `undefined` without it. */
export async function probeGpus(run: SmiRunner = runNvidiaSmi): Promise<GpuSample[] | undefined> {
  const out = await run(QUERY);
  if (out === undefined) return undefined;
  const samples = parseGpuSamples(out);
  return samples.length > 0 ? samples : undefined;
}
