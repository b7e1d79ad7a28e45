/** SQS event source on the dead-letter queue: marks each dead-lettered job FAILED with MAX_ATTEMPTS. */
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { handleDeadLetter } from '../core/jobs/dead-letter.ts';
import { ENV, intEnv } from '../core/platform/config.ts';
import { emitMetrics, printMetrics } from '../core/platform/emf.ts';
import { log } from '../core/platform/log.ts';
import { awsServices } from './lambda.ts';

export const handler = async (event: SQSEvent): Promise<SQSBatchResponse> => {
  const { store, queue } = await awsServices();
  const maxAttempts = intEnv(ENV.maxAttempts, 3, { min: 1, max: 1000 });
  const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
  let failed = 0;
  for (const record of event.Records) {
    try {
      const outcome = await handleDeadLetter(store, record.body, new Date(), maxAttempts, queue);
      if (outcome === 'failed') failed++;
      log.info('dead-lettered job handled', { messageId: record.messageId, outcome });
    } catch (error) {
      log.error('dead-letter handling failed; will retry', {
        messageId: record.messageId,
        error: String(error),
      });
      batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  // Jobs this batch marked FAILED: the dashboard's dead-lettered line and the failure-rate alarm.
  if (failed > 0) emitMetrics(printMetrics, { jobsDeadLettered: failed });
  return { batchItemFailures };
};
