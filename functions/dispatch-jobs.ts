/**
 * SQS event source on the jobs queue: each job message becomes one AWS Batch job (`aws/dispatch.ts`).
 * A message that fails (Batch throttling, a bad setting) is retried by SQS and, after `maxAttempts`
 * receives, dead-lettered; partial batch responses keep one failure from redelivering the others.
 */
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { dispatchJob } from '../aws/dispatch.ts';
import type { AwsContext } from '../aws/services.ts';
import { type JobMessage, jobMessage } from '../core/jobs/job-record.ts';
import { log } from '../core/platform/log.ts';
import { lambdaWith } from './lambda.ts';

export const create = ({ services, batch }: Pick<AwsContext, 'services' | 'batch'>) => {
  if (!batch)
    throw new Error('The dispatcher needs DESCENT_BATCH_JOB_QUEUE (its grant to submit to AWS Batch).');
  return async (event: SQSEvent): Promise<SQSBatchResponse> => {
    const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
    for (const record of event.Records) {
      let message: JobMessage;
      try {
        message = jobMessage.parse(JSON.parse(record.body));
      } catch {
        log.error('dropping a malformed job message', {
          messageId: record.messageId,
          body: record.body.slice(0, 200),
        });
        continue;
      }
      try {
        const receiveCount = Number(record.attributes?.ApproximateReceiveCount ?? 1);
        const result = await dispatchJob(
          { lifecycle: services.lifecycle, batch, log },
          message,
          receiveCount,
        );
        log.info('job dispatched', { ...message, result, receiveCount });
      } catch (error) {
        log.error('dispatching a job failed; SQS redelivers it', {
          ...message,
          messageId: record.messageId,
          error: String((error as Error)?.stack ?? error),
        });
        batchItemFailures.push({ itemIdentifier: record.messageId });
      }
    }
    return { batchItemFailures };
  };
};

export const handler = lambdaWith(create);
