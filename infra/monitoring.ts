import { Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  Alarm,
  AlarmRule,
  AlarmStatusWidget,
  ComparisonOperator,
  CompositeAlarm,
  Dashboard,
  GraphWidget,
  type IAlarm,
  MathExpression,
  Metric,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { METRIC_NAMESPACE, METRICS, type MetricName } from '../core/platform/emf.ts';
import type { DescentFunction } from './descent-function.ts';
import type { JobDispatch } from './job-dispatch.ts';
import type { JobQueue } from './job-queue.ts';
import type { JobsApi } from './jobs-api.ts';
import { encryptionKeyDefaults, topicDefaults } from './secure-defaults.ts';

/** Where an alarm's description sends the person it wakes up. */
const RUNBOOK = 'See "Ops runbook" in docs/deploy.md.';

export interface MonitoringProps {
  /** The jobs queue and its dead-letter queue: intake and dead-lettered jobs. */
  readonly jobQueue: JobQueue;
  /** The dispatcher and Batch events: the events' dead-letter queue. */
  readonly dispatch: JobDispatch;
  /** The API: requests, 4xx/5xx, latency. */
  readonly jobsApi: JobsApi;
  /** Every descent Lambda function: errors and throttles, each with its own alarm. */
  readonly functions: readonly DescentFunction[];
  /**
   * An address subscribed to the alarm topic (it must confirm the subscription by email).
   * @default - none: subscribe to the topic yourself
   */
  readonly alarmEmail?: string;
  /**
   * Alarm when more than this percentage of the jobs that ended in an hour failed (3 jobs at least).
   * @default 25
   */
  readonly failureRatePercent?: number;
  /**
   * Alarm when the API answers this many 5xx responses in 5 minutes.
   * @default 5
   */
  readonly api5xxThreshold?: number;
}

/**
 * What an ops team watches: one CloudWatch dashboard built around AWS Batch's queue states, job
 * outcomes, training time and GPU utilisation (plus the intake, the API and every function), and six
 * alarms that notify an SNS topic (KMS encrypted, TLS only, with a policy that lets CloudWatch publish):
 * jobs waiting for GPU capacity that cannot be had, too many failed jobs, dead-lettered jobs or
 * events, API 5xx, any Lambda function's errors, a trainer without a GPU.
 */
export class Monitoring extends Construct {
  /** Receives every alarm's ALARM and OK notifications. */
  public readonly alarmTopic: Topic;
  public readonly dashboard: Dashboard;
  /** AWS Batch cannot get a GPU for a job (its queue is blocked), or a job failed NO_GPU_CAPACITY. */
  public readonly noCapacityAlarm: Alarm;
  /** Too many of the jobs that ended in an hour failed. */
  public readonly failureRateAlarm: Alarm;
  /** A job was dead-lettered, or a dead-letter queue holds messages (intake or Batch events). */
  public readonly deadLetterAlarm: Alarm;
  /** The API answers 5xx. */
  public readonly api5xxAlarm: Alarm;
  /** Any descent Lambda function failed (a composite of one alarm per function). */
  public readonly lambdaErrorsAlarm: CompositeAlarm;
  /** One alarm per function (no action of its own: the composite notifies), by handler file. */
  public readonly functionErrorAlarms: ReadonlyMap<string, Alarm>;
  /** A trainer that must train on a GPU found none. */
  public readonly trainerWithoutGpuAlarm: Alarm;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    this.alarmTopic = this.newTopic(props.alarmEmail);
    const fiveMinutes = Duration.minutes(5);
    const descent = (name: MetricName, statistic = 'Sum', period = fiveMinutes) =>
      new Metric({
        namespace: METRIC_NAMESPACE,
        metricName: METRICS[name].name,
        statistic,
        period,
        label: name,
      });
    const atLeastOnce = {
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    };
    const common = { evaluationPeriods: 1, treatMissingData: TreatMissingData.NOT_BREACHING };

    this.noCapacityAlarm = new Alarm(this, 'NoGpuCapacity', {
      alarmDescription: `AWS Batch cannot get a GPU instance for a job (its queue is blocked: no EC2 capacity, the account's G/VT vCPU quota, or a misconfiguration), or a job failed NO_GPU_CAPACITY after waiting. ${RUNBOOK}`,
      metric: new MathExpression({
        expression: 'FILL(blocked, 0) + FILL(failed, 0)',
        usingMetrics: { blocked: descent('jobQueueBlocked'), failed: descent('jobsWithoutCapacity') },
        period: fiveMinutes,
        label: 'Jobs without GPU capacity',
      }),
      ...atLeastOnce,
      ...common,
    });

    const hour = Duration.hours(1);
    const failureRatePercent = props.failureRatePercent ?? 25;
    this.failureRateAlarm = new Alarm(this, 'JobFailureRate', {
      alarmDescription: `More than ${failureRatePercent}% of the jobs that ended in the last hour failed (at least 3 jobs). ${RUNBOOK}`,
      metric: new MathExpression({
        expression:
          'IF((FILL(s, 0) + FILL(f, 0) + FILL(d, 0)) >= 3, 100 * (FILL(f, 0) + FILL(d, 0)) / (FILL(s, 0) + FILL(f, 0) + FILL(d, 0)), 0)',
        usingMetrics: {
          s: descent('jobsSucceeded', 'Sum', hour),
          f: descent('jobsFailed', 'Sum', hour),
          d: descent('jobsDeadLettered', 'Sum', hour),
        },
        period: hour,
        label: 'Failed jobs (%)',
      }),
      threshold: failureRatePercent,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      ...common,
    });

    const dlq = props.jobQueue.deadLetterQueue;
    const eventsDlq = props.dispatch.batchEventsDeadLetterQueue;
    const max5 = { statistic: 'Maximum', period: fiveMinutes };
    this.deadLetterAlarm = new Alarm(this, 'DeadLetteredJobs', {
      alarmDescription: `A job ran out of attempts (MAX_ATTEMPTS), a job could not be handed to AWS Batch, or AWS Batch's job events could not be recorded (they wait in a dead-letter queue). ${RUNBOOK}`,
      metric: new MathExpression({
        expression: 'FILL(waiting, 0) + FILL(inFlight, 0) + FILL(deadLettered, 0) + FILL(events, 0)',
        usingMetrics: {
          waiting: dlq.metricApproximateNumberOfMessagesVisible(max5),
          inFlight: dlq.metricApproximateNumberOfMessagesNotVisible(max5),
          deadLettered: descent('jobsDeadLettered'),
          events: eventsDlq.metricApproximateNumberOfMessagesVisible(max5),
        },
        period: fiveMinutes,
        label: 'Dead-lettered jobs and events',
      }),
      ...atLeastOnce,
      ...common,
    });

    const api5xxThreshold = props.api5xxThreshold ?? 5;
    this.api5xxAlarm = new Alarm(this, 'Api5xx', {
      alarmDescription: `The API answered ${api5xxThreshold} or more 5xx responses in 5 minutes. ${RUNBOOK}`,
      metric: props.jobsApi.api.metricServerError({ statistic: 'Sum', period: fiveMinutes }),
      threshold: api5xxThreshold,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      ...common,
    });

    const perFunction = new Map<string, Alarm>();
    for (const fn of props.functions) {
      perFunction.set(
        fn.handlerFile,
        new Alarm(this, `Errors-${fn.handlerFile}`, {
          alarmDescription: `descent function ${fn.handlerFile} failed (part of LambdaErrors). ${RUNBOOK}`,
          metric: fn.metricErrors({ statistic: 'Sum', period: fiveMinutes }),
          ...atLeastOnce,
          ...common,
        }),
      );
    }
    this.functionErrorAlarms = perFunction;
    this.lambdaErrorsAlarm = new CompositeAlarm(this, 'LambdaErrors', {
      alarmDescription: `A descent Lambda function failed in the last 5 minutes (the Errors-<function> alarm in ALARM names it; its log group has the stack). ${RUNBOOK}`,
      alarmRule: AlarmRule.anyOf(...perFunction.values()),
    });

    this.trainerWithoutGpuAlarm = new Alarm(this, 'TrainerWithoutGpu', {
      alarmDescription: `A trainer found no GPU in the last 5 minutes and refused to train on the CPU (TensorFlow sees no GPU: driver, image or CUDA libraries); its job failed TRAINER_UNAVAILABLE. ${RUNBOOK}`,
      metric: descent('gpuUnavailable'),
      ...atLeastOnce,
      ...common,
    });

    const notify = new SnsAction(this.alarmTopic);
    for (const alarm of this.alarms) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
    this.dashboard = this.newDashboard(props, descent);
  }

  /** The alarms that notify the topic (the per-function ones feed `lambdaErrorsAlarm`). */
  get alarms(): readonly (Alarm | CompositeAlarm)[] {
    return [
      this.noCapacityAlarm,
      this.failureRateAlarm,
      this.deadLetterAlarm,
      this.api5xxAlarm,
      this.lambdaErrorsAlarm,
      this.trainerWithoutGpuAlarm,
    ];
  }

  /**
   * The alarm topic: KMS-encrypted (a key that CloudWatch may use) and TLS only. `enforceSSL` gives the
   * topic a policy that holds only a Deny; without the Allow below, CloudWatch could not publish.
   */
  private newTopic(alarmEmail: string | undefined): Topic {
    const account = Stack.of(this).account;
    const key = new Key(this, 'AlarmTopicKey', {
      ...encryptionKeyDefaults('Encrypts the descent alarm topic'),
      // Notifications are not kept: nothing needs this key once the topic is gone.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    key.addToResourcePolicy(
      new PolicyStatement({
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': account } },
      }),
    );
    const topic = new Topic(this, 'AlarmTopic', { ...topicDefaults(key), displayName: 'descent alarms' });
    topic.addToResourcePolicy(
      new PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: {
          StringEquals: { 'aws:SourceAccount': account },
          ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:cloudwatch:${Aws.REGION}:${account}:alarm:*` },
        },
      }),
    );
    if (alarmEmail) topic.addSubscription(new EmailSubscription(alarmEmail));
    return topic;
  }

  private newDashboard(
    props: MonitoringProps,
    descent: (name: MetricName, statistic?: string, period?: Duration) => Metric,
  ): Dashboard {
    const minute = Duration.minutes(1);
    const perMinute = (name: MetricName, label: string) => descent(name, 'Sum', minute).with({ label });
    const dashboard = new Dashboard(this, 'Dashboard', {
      // Dashboard names are unique per account, across regions.
      dashboardName: `${Stack.of(this).stackName}-${Aws.REGION}`,
      defaultInterval: Duration.hours(6),
    });
    const alarms: IAlarm[] = [...this.alarms, ...this.functionErrorAlarms.values()];
    dashboard.addWidgets(new AlarmStatusWidget({ title: 'Alarms', alarms, width: 24, height: 4 }));
    const queue = props.jobQueue.queue;
    dashboard.addWidgets(
      new GraphWidget({
        title: 'AWS Batch queue states (jobs entering each, per minute)',
        width: 8,
        left: [
          perMinute('batchJobsRunnable', 'RUNNABLE (waiting for a GPU)'),
          perMinute('batchJobsStarting', 'STARTING (image pull)'),
          perMinute('batchJobsRunning', 'RUNNING'),
          perMinute('batchJobsSucceeded', 'SUCCEEDED'),
          perMinute('batchJobsFailed', 'FAILED'),
        ],
      }),
      new GraphWidget({
        title: 'AWS Batch jobs now (every 5 minutes)',
        width: 8,
        left: [
          descent('batchJobsWaitingNow', 'Maximum').with({ label: 'waiting (RUNNABLE)' }),
          descent('batchJobsStartingNow', 'Maximum').with({ label: 'starting' }),
          descent('batchJobsRunningNow', 'Maximum').with({ label: 'training' }),
        ],
        right: [descent('oldestWaitSeconds', 'Maximum').with({ label: 'longest wait (s)' })],
      }),
      new GraphWidget({
        title: 'GPU capacity and intake',
        width: 8,
        left: [
          perMinute('jobQueueBlocked', 'queue blocked (no capacity)'),
          perMinute('jobsWithoutCapacity', 'jobs failed: no GPU capacity'),
        ],
        right: [
          queue.metricApproximateNumberOfMessagesVisible({
            statistic: 'Maximum',
            period: minute,
            label: 'intake: waiting for dispatch',
          }),
          props.jobQueue.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
            statistic: 'Maximum',
            period: minute,
            label: 'intake: dead-lettered',
          }),
        ],
      }),
    );
    dashboard.addWidgets(
      new GraphWidget({
        title: 'Job outcomes per minute',
        width: 8,
        left: [
          perMinute('jobsSubmitted', 'submitted'),
          perMinute('jobsSucceeded', 'succeeded'),
          perMinute('jobsFailed', 'failed'),
          perMinute('jobsDeadLettered', 'out of attempts'),
        ],
      }),
      new GraphWidget({
        title: 'Training time of succeeded jobs (seconds)',
        width: 8,
        left: [
          descent('trainingSeconds', 'Average').with({ label: 'average' }),
          descent('trainingSeconds', 'p90').with({ label: 'p90' }),
          descent('trainingSeconds', 'Maximum').with({ label: 'max' }),
        ],
      }),
      new GraphWidget({
        title: 'GPU utilisation (%) and trainers',
        width: 8,
        left: [
          descent('gpuUtilization', 'Average', minute).with({ label: 'GPU utilisation (average)' }),
          descent('gpuUtilization', 'Maximum', minute).with({ label: 'GPU utilisation (max)' }),
        ],
        right: [
          perMinute('trainerStarted', 'trainers started'),
          perMinute('gpuUnavailable', 'trainers without a GPU'),
        ],
      }),
    );
    const api = props.jobsApi.api;
    dashboard.addWidgets(
      new GraphWidget({
        title: 'API responses',
        width: 12,
        left: [
          api.metricCount({ statistic: 'Sum', period: minute, label: 'requests' }),
          api.metricClientError({ statistic: 'Sum', period: minute, label: '4xx' }),
          api.metricServerError({ statistic: 'Sum', period: minute, label: '5xx' }),
        ],
      }),
      new GraphWidget({
        title: 'API latency (ms)',
        width: 12,
        left: [
          api.metricLatency({ statistic: 'p50', period: minute, label: 'p50' }),
          api.metricLatency({ statistic: 'p90', period: minute, label: 'p90' }),
          api.metricLatency({ statistic: 'p99', period: minute, label: 'p99' }),
        ],
      }),
    );
    const each = (metric: (fn: DescentFunction) => Metric) =>
      props.functions.map((fn) => metric(fn).with({ label: fn.handlerFile }));
    dashboard.addWidgets(
      new GraphWidget({
        title: 'Lambda errors',
        width: 12,
        left: each((fn) => fn.metricErrors({ statistic: 'Sum', period: minute })),
      }),
      new GraphWidget({
        title: 'Lambda throttles',
        width: 12,
        left: each((fn) => fn.metricThrottles({ statistic: 'Sum', period: minute })),
      }),
    );
    return dashboard;
  }
}
