import { Duration } from 'aws-cdk-lib';
import type { ContainerDefinition } from 'aws-cdk-lib/aws-ecs';
import { type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { type IKey, Key } from 'aws-cdk-lib/aws-kms';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, type QueueProps } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ENV } from '../core/platform/config.ts';
import type { ArtifactBucket } from './artifact-bucket.ts';
import { DescentFunction } from './descent-function.ts';
import { encryptionKeyDefaults, queueDefaults, withDefaults } from './secure-defaults.ts';

/** The dead-letter handler only reads and rewrites a few job records per message. */
const DEAD_LETTER_HANDLER_TIMEOUT = Duration.seconds(30);

export interface JobQueueProps {
  /** The bucket whose job records the dead-letter handler marks FAILED. */
  readonly artifacts: ArtifactBucket;
  /**
   * How many times a job's message may be received (one training attempt each) before it moves to the
   * dead-letter queue and its job is marked FAILED. Also given to the functions as `DESCENT_MAX_ATTEMPTS`.
   * @default 3
   */
  readonly maxReceiveCount?: number;
  /**
   * How long a received message stays hidden from other workers. A trainer extends it (heartbeat)
   * while it trains, so this only bounds how soon a crashed attempt is retried.
   * @default Duration.minutes(5)
   */
  readonly visibilityTimeout?: Duration;
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
 * The SQS jobs queue, its dead-letter queue, and the Lambda function that marks a dead-lettered job
 * FAILED (`functions/dead-letter.ts`). Both queues are KMS-encrypted and TLS only.
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
  /** How long a received job stays invisible; trainers heartbeat every third of it. */
  public readonly visibilityTimeout: Duration;
  /** Consumes the dead-letter queue and marks each job FAILED with the reason. */
  public readonly deadLetterHandler: DescentFunction;

  constructor(scope: Construct, id: string, props: JobQueueProps) {
    super(scope, id);
    this.maxReceiveCount = props.maxReceiveCount ?? 3;
    if (!Number.isInteger(this.maxReceiveCount) || this.maxReceiveCount < 1 || this.maxReceiveCount > 1000) {
      throw new Error(`maxReceiveCount must be an integer from 1 to 1000, got ${this.maxReceiveCount}.`);
    }
    this.visibilityTimeout = props.visibilityTimeout ?? Duration.minutes(5);
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
    });
    props.artifacts.grantReadWriteTo(this.deadLetterHandler);
    // A dead-lettered sweep trial frees a slot: the handler queues the sweep's next trial.
    this.grantSendTo(this.deadLetterHandler);
    // Partial batch responses: one job that cannot be marked now does not redeliver the others.
    this.deadLetterHandler.addEventSource(
      new SqsEventSource(this.deadLetterQueue, { batchSize: 10, reportBatchItemFailures: true }),
    );
  }

  /**
   * Lets `fn` send job messages (and read the queue's depth), with the KMS permissions that needs,
   * and sets `DESCENT_QUEUE_URL`, `DESCENT_DLQ_URL` and `DESCENT_MAX_ATTEMPTS` on it.
   */
  grantSendTo(fn: LambdaFunction): void {
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes'],
        resources: [this.queue.queueArn],
      }),
    );
    // SQS asks KMS for a data key (GenerateDataKey) and checks it (Decrypt) on each send.
    this.encryptionKey.grant(fn, 'kms:Decrypt', 'kms:GenerateDataKey');
    this.setQueueEnvironment(fn);
  }

  /**
   * Lets a trainer task receive jobs, extend their visibility (heartbeat), release and delete them, with
   * the KMS permission that needs, and sets `DESCENT_QUEUE_URL`, `DESCENT_DLQ_URL`,
   * `DESCENT_MAX_ATTEMPTS` and `DESCENT_VISIBILITY_TIMEOUT_SECONDS` (the queue's, so the trainer's
   * heartbeat matches it) on its container. It sends only to queue a sweep's next trial.
   */
  grantConsumeTo(taskRole: IRole, container: ContainerDefinition): void {
    taskRole.addToPrincipalPolicy(
      new PolicyStatement({
        actions: [
          'sqs:ReceiveMessage',
          'sqs:ChangeMessageVisibility',
          'sqs:DeleteMessage',
          'sqs:GetQueueAttributes',
          // When a sweep's trial ends, its trainer queues the sweep's next trial.
          'sqs:SendMessage',
        ],
        resources: [this.queue.queueArn],
      }),
    );
    // Receiving decrypts the message's data key; sending asks for one.
    this.encryptionKey.grant(taskRole, 'kms:Decrypt', 'kms:GenerateDataKey');
    container.addEnvironment(ENV.queueUrl, this.queue.queueUrl);
    container.addEnvironment(ENV.deadLetterQueueUrl, this.deadLetterQueue.queueUrl);
    container.addEnvironment(ENV.maxAttempts, String(this.maxReceiveCount));
    container.addEnvironment(ENV.visibilityTimeoutSeconds, String(this.visibilityTimeout.toSeconds()));
  }

  /** The AWS adapters need the queue URL at start-up; the DLQ URL and attempt limit go along for reports. */
  private setQueueEnvironment(fn: LambdaFunction): void {
    fn.addEnvironment(ENV.queueUrl, this.queue.queueUrl);
    fn.addEnvironment(ENV.deadLetterQueueUrl, this.deadLetterQueue.queueUrl);
    fn.addEnvironment(ENV.maxAttempts, String(this.maxReceiveCount));
  }
}
