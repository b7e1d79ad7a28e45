/**
 * `JobQueue` on SQS. Dead-lettering is the queue's RedrivePolicy (set by infra), not this adapter's.
 */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type ReceiveMessageCommandOutput,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { JobQueue, QueueDepth, QueueMessage, ReceiveOptions } from '../core/platform/ports.ts';

export interface SqsJobQueueOptions {
  readonly client: SQSClient;
  readonly queueUrl: string;
}

/** SQS's longest long poll. */
const MAX_WAIT_SECONDS = 20;

const errorName = (error: unknown): string | undefined => {
  if (typeof error !== 'object' || error === null) return undefined;
  const shape = error as { name?: unknown; Code?: unknown };
  if (typeof shape.name === 'string') return shape.name;
  return typeof shape.Code === 'string' ? shape.Code : undefined;
};

export class SqsJobQueue implements JobQueue {
  readonly #client: SQSClient;
  readonly #queueUrl: string;

  constructor(options: SqsJobQueueOptions) {
    this.#client = options.client;
    this.#queueUrl = options.queueUrl;
  }

  async send(body: string, options: { delaySeconds?: number } = {}): Promise<{ messageId: string }> {
    const result = await this.#client.send(
      new SendMessageCommand({
        QueueUrl: this.#queueUrl,
        MessageBody: body,
        ...(options.delaySeconds === undefined ? {} : { DelaySeconds: Math.ceil(options.delaySeconds) }),
      }),
    );
    if (result.MessageId === undefined) throw new Error('SQS returned no MessageId');
    return { messageId: result.MessageId };
  }

  async receive(options: ReceiveOptions): Promise<QueueMessage[]> {
    const signal = options.signal;
    if (signal?.aborted) return [];
    const command = new ReceiveMessageCommand({
      QueueUrl: this.#queueUrl,
      WaitTimeSeconds: Math.min(MAX_WAIT_SECONDS, Math.max(0, Math.ceil(options.waitSeconds))),
      MaxNumberOfMessages: options.maxMessages ?? 1,
      ...(options.visibilityTimeoutSeconds === undefined
        ? {}
        : { VisibilityTimeout: Math.ceil(options.visibilityTimeoutSeconds) }),
      MessageSystemAttributeNames: ['ApproximateReceiveCount'],
    });
    let result: ReceiveMessageCommandOutput;
    try {
      result = await this.#client.send(command, signal ? { abortSignal: signal } : {});
    } catch (error) {
      if (signal?.aborted) return [];
      throw error;
    }
    return (result.Messages ?? []).map((message) => {
      if (message.MessageId === undefined || message.ReceiptHandle === undefined) {
        throw new Error('SQS returned a message without MessageId or ReceiptHandle');
      }
      return {
        messageId: message.MessageId,
        body: message.Body ?? '',
        receiptHandle: message.ReceiptHandle,
        receiveCount: Number(message.Attributes?.ApproximateReceiveCount ?? 1),
      };
    });
  }

  async extendVisibility(receiptHandle: string, seconds: number): Promise<void> {
    await this.#client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.#queueUrl,
        ReceiptHandle: receiptHandle,
        VisibilityTimeout: Math.ceil(seconds),
      }),
    );
  }

  async release(receiptHandle: string): Promise<void> {
    try {
      await this.#client.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: this.#queueUrl,
          ReceiptHandle: receiptHandle,
          VisibilityTimeout: 0,
        }),
      );
    } catch (error) {
      // Its visibility timeout already ran out: it is visible again, which is what release wants.
      if (errorName(error)?.endsWith('MessageNotInflight')) return;
      throw error;
    }
  }

  async delete(receiptHandle: string): Promise<void> {
    await this.#client.send(
      new DeleteMessageCommand({ QueueUrl: this.#queueUrl, ReceiptHandle: receiptHandle }),
    );
  }

  async depth(): Promise<QueueDepth> {
    const result = await this.#client.send(
      new GetQueueAttributesCommand({
        QueueUrl: this.#queueUrl,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    return {
      visible: Number(result.Attributes?.ApproximateNumberOfMessages ?? 0),
      inFlight: Number(result.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
    };
  }
}
