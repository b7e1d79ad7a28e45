/**
 * The GPU instance types descent knows: vCPUs (AWS Batch sizes its compute environment and the
 * account's G/VT quota in vCPUs), memory, the GPU model (how a trainer tells which type it runs on:
 * `nvidia-smi` names the GPU, the host's CPU count gives the size) and an on-demand price for cost
 * estimates. Prices are us-east-1 Linux on-demand list prices in USD per hour (November 2026);
 * `descent:instancePrices` overrides them for another region, a Spot price or a discount.
 */
import { z } from 'zod';

export interface GpuInstanceType {
  readonly type: string;
  readonly vcpus: number;
  readonly memoryMiB: number;
  /** The GPU model as `nvidia-smi --query-gpu=name` prints it, without the `NVIDIA ` prefix. */
  readonly gpu: string;
  readonly hourlyPriceUsd: number;
}

const row = (type: string, vcpus: number, memoryGiB: number, gpu: string, hourlyPriceUsd: number) =>
  ({ type, vcpus, memoryMiB: memoryGiB * 1024, gpu, hourlyPriceUsd }) satisfies GpuInstanceType;

/** One NVIDIA GPU each, x86_64 (the trainer image's architecture). */
export const GPU_INSTANCE_TYPES: readonly GpuInstanceType[] = [
  row('g4dn.xlarge', 4, 16, 'Tesla T4', 0.526),
  row('g4dn.2xlarge', 8, 32, 'Tesla T4', 0.752),
  row('g4dn.4xlarge', 16, 64, 'Tesla T4', 1.204),
  row('g5.xlarge', 4, 16, 'A10G', 1.006),
  row('g5.2xlarge', 8, 32, 'A10G', 1.212),
  row('g5.4xlarge', 16, 64, 'A10G', 1.624),
  row('g6.xlarge', 4, 16, 'L4', 0.8048),
  row('g6.2xlarge', 8, 32, 'L4', 0.9776),
  row('g6.4xlarge', 16, 64, 'L4', 1.3232),
  row('g6e.xlarge', 4, 32, 'L40S', 1.861),
  row('g6e.2xlarge', 8, 64, 'L40S', 2.24208),
];

export const gpuInstanceType = (type: string): GpuInstanceType | undefined =>
  GPU_INSTANCE_TYPES.find((t) => t.type === type);

/** What the infrastructure hands a trainer in `DESCENT_INSTANCE_TYPES`: the types it may run on. */
export const instanceCatalogue = z.array(
  z.strictObject({
    type: z.string(),
    vcpus: z.int().positive(),
    gpu: z.string(),
    hourlyPriceUsd: z.number().nonnegative(),
  }),
);
export type InstanceCatalogue = z.infer<typeof instanceCatalogue>;

/** The catalogue from its JSON; throws a message that names the variable when it is malformed. */
export function parseInstanceCatalogue(text: string | undefined, variable: string): InstanceCatalogue {
  if (text === undefined || text === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`Environment variable ${variable} must be JSON, got "${text.slice(0, 80)}".`);
  }
  const result = instanceCatalogue.safeParse(parsed);
  if (!result.success) {
    throw new Error(
      `Environment variable ${variable} is not a list of instance types: ${result.error.message}`,
    );
  }
  return result.data;
}

/**
 * The instance type a trainer runs on, from its GPU's model name and the host's vCPU count, among the
 * types it may run on; `undefined` when none matches (or several do).
 */
export function identifyInstance(
  catalogue: InstanceCatalogue,
  host: { readonly gpuName: string | undefined; readonly vcpus: number },
): InstanceCatalogue[number] | undefined {
  const name = host.gpuName
    ?.replace(/^NVIDIA\s+/i, '')
    .trim()
    .toLowerCase();
  if (!name) return undefined;
  const matches = catalogue.filter((t) => t.gpu.toLowerCase() === name && t.vcpus === host.vcpus);
  return matches.length === 1 ? matches[0] : undefined;
}

/** The compute environment's maximum vCPUs: `maxWorkers` instances of the largest of `types`. */
export function maxvCpusFor(types: readonly string[], maxWorkers: number): number {
  const vcpus = types.map((t) => gpuInstanceType(t)?.vcpus ?? 0);
  return maxWorkers * Math.max(0, ...vcpus);
}
