/** The dashboard and the alarms: what they watch and where they send. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { METRIC_NAMESPACE, METRICS } from '../../core/platform/emf.ts';
import { type CfnResource, resourcesOfType, synthesize } from './synth.ts';

const { stack, template, resources, logicalId } = synthesize();
const monitoring = stack.monitoring;
const topicRef = { Ref: logicalId(monitoring.alarmTopic) };

/** The alarm's properties, by construct. */
const alarmOf = (alarm: { node: { defaultChild?: unknown } }): CfnResource => {
  const found = resources[logicalId(alarm)];
  assert.ok(found, 'alarm not in the template');
  return found;
};
/** Metric names and expressions an alarm reads. */
const inputsOf = (alarm: CfnResource): string =>
  JSON.stringify([alarm.Properties.MetricName, alarm.Properties.Metrics, alarm.Properties.Dimensions]);

describe('Monitoring alarms', () => {
  it('has the five alarms, each notifying the alarm topic when it fires and when it clears', () => {
    assert.equal(monitoring.alarms.length, 5);
    for (const alarm of monitoring.alarms) {
      const { Properties } = alarmOf(alarm);
      assert.deepEqual(Properties.AlarmActions, [topicRef]);
      assert.deepEqual(Properties.OKActions, [topicRef]);
      assert.match(String(Properties.AlarmDescription), /Ops runbook/);
    }
  });

  it('fires when a job is dead-lettered or the dead-letter queue holds messages', () => {
    const alarm = alarmOf(monitoring.deadLetterAlarm);
    const dlqName = JSON.stringify({
      'Fn::GetAtt': [logicalId(stack.jobQueue.deadLetterQueue), 'QueueName'],
    });
    assert.ok(inputsOf(alarm).includes(dlqName));
    assert.match(inputsOf(alarm), /jobsDeadLettered/);
    assert.equal(alarm.Properties.Threshold, 1);
    assert.equal(alarm.Properties.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
  });

  it("fires when the oldest job has waited the setting's 60 minutes", () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateAgeOfOldestMessage',
      Namespace: 'AWS/SQS',
      Dimensions: [
        { Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(stack.jobQueue.queue), 'QueueName'] } },
      ],
      Threshold: 3600,
      AlarmActions: [topicRef],
    });
  });

  it('fires when more than 25% of the jobs that ended in an hour failed or were dead-lettered', () => {
    const alarm = alarmOf(monitoring.failureRateAlarm);
    for (const name of ['jobsSucceeded', 'jobsFailed', 'jobsDeadLettered'])
      assert.match(inputsOf(alarm), new RegExp(name));
    assert.equal(alarm.Properties.Threshold, 25);
    assert.equal(alarm.Properties.ComparisonOperator, 'GreaterThanThreshold');
  });

  it('fires on 5 API 5xx responses in 5 minutes', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/ApiGateway',
      MetricName: '5xx',
      Dimensions: [{ Name: 'ApiId', Value: { Ref: logicalId(stack.jobsApi.api) } }],
      Threshold: 5,
      Period: 300,
      AlarmActions: [topicRef],
    });
  });

  it('fires when a trainer reports, once in 5 minutes, that it has no GPU (refused to start or fell back to a CPU)', () => {
    const alarm = alarmOf(monitoring.trainerWithoutGpuAlarm);
    const [metric] = alarm.Properties.Metrics as {
      MetricStat: { Metric: { MetricName: string; Namespace: string }; Stat: string; Period: number };
    }[];
    assert.deepEqual(metric?.MetricStat.Metric, {
      MetricName: METRICS.gpuUnavailable.name,
      Namespace: METRIC_NAMESPACE,
    });
    assert.equal(metric?.MetricStat.Stat, 'Sum');
    assert.equal(metric?.MetricStat.Period, 300);
    assert.equal(alarm.Properties.Threshold, 1);
    assert.equal(alarm.Properties.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
    assert.equal(alarm.Properties.TreatMissingData, 'notBreaching');
  });

  it('publishes to a KMS-encrypted, TLS-only topic that CloudWatch may encrypt for', () => {
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
          }),
        ]),
      },
    });
    template.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  it('subscribes the alarmEmail setting to the topic, and uses the threshold settings', () => {
    const custom = synthesize(
      {},
      {
        'descent:alarmEmail': 'ops@example.com',
        'descent:oldestMessageAlarmMinutes': '15',
        'descent:failureRateAlarmPercent': '50',
      },
    );
    custom.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
    custom.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateAgeOfOldestMessage',
      Threshold: 900,
    });
    custom.template.hasResourceProperties('AWS::CloudWatch::Alarm', { Threshold: 50 });
  });
});

describe('Monitoring dashboard', () => {
  const [[, dashboard]] = resourcesOfType(resources, 'AWS::CloudWatch::Dashboard') as [[string, CfnResource]];
  const body = JSON.stringify(dashboard.Properties.DashboardBody);

  it("graphs every metric the handlers and trainers emit, in the 'descent' namespace", () => {
    for (const { name } of Object.values(METRICS)) {
      assert.ok(body.includes(`\\"${METRIC_NAMESPACE}\\",\\"${name}\\"`), `${name} is not on the dashboard`);
    }
  });

  it('graphs the queue, the GPU instances and trainers, the API and every function', () => {
    for (const needle of [
      'ApproximateNumberOfMessagesVisible',
      'ApproximateNumberOfMessagesNotVisible',
      'ApproximateAgeOfOldestMessage',
      'GroupInServiceInstances',
      'RunningTaskCount',
      '\\"4xx\\"',
      '\\"5xx\\"',
      'Latency',
      'Throttles',
    ]) {
      assert.ok(body.includes(needle), `${needle} is not on the dashboard`);
    }
    const functionIds = [...stack.jobsApi.functions.values(), stack.jobQueue.deadLetterHandler].map(
      logicalId,
    );
    for (const id of functionIds) {
      // Once in the errors graph, once in the throttles graph.
      assert.equal(body.split(`{"Ref":"${id}"}`).length - 1, 2, `${id}: errors and throttles`);
    }
    assert.ok(body.includes('alarm'), 'no alarm status widget');
  });

  it('collects the GPU group metrics the dashboard graphs', () => {
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      MetricsCollection: [Match.objectLike({ Metrics: Match.arrayWith(['GroupInServiceInstances']) })],
    });
  });
});
