/**
 * The trainer on AWS Batch: the entry point of the GPU container (`trainer/Dockerfile`). Batch starts
 * one container per attempt of one job, named by `DESCENT_JOB_TENANT` and `DESCENT_JOB_ID`; it runs
 * that job through the same pipeline as the local workers (`trainer/startup.ts`, `trainer/run-job.ts`)
 * and exits. The exit code tells the job definition's retry strategy what happened
 * (`TRAINER_EXIT` in `aws/batch-jobs.ts`):
 *
 * - 0: the job ended (SUCCEEDED, FAILED for its own reason, CANCELLED), or it needs nothing from this
 *   container (ended before, run by another Batch job);
 * - 75: a temporary error, or SIGTERM (Spot interruption, host draining): Batch retries, and the next
 *   attempt resumes from the last checkpoint;
 * - 78: `DESCENT_REQUIRE_GPU` and no GPU (or the backend named in `DESCENT_BACKEND` could not start):
 *   never retried; the job-state event handler fails the job with TRAINER_UNAVAILABLE, and the
 *   `gpuUnavailable` metric raises the "trainer without a GPU" alarm;
 * - 2: a malformed setting.
 *
 * Configuration (set by `infra/training-compute.ts`): DESCENT_BUCKET, DESCENT_QUEUE_URL,
 * DESCENT_EVENT_BUS, DESCENT_INSTANCE_TYPES, DESCENT_REQUIRE_GPU, DESCENT_BACKEND, the limits; Batch
 * sets AWS_BATCH_JOB_ID and AWS_BATCH_JOB_ATTEMPT; the dispatcher sets the job's tenant and id.
 */
import { cpus } from 'node:os';
import { TRAINER_EXIT } from '../aws/batch-jobs.ts';
import { awsPorts } from '../aws/services.ts';
import { type JobMessage, jobMessage } from '../core/jobs/job-record.ts';
import { ENV, requireEnv } from '../core/platform/config.ts';
import { emitMetrics, type MetricsSink, printMetrics } from '../core/platform/emf.ts';
import { identifyInstance, parseInstanceCatalogue } from '../core/platform/gpu-instances.ts';
import { createLogger, type Logger } from '../core/platform/log.ts';
import { retryDelaySeconds } from '../core/platform/retry.ts';
import { loadRuntimeConfig, type RuntimeConfig } from '../core/platform/runtime-config.ts';
import { type GpuSample, probeGpus, type SmiRunner } from './gpu-probe.ts';
import type { JobOutcome } from './run-job.ts';
import { type PreparedTrainer, prepareTrainer } from './startup.ts';

/** How often GPU utilisation is sampled while a job trains. */
const GPU_SAMPLE_MS = 60_000;
/** The longest wait before a temporarily failed attempt exits for Batch to retry it. */
const MAX_RETRY_WAIT_SECONDS = 60;

interface Setup {
  readonly config: RuntimeConfig;
  readonly job: JobMessage;
  readonly requireGpu: boolean;
  readonly ports: ReturnType<typeof awsPorts>;
  readonly catalogue: ReturnType<typeof parseInstanceCatalogue>;
}

/** Every setting, read once; throws a message that names the one that is wrong. */
export function readSetup(env: NodeJS.ProcessEnv): Setup {
  const config = loadRuntimeConfig(env);
  const parsed = jobMessage.safeParse({
    tenant: requireEnv(ENV.jobTenant, env),
    jobId: requireEnv(ENV.jobId, env),
  });
  if (!parsed.success)
    throw new Error(`${ENV.jobTenant} / ${ENV.jobId} do not name a job: ${parsed.error.message}`);
  requireEnv(ENV.bucket, env);
  return {
    config,
    job: parsed.data,
    requireGpu: env[ENV.requireGpu] === 'true',
    ports: awsPorts(env),
    catalogue: parseInstanceCatalogue(env[ENV.instanceTypes], ENV.instanceTypes),
  };
}

/** The instance's type and price: identified by its GPU and vCPUs, else the dearest it may be (an upper bound). */
export function instanceOf(
  setup: Pick<Setup, 'catalogue' | 'config'>,
  gpus: readonly GpuSample[] | undefined,
  vcpus: number,
): { type?: string; hourlyPriceUsd: number } {
  const found = identifyInstance(setup.catalogue, { gpuName: gpus?.[0]?.name, vcpus });
  if (found) return { type: found.type, hourlyPriceUsd: found.hourlyPriceUsd };
  const prices = setup.catalogue.map((t) => t.hourlyPriceUsd);
  return { hourlyPriceUsd: prices.length > 0 ? Math.max(...prices) : setup.config.hourlyPriceUsd };
}

/** Exits once stdout (the metric lines) is flushed; the promise never resolves. */
async function exit(code: number): Promise<never> {
  await new Promise((resolve) => process.stdout.write('', resolve));
  process.exit(code);
}

/** Samples GPU utilisation into the `gpuUtilization` metric until stopped. */
function sampleGpu(metrics: MetricsSink, job: JobMessage, run?: SmiRunner): () => void {
  const timer = setInterval(async () => {
    const gpus = await probeGpus(run);
    if (!gpus) return;
    const mean = gpus.reduce((sum, g) => sum + g.utilizationPercent, 0) / gpus.length;
    emitMetrics(metrics, { gpuUtilization: mean }, { properties: { ...job, gpu: gpus[0]?.name ?? '' } });
  }, GPU_SAMPLE_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** The backend, on a GPU when one is required; exits 78 (with the metric) when it cannot be had. */
async function startOnGpu(
  setup: Setup,
  log: Logger,
  instance: ReturnType<typeof instanceOf>,
): Promise<PreparedTrainer> {
  const { store, queue, events } = setup.ports;
  const noGpu = async (message: string, fields: Record<string, unknown>): Promise<never> => {
    log.error(message, { ...setup.job, ...fields });
    if (setup.requireGpu) emitMetrics(printMetrics, { gpuUnavailable: 1 }, { properties: { ...setup.job } });
    return await exit(TRAINER_EXIT.noGpu);
  };
  let trainer: PreparedTrainer;
  try {
    trainer = await prepareTrainer({
      config: setup.config,
      store: store as NonNullable<typeof store>,
      ...(queue ? { queue } : {}),
      ...(events ? { events } : {}),
      log,
      metrics: printMetrics,
      instance,
    });
  } catch (error) {
    return await noGpu('backend unavailable: the trainer cannot start', {
      error: String((error as Error).message),
    });
  }
  const { backend, device } = trainer;
  if (setup.requireGpu && device !== 'gpu') {
    return await noGpu('no GPU: refusing to train on the CPU of a GPU instance', {
      backend: backend.name,
      package: backend.package,
      skipped: backend.skipped,
    });
  }
  emitMetrics(
    printMetrics,
    { trainerStarted: 1 },
    { properties: { backend: backend.name, device, package: backend.package } },
  );
  return trainer;
}

/** Whether another Batch job runs this job (a duplicate submit that the dispatcher is terminating). */
async function runByAnother(
  trainer: PreparedTrainer,
  job: JobMessage,
  batchJobId: string | undefined,
): Promise<boolean> {
  const found = await trainer.services.lifecycle.jobs.find(job.tenant, job.jobId);
  const recorded = found?.record.batchJob?.id;
  return Boolean(recorded && batchJobId && recorded !== batchJobId);
}

async function main(): Promise<void> {
  const log = createLogger({ component: 'trainer' });
  process.on('unhandledRejection', (reason) => log.error('unhandled rejection', { reason: String(reason) }));
  let setup: Setup;
  try {
    setup = readSetup(process.env);
  } catch (error) {
    log.error('bad setting; the trainer cannot start', { error: (error as Error).message });
    return await exit(TRAINER_EXIT.badSetting);
  }
  const gpus = await probeGpus();
  const instance = instanceOf(setup, gpus, cpus().length);
  log.info('instance', { ...setup.job, gpu: gpus?.[0]?.name, vcpus: cpus().length, ...instance });
  const trainer = await startOnGpu(setup, log, instance);
  if (await runByAnother(trainer, setup.job, process.env.AWS_BATCH_JOB_ID)) {
    log.warn('another Batch job runs this job; exiting', { ...setup.job });
    return await exit(TRAINER_EXIT.done);
  }

  const stop = new AbortController();
  process.once('SIGTERM', () => {
    log.info('SIGTERM: stopping at the end of the epoch', { ...setup.job });
    stop.abort();
  });
  const stopSampling = sampleGpu(printMetrics, setup.job);
  let outcome: JobOutcome;
  try {
    outcome = await trainer.run(setup.job, stop.signal);
  } catch (error) {
    stopSampling();
    const attempt = Number(process.env.AWS_BATCH_JOB_ATTEMPT ?? 1) || 1;
    const wait = stop.signal.aborted ? 0 : Math.min(MAX_RETRY_WAIT_SECONDS, retryDelaySeconds(attempt));
    log.error('temporary error; AWS Batch retries the job', {
      ...setup.job,
      attempt,
      retryInSeconds: wait,
      error: String((error as Error)?.stack ?? error),
    });
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    return await exit(TRAINER_EXIT.retry);
  }
  stopSampling();
  log.info('job handled', { ...setup.job, outcome });
  return await exit(outcome === 'interrupted' ? TRAINER_EXIT.retry : TRAINER_EXIT.done);
}

if (import.meta.main) await main();
