import { Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
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
import type { JobQueue } from './job-queue.ts';
import type { JobsApi } from './jobs-api.ts';
import { encryptionKeyDefaults, topicDefaults } from './secure-defaults.ts';
import type { TrainingCluster } from './training-cluster.ts';

/** Where an alarm's description sends the person it wakes up. */
const RUNBOOK = 'See "Ops runbook" in docs/deploy.md.';

export interface MonitoringProps {
  /** The jobs queue and its dead-letter queue and handler: backlog, age, dead-lettered jobs. */
  readonly jobQueue: JobQueue;
  /** The API and its functions: requests, 4xx/5xx, latency, errors and throttles. */
  readonly jobsApi: JobsApi;
  /** The GPU instances and trainers. */
  readonly trainingCluster: TrainingCluster;
  /**
   * An address subscribed to the alarm topic (it must confirm the subscription by email).
   * @default - none: subscribe to the topic yourself
   */
  readonly alarmEmail?: string;
  /**
   * Alarm when the oldest job has waited this long for a trainer.
   * @default Duration.hours(1)
   */
  readonly oldestJobAge?: Duration;
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
 * What an ops team watches: one CloudWatch dashboard (queue, jobs per minute from the handlers' and
 * trainers' embedded-format metrics, training time, GPU instances and trainers, API responses and
 * latency, Lambda errors and throttles, alarm states) and five alarms that notify an SNS topic (KMS
 * encrypted, TLS only): a job was dead-lettered, a job has waited too long, too many jobs fail, the
 * API answers 5xx, a trainer found no GPU.
 */
export class Monitoring extends Construct {
  /** Receives every alarm's ALARM and OK notifications. */
  public readonly alarmTopic: Topic;
  /** The dashboard. */
  public readonly dashboard: Dashboard;
  /** A job reached the dead-letter queue, or messages stay in it. */
  public readonly deadLetterAlarm: Alarm;
  /** The oldest job has waited too long for a trainer (no GPU capacity, quota, or trainers failing). */
  public readonly oldestJobAlarm: Alarm;
  /** Too many of the jobs that ended in an hour failed. */
  public readonly failureRateAlarm: Alarm;
  /** The API answers 5xx. */
  public readonly api5xxAlarm: Alarm;
  /** A trainer found no GPU: it refused to start, or started on a CPU backend. */
  public readonly trainerWithoutGpuAlarm: Alarm;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { jobQueue, jobsApi, trainingCluster } = props;

    // CloudWatch publishes to an encrypted topic only if the key lets it (the AWS-managed SNS key does not).
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
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    );
    this.alarmTopic = new Topic(this, 'AlarmTopic', { ...topicDefaults(key), displayName: 'descent alarms' });
    if (props.alarmEmail) this.alarmTopic.addSubscription(new EmailSubscription(props.alarmEmail));
    const notify = new SnsAction(this.alarmTopic);

    // --- Metrics ---
    const minute = Duration.minutes(1);
    const queue = jobQueue.queue;
    const dlq = jobQueue.deadLetterQueue;
    const jobs = (name: MetricName, statistic = 'Sum', period = minute) =>
      new Metric({
        namespace: METRIC_NAMESPACE,
        metricName: METRICS[name].name,
        statistic,
        period,
        label: name,
      });

    // --- Alarms ---
    const fiveMinutes = Duration.minutes(5);
    this.deadLetterAlarm = new Alarm(this, 'DeadLetteredJobs', {
      alarmDescription: `A job reached the dead-letter queue (its trainer crashed or was stopped on every attempt), or messages stay there. ${RUNBOOK}`,
      metric: new MathExpression({
        expression: 'FILL(waiting, 0) + FILL(inFlight, 0) + FILL(deadLettered, 0)',
        usingMetrics: {
          waiting: dlq.metricApproximateNumberOfMessagesVisible({
            statistic: 'Maximum',
            period: fiveMinutes,
          }),
          inFlight: dlq.metricApproximateNumberOfMessagesNotVisible({
            statistic: 'Maximum',
            period: fiveMinutes,
          }),
          deadLettered: jobs('jobsDeadLettered', 'Sum', fiveMinutes),
        },
        period: fiveMinutes,
        label: 'Dead-lettered jobs and messages',
      }),
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });

    const oldestJobAge = props.oldestJobAge ?? Duration.hours(1);
    this.oldestJobAlarm = new Alarm(this, 'OldestJobTooOld', {
      alarmDescription: `A job has waited more than ${oldestJobAge.toHumanString()} for a trainer: no GPU instance could start (EC2 quota for G instances, capacity), or trainers keep failing. ${RUNBOOK}`,
      metric: queue.metricApproximateAgeOfOldestMessage({ statistic: 'Maximum', period: fiveMinutes }),
      threshold: oldestJobAge.toSeconds(),
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });

    const hour = Duration.hours(1);
    const failureRatePercent = props.failureRatePercent ?? 25;
    this.failureRateAlarm = new Alarm(this, 'JobFailureRate', {
      alarmDescription: `More than ${failureRatePercent}% of the jobs that ended in the last hour failed (at least 3 jobs). ${RUNBOOK}`,
      metric: new MathExpression({
        expression:
          'IF((FILL(s, 0) + FILL(f, 0) + FILL(d, 0)) >= 3, 100 * (FILL(f, 0) + FILL(d, 0)) / (FILL(s, 0) + FILL(f, 0) + FILL(d, 0)), 0)',
        usingMetrics: {
          s: jobs('jobsSucceeded', 'Sum', hour),
          f: jobs('jobsFailed', 'Sum', hour),
          d: jobs('jobsDeadLettered', 'Sum', hour),
        },
        period: hour,
        label: 'Failed jobs (%)',
      }),
      threshold: failureRatePercent,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });

    const api5xxThreshold = props.api5xxThreshold ?? 5;
    this.api5xxAlarm = new Alarm(this, 'Api5xx', {
      alarmDescription: `The API answered ${api5xxThreshold} or more 5xx responses in 5 minutes. ${RUNBOOK}`,
      metric: jobsApi.api.metricServerError({ statistic: 'Sum', period: fiveMinutes }),
      threshold: api5xxThreshold,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });

    this.trainerWithoutGpuAlarm = new Alarm(this, 'TrainerWithoutGpu', {
      alarmDescription: `A trainer found no GPU in the last 5 minutes: it refused to start (DESCENT_BACKEND=tensorflow-gpu and TensorFlow sees none: driver, container toolkit or CUDA libraries) or started on a CPU backend. Its log's "backend unavailable" or "training without a GPU" line says why. ${RUNBOOK}`,
      metric: jobs('gpuUnavailable', 'Sum', fiveMinutes),
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });

    const alarms = [...this.alarms];
    for (const alarm of alarms) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }

    // --- Dashboard ---
    const functions = [...jobsApi.functions.entries(), ['dead-letter', jobQueue.deadLetterHandler] as const];
    const perFunction = (metric: (fn: (typeof functions)[number][1]) => Metric) =>
      functions.map(([name, fn]) => metric(fn).with({ label: name }));

    this.dashboard = new Dashboard(this, 'Dashboard', {
      // Dashboard names are unique per account, across regions.
      dashboardName: `${Stack.of(this).stackName}-${Aws.REGION}`,
      defaultInterval: Duration.hours(6),
    });
    this.dashboard.addWidgets(new AlarmStatusWidget({ title: 'Alarms', alarms, width: 24, height: 3 }));
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Jobs queue',
        width: 12,
        left: [
          queue.metricApproximateNumberOfMessagesVisible({
            statistic: 'Maximum',
            period: minute,
            label: 'waiting',
          }),
          queue.metricApproximateNumberOfMessagesNotVisible({
            statistic: 'Maximum',
            period: minute,
            label: 'training (in flight)',
          }),
          dlq.metricApproximateNumberOfMessagesVisible({
            statistic: 'Maximum',
            period: minute,
            label: 'dead-lettered',
          }),
        ],
      }),
      new GraphWidget({
        title: 'Oldest waiting job (seconds)',
        width: 12,
        left: [
          queue.metricApproximateAgeOfOldestMessage({ statistic: 'Maximum', period: minute, label: 'age' }),
        ],
        leftAnnotations: [{ value: oldestJobAge.toSeconds(), label: 'alarm' }],
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Jobs per minute',
        width: 12,
        left: [jobs('jobsSubmitted'), jobs('jobsSucceeded'), jobs('jobsFailed'), jobs('jobsDeadLettered')],
      }),
      new GraphWidget({
        title: 'Training time of succeeded jobs (seconds)',
        width: 12,
        left: [
          jobs('trainingSeconds', 'Average', Duration.minutes(5)).with({ label: 'average' }),
          jobs('trainingSeconds', 'p90', Duration.minutes(5)).with({ label: 'p90' }),
          jobs('trainingSeconds', 'Maximum', Duration.minutes(5)).with({ label: 'max' }),
        ],
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'GPU instances and trainers',
        width: 8,
        left: [
          trainingCluster.metricInstancesInService().with({ label: 'GPU instances in service' }),
          trainingCluster.metricRunningTrainers().with({ label: 'trainers running' }),
          trainingCluster.backlog,
          jobs('trainerStarted').with({ label: 'trainers started' }),
          jobs('gpuUnavailable').with({ label: 'trainers without a GPU' }),
        ],
      }),
      new GraphWidget({
        title: 'API responses',
        width: 8,
        left: [
          jobsApi.api.metricCount({ statistic: 'Sum', period: minute, label: 'requests' }),
          jobsApi.api.metricClientError({ statistic: 'Sum', period: minute, label: '4xx' }),
          jobsApi.api.metricServerError({ statistic: 'Sum', period: minute, label: '5xx' }),
        ],
      }),
      new GraphWidget({
        title: 'API latency (ms)',
        width: 8,
        left: [
          jobsApi.api.metricLatency({ statistic: 'p50', period: minute, label: 'p50' }),
          jobsApi.api.metricLatency({ statistic: 'p90', period: minute, label: 'p90' }),
          jobsApi.api.metricLatency({ statistic: 'p99', period: minute, label: 'p99' }),
        ],
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Lambda errors',
        width: 12,
        left: perFunction((fn) => fn.metricErrors({ statistic: 'Sum', period: minute })),
      }),
      new GraphWidget({
        title: 'Lambda throttles',
        width: 12,
        left: perFunction((fn) => fn.metricThrottles({ statistic: 'Sum', period: minute })),
      }),
    );
  }

  /** Every alarm of descent, for tests and for adding actions. */
  get alarms(): readonly Alarm[] {
    return [
      this.deadLetterAlarm,
      this.oldestJobAlarm,
      this.failureRateAlarm,
      this.api5xxAlarm,
      this.trainerWithoutGpuAlarm,
    ];
  }
}
