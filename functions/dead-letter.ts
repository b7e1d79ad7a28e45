/**
 * SQS event source on the dead-letter queue: a job whose message could not be handed to AWS Batch
 * `maxAttempts` times is marked FAILED (MAX_ATTEMPTS) by the job lifecycle (its metric and its sweep
 * follow from the lifecycle's subscribers). A job that Batch already runs is left to Batch.
 */
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { AwsContext } from '../aws/services.ts';
import { handleDeadLetter } from '../core/jobs/dead-letter.ts';
import { log } from '../core/platform/log.ts';
import { lambdaWith } from './lambda.ts';

const notDispatched = (times: number) =>
  `The job could not be handed to AWS Batch in ${times} tr${times > 1 ? 'ies' : 'y'} (see the dispatcher's log); it was moved to the dead-letter queue.`;

export const create =
  ({ services, config }: Pick<AwsContext, 'services' | 'config'>) =>
  async (event: SQSEvent): Promise<SQSBatchResponse> => {
    const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
    for (const record of event.Records) {
      try {
        const outcome = await handleDeadLetter(
          services.lifecycle,
          record.body,
          config.maxAttempts,
          notDispatched,
        );
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

export const handler = lambdaWith(create);
