/** The dashboard and the alarms: what they watch, and that their notifications can be delivered. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { METRIC_NAMESPACE, METRICS } from '../../core/platform/emf.ts';
import { type CfnResource, resourcesOfType, synthesize } from './synth.ts';

const { stack, template, resources, logicalId } = synthesize();
const monitoring = stack.monitoring;
const topicRef = { Ref: logicalId(monitoring.alarmTopic) };

const alarmOf = (alarm: { node: { defaultChild?: unknown } }): CfnResource => {
  const found = resources[logicalId(alarm)];
  assert.ok(found, 'alarm not in the template');
  return found;
};
/** Metric names and expressions an alarm reads. */
const inputsOf = (alarm: CfnResource): string =>
  JSON.stringify([alarm.Properties.MetricName, alarm.Properties.Metrics, alarm.Properties.Dimensions]);

describe('Monitoring alarms', () => {
  it('has the six alarms of the runbook, each notifying the topic when it fires and when it clears', () => {
    assert.equal(monitoring.alarms.length, 6);
    for (const alarm of monitoring.alarms) {
      const { Properties } = alarmOf(alarm);
      assert.deepEqual(Properties.AlarmActions, [topicRef]);
      assert.deepEqual(Properties.OKActions, [topicRef]);
      assert.match(String(Properties.AlarmDescription), /Ops runbook/);
    }
  });

  it("fires when Batch's queue is blocked for want of a GPU, or a job failed with no GPU capacity", () => {
    const alarm = alarmOf(monitoring.noCapacityAlarm);
    assert.match(inputsOf(alarm), /jobQueueBlocked/);
    assert.match(inputsOf(alarm), /jobsWithoutCapacity/);
    assert.equal(alarm.Properties.Threshold, 1);
  });

  it('fires when more than 25% of the jobs that ended in an hour failed or ran out of attempts', () => {
    const alarm = alarmOf(monitoring.failureRateAlarm);
    for (const name of ['jobsSucceeded', 'jobsFailed', 'jobsDeadLettered'])
      assert.match(inputsOf(alarm), new RegExp(name));
    assert.equal(alarm.Properties.Threshold, 25);
    assert.equal(alarm.Properties.ComparisonOperator, 'GreaterThanThreshold');
  });

  it('fires on dead-lettered jobs, a non-empty intake DLQ, or Batch events that could not be recorded', () => {
    const alarm = alarmOf(monitoring.deadLetterAlarm);
    const queueName = (q: unknown) => JSON.stringify({ 'Fn::GetAtt': [logicalId(q as never), 'QueueName'] });
    assert.ok(inputsOf(alarm).includes(queueName(stack.jobQueue.deadLetterQueue)));
    assert.ok(inputsOf(alarm).includes(queueName(stack.dispatch.batchEventsDeadLetterQueue)));
    assert.match(inputsOf(alarm), /jobsDeadLettered/);
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

  it('fires when any descent function fails: one alarm per function under a composite that notifies', () => {
    assert.deepEqual(
      [...monitoring.functionErrorAlarms.keys()].sort(),
      stack.functions.map((f) => f.handlerFile).sort(),
    );
    const rule = String(alarmOf(monitoring.lambdaErrorsAlarm).Properties.AlarmRule);
    for (const alarm of monitoring.functionErrorAlarms.values()) {
      const { Properties } = alarmOf(alarm);
      assert.equal(Properties.MetricName, 'Errors');
      assert.equal(Properties.AlarmActions, undefined, 'the composite notifies, not each function');
      assert.ok(JSON.stringify(rule).length > 0);
    }
    const [[, composite]] = resourcesOfType(resources, 'AWS::CloudWatch::CompositeAlarm') as [
      [string, CfnResource],
    ];
    const ruleText = JSON.stringify(composite.Properties.AlarmRule);
    for (const alarm of monitoring.functionErrorAlarms.values())
      assert.ok(ruleText.includes(logicalId(alarm)));
  });

  it('fires when a trainer found no GPU', () => {
    const alarm = alarmOf(monitoring.trainerWithoutGpuAlarm);
    assert.match(inputsOf(alarm), /gpuUnavailable/);
    assert.equal(alarm.Properties.Threshold, 1);
  });

  it('lets CloudWatch publish to the KMS-encrypted, TLS-only topic (its policy allows it, its key too)', () => {
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [topicRef],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Resource: topicRef,
            Condition: Match.objectLike({ StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } }),
          }),
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

  it('subscribes the alarmEmail setting and uses the threshold settings', () => {
    const custom = synthesize(
      {},
      { 'descent:alarmEmail': 'ops@example.com', 'descent:failureRateAlarmPercent': '50' },
    );
    custom.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
    custom.template.hasResourceProperties('AWS::CloudWatch::Alarm', { Threshold: 50 });
  });

  it('names every notifying alarm in the AlarmNames output (the post-deploy check fires each once)', () => {
    const output = JSON.stringify(template.toJSON().Outputs.AlarmNames.Value);
    for (const alarm of monitoring.alarms) assert.ok(output.includes(logicalId(alarm)), logicalId(alarm));
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

  it('is built around Batch queue states, outcomes, training time and GPU utilisation, then the API and functions', () => {
    for (const needle of [
      'AWS Batch queue states',
      'batchJobsRunnable',
      'Job outcomes',
      'Training time',
      'GPU utilisation',
      'ApproximateNumberOfMessagesVisible',
      '\\"4xx\\"',
      '\\"5xx\\"',
      'Latency',
      'Throttles',
    ]) {
      assert.ok(body.includes(needle), `${needle} is not on the dashboard`);
    }
    for (const fn of stack.functions) {
      // Once in the errors graph, once in the throttles graph.
      assert.equal(
        body.split(`{"Ref":"${logicalId(fn)}"}`).length - 1,
        2,
        `${fn.handlerFile}: errors and throttles`,
      );
    }
  });
});
