/**
 * SQS event source on the dead-letter queue: the job lifecycle marks each dead-lettered job FAILED
 * with MAX_ATTEMPTS (its metric and its sweep follow from the lifecycle's subscribers).
 */
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { handleDeadLetter } from '../core/jobs/dead-letter.ts';
import { log } from '../core/platform/log.ts';
import { loadRuntimeConfig } from '../core/platform/runtime-config.ts';
import { awsServices } from './lambda.ts';

const config = loadRuntimeConfig();

export const handler = async (event: SQSEvent): Promise<SQSBatchResponse> => {
  const { lifecycle } = await awsServices();
  const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
  for (const record of event.Records) {
    try {
      const outcome = await handleDeadLetter(lifecycle, record.body, config.maxAttempts);
      log.info('dead-lettered job handled', { messageId: record.messageId, outcome });
    } catch (error) {
      log.error('dead-letter handling failed; will retry', {
        messageId: record.messageId,
        error: String(error),
      });
      batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
};
