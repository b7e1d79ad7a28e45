/**
 * Scheduled (EventBridge): the capacity watch (`aws/watch-training.ts`). It needs only AWS Batch:
 * its function has no access to the bucket, and builds no other port.
 */

import type { BatchJobs } from '../aws/batch-jobs.ts';
import { watchTraining } from '../aws/watch-training.ts';
import { ENV, intEnv } from '../core/platform/config.ts';
import { type MetricsSink, printMetrics } from '../core/platform/emf.ts';
import { log } from '../core/platform/log.ts';

export const create = (
  batch: BatchJobs | undefined,
  metrics: MetricsSink = printMetrics,
  env: NodeJS.ProcessEnv = process.env,
  now: () => Date = () => new Date(),
) => {
  if (!batch)
    throw new Error('The capacity watch needs DESCENT_BATCH_JOB_QUEUE (its grant to list AWS Batch jobs).');
  const capacityWaitMinutes = intEnv(ENV.capacityWaitMinutes, 60, { min: 10, max: 1440 }, env);
  return async () => {
    const result = await watchTraining({ batch, metrics, log, now, capacityWaitMinutes });
    log.info('training watched', { ...result });
    return result;
  };
};

let watch: ReturnType<typeof create> | undefined;

export const handler = async () => {
  // Built once per container; only the Batch port (its function's environment names no other).
  watch ??= create((await import('../aws/services.ts')).awsPorts().batch);
  return watch();
};
