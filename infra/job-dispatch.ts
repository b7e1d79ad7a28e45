import { Duration, Validations } from 'aws-cdk-lib';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { BATCH_JOB_QUEUE_BLOCKED, BATCH_JOB_STATE_CHANGE } from '../aws/batch-events.ts';
import { FUNCTION_GRANTS } from '../core/api/grants.ts';
import type { ArtifactBucket } from './artifact-bucket.ts';
import { DescentFunction } from './descent-function.ts';
import { DISPATCH_TIMEOUT, type JobQueue } from './job-queue.ts';
import { QUEUE_RETENTION } from './secure-defaults.ts';
import type { TrainingCompute } from './training-compute.ts';

export interface JobDispatchProps {
  readonly artifacts: ArtifactBucket;
  /** The SQS intake whose messages become Batch jobs. */
  readonly jobQueue: JobQueue;
  /** The Batch job queue and job definition. */
  readonly training: TrainingCompute;
  /**
   * The settings every process reads (`infra/runtime-environment.ts`).
   * @default - none
   */
  readonly runtimeEnvironment?: Readonly<Record<string, string>>;
  /** @default - the DescentFunction default */
  readonly logRetention?: RetentionDays;
  /**
   * Most dispatcher invocations at once (SQS event source maximum concurrency, 2 to 1000).
   * @default 5
   */
  readonly maxConcurrency?: number;
}

/**
 * From the SQS intake to AWS Batch and back: the dispatcher (an SQS event source on the jobs queue)
 * submits one Batch job per job, and an EventBridge rule sends Batch's job-state and queue-blocked
 * events of descent's job queue to a function that records what the trainer could not (and counts
 * queue states for the dashboard). Events that this function keeps failing on land in a dead-letter
 * queue that the dead-letter alarm watches. A capacity watch, every 5 minutes, gauges the queue and
 * ends jobs that wait while nothing trains (`aws/watch-training.ts`).
 */
export class JobDispatch extends Construct {
  /** SQS → Batch. */
  public readonly dispatcher: DescentFunction;
  /** Batch job-state events → job records. */
  public readonly batchEventsHandler: DescentFunction;
  /** The rule that sends Batch's events of descent's job queue to `batchEventsHandler`. */
  public readonly batchEventsRule: Rule;
  /** Events `batchEventsHandler` could not handle after EventBridge's retries. */
  public readonly batchEventsDeadLetterQueue: Queue;
  /** Every 5 minutes: Batch's queue states as gauges, and jobs waiting with nothing training ended. */
  public readonly capacityWatch: DescentFunction;
  /** The schedule of `capacityWatch`. */
  public readonly capacityWatchSchedule: Rule;

  constructor(scope: Construct, id: string, props: JobDispatchProps) {
    super(scope, id);
    const { training } = props;
    const targets = {
      artifacts: props.artifacts,
      jobQueue: props.jobQueue,
      training: {
        jobQueueArn: training.jobQueue.jobQueueArn,
        jobDefinitionArn: training.jobDefinition.jobDefinitionArn,
      },
    };
    this.dispatcher = new DescentFunction(this, 'Dispatcher', {
      handlerFile: 'dispatch-jobs',
      description: 'Submits each queued job to AWS Batch (once: its Batch job id is recorded in the job)',
      timeout: DISPATCH_TIMEOUT,
      logRetention: props.logRetention,
      environment: props.runtimeEnvironment,
    });
    this.dispatcher.grantAccess(FUNCTION_GRANTS['dispatch-jobs'], targets);
    this.dispatcher.addEventSource(
      new SqsEventSource(props.jobQueue.queue, {
        batchSize: 10,
        reportBatchItemFailures: true,
        maxConcurrency: props.maxConcurrency ?? 5,
      }),
    );

    this.batchEventsHandler = new DescentFunction(this, 'BatchEvents', {
      handlerFile: 'batch-events',
      description:
        "Records what AWS Batch says of a job's run that its trainer could not (never started, out of memory, host lost)",
      timeout: Duration.seconds(60),
      logRetention: props.logRetention,
      environment: props.runtimeEnvironment,
    });
    this.batchEventsHandler.grantAccess(FUNCTION_GRANTS['batch-events'], targets);
    this.batchEventsDeadLetterQueue = new Queue(this, 'BatchEventsDeadLetterQueue', {
      // EventBridge delivers to an SQS-managed-key queue without a key policy of ours.
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: QUEUE_RETENTION,
    });
    this.capacityWatch = new DescentFunction(this, 'CapacityWatch', {
      handlerFile: 'watch-training',
      description:
        "Counts AWS Batch's waiting, starting and running jobs; ends jobs waiting while nothing trains",
      timeout: Duration.seconds(60),
      logRetention: props.logRetention,
      environment: props.runtimeEnvironment,
    });
    this.capacityWatch.grantAccess(FUNCTION_GRANTS['watch-training'], targets);
    this.capacityWatchSchedule = new Rule(this, 'CapacityWatchSchedule', {
      description: 'The descent capacity watch',
      schedule: Schedule.rate(Duration.minutes(5)),
      targets: [new LambdaFunction(this.capacityWatch, { retryAttempts: 0 })],
    });

    Validations.of(this.batchEventsDeadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        "It is a dead-letter queue itself: EventBridge's, for the Batch events rule's target (cdk-nag sees only SQS redrive policies).",
    });
    this.batchEventsRule = new Rule(this, 'BatchJobEvents', {
      description: "AWS Batch job-state and queue-blocked events of descent's job queue",
      eventPattern: {
        source: ['aws.batch'],
        detailType: [BATCH_JOB_STATE_CHANGE, BATCH_JOB_QUEUE_BLOCKED],
        detail: { jobQueue: [training.jobQueue.jobQueueArn] },
      },
      targets: [
        new LambdaFunction(this.batchEventsHandler, {
          retryAttempts: 185,
          maxEventAge: Duration.hours(24),
          deadLetterQueue: this.batchEventsDeadLetterQueue,
        }),
      ],
    });
  }
}
