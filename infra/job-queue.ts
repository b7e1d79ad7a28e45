import { Duration } from 'aws-cdk-lib';
import { type IKey, Key } from 'aws-cdk-lib/aws-kms';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, type QueueProps } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { FUNCTION_GRANTS } from '../core/api/grants.ts';
import type { ArtifactBucket } from './artifact-bucket.ts';
import { DescentFunction } from './descent-function.ts';
import { encryptionKeyDefaults, queueDefaults, withDefaults } from './secure-defaults.ts';

/** The dead-letter handler only reads and rewrites a few job records per message. */
const DEAD_LETTER_HANDLER_TIMEOUT = Duration.seconds(30);

/** The dispatcher reads a record, submits to AWS Batch and records the Batch job id per message. */
export const DISPATCH_TIMEOUT = Duration.seconds(30);

export interface JobQueueProps {
  /** The bucket whose job records the dead-letter handler marks FAILED. */
  readonly artifacts: ArtifactBucket;
  /**
   * How many times the dispatcher may receive a job's message (each a try to hand it to AWS Batch)
   * before it moves to the dead-letter queue and its job is marked FAILED.
   * @default 3
   */
  readonly maxReceiveCount?: number;
  /**
   * The settings every process reads (`infra/runtime-environment.ts`), for the dead-letter handler.
   * @default - none
   */
  readonly runtimeEnvironment?: Readonly<Record<string, string>>;
  /**
   * How long the dead-letter handler's logs are kept.
   * @default RetentionDays.ONE_MONTH
   */
  readonly logRetention?: RetentionDays;
  /**
   * The KMS key that encrypts both queues.
   * @default - a new customer-managed key with yearly rotation
   */
  readonly encryptionKey?: IKey;
  /**
   * Overrides of the jobs queue's secure defaults (`queueDefaults` in `secure-defaults.ts`).
   * @default - none
   */
  readonly queueProps?: QueueProps;
}

/**
 * The SQS jobs queue (the durable intake that the dispatcher hands to AWS Batch), its dead-letter
 * queue, and the Lambda function that marks a dead-lettered job FAILED (`functions/dead-letter.ts`).
 * Both queues are KMS-encrypted and TLS only.
 */
export class JobQueue extends Construct {
  /** The queue that trainers receive jobs from. */
  public readonly queue: Queue;
  /** Where a job's message goes after `maxReceiveCount` receives. */
  public readonly deadLetterQueue: Queue;
  /** The key that encrypts both queues. */
  public readonly encryptionKey: IKey;
  /** Receives before a message is dead-lettered. */
  public readonly maxReceiveCount: number;
  /** How long a received message stays invisible: six times the dispatcher's timeout (Lambda's advice). */
  public readonly visibilityTimeout: Duration;
  /** Consumes the dead-letter queue and marks each job FAILED with the reason. */
  public readonly deadLetterHandler: DescentFunction;

  constructor(scope: Construct, id: string, props: JobQueueProps) {
    super(scope, id);
    this.maxReceiveCount = props.maxReceiveCount ?? 3;
    if (!Number.isInteger(this.maxReceiveCount) || this.maxReceiveCount < 1 || this.maxReceiveCount > 1000) {
      throw new Error(`maxReceiveCount must be an integer from 1 to 1000, got ${this.maxReceiveCount}.`);
    }
    this.visibilityTimeout = Duration.seconds(6 * DISPATCH_TIMEOUT.toSeconds());
    this.encryptionKey =
      props.encryptionKey ?? new Key(this, 'Key', encryptionKeyDefaults('Encrypts the descent job queues'));

    this.deadLetterQueue = new Queue(
      this,
      'DeadLetterQueue',
      withDefaults(queueDefaults(this.encryptionKey), {
        // Lambda's advice for an SQS event source: at least six times the function's timeout.
        visibilityTimeout: Duration.seconds(6 * DEAD_LETTER_HANDLER_TIMEOUT.toSeconds()),
      }),
    );
    this.queue = new Queue(
      this,
      'Queue',
      withDefaults<QueueProps>(
        {
          ...queueDefaults(this.encryptionKey),
          visibilityTimeout: this.visibilityTimeout,
          deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: this.maxReceiveCount },
        },
        props.queueProps,
      ),
    );

    this.deadLetterHandler = new DescentFunction(this, 'DeadLetterHandler', {
      handlerFile: 'dead-letter',
      description: 'Marks the job of each dead-lettered message FAILED',
      timeout: DEAD_LETTER_HANDLER_TIMEOUT,
      logRetention: props.logRetention,
      environment: props.runtimeEnvironment,
    });
    // A dead-lettered sweep trial frees a slot: the handler queues the sweep's next trial.
    this.deadLetterHandler.grantAccess(FUNCTION_GRANTS['dead-letter'], {
      artifacts: props.artifacts,
      jobQueue: this,
    });
    // Partial batch responses: one job that cannot be marked now does not redeliver the others.
    this.deadLetterHandler.addEventSource(
      new SqsEventSource(this.deadLetterQueue, { batchSize: 10, reportBatchItemFailures: true }),
    );
  }
}
