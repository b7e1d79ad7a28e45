/**
 * EventBridge rule target: AWS Batch's job-state and queue-blocked events for descent's job queue
 * (`aws/batch-events.ts`). A failure is thrown, so EventBridge retries the event (and, in the end,
 * puts it on the rule's dead-letter queue, which the dead-letter alarm watches).
 */
import type { EventBridgeEvent } from 'aws-lambda';
import { type BatchJobDetail, handleBatchEvent } from '../aws/batch-events.ts';
import type { AwsContext } from '../aws/services.ts';
import { ENV, intEnv } from '../core/platform/config.ts';
import { type MetricsSink, printMetrics } from '../core/platform/emf.ts';
import { log } from '../core/platform/log.ts';
import { advanceSweep } from '../core/sweeps/sweep-controller.ts';
import { lambdaWith } from './lambda.ts';

export const create = (
  { services }: Pick<AwsContext, 'services'>,
  metrics: MetricsSink = printMetrics,
  env = process.env,
) => {
  const capacityWaitMinutes = intEnv(ENV.capacityWaitMinutes, 0, { min: 0, max: 1440 }, env) || undefined;
  return async (event: EventBridgeEvent<string, BatchJobDetail>): Promise<{ outcome: string }> => {
    const outcome = await handleBatchEvent(
      {
        lifecycle: services.lifecycle,
        metrics,
        log,
        advanceSweep: (tenant, sweepId) => advanceSweep(services, tenant, sweepId),
        ...(capacityWaitMinutes ? { capacityWaitMinutes } : {}),
      },
      event['detail-type'],
      event.detail,
    );
    return { outcome };
  };
};

export const handler = lambdaWith((context) => create(context));
