/**
 * The embedded-metric-format lines: their shape (what CloudWatch Logs turns into metrics), and how a
 * finished job record becomes its metrics.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endedJobMetrics } from '../../core/jobs/job-metrics.ts';
import type { JobRecord } from '../../core/jobs/job-record.ts';
import { transition } from '../../core/jobs/lifecycle.ts';
import { emfLine, emitMetrics, METRIC_NAMESPACE, METRICS } from '../../core/platform/emf.ts';

const at = (iso: string) => new Date(iso);

/** A QUEUED record, created at 10:00. */
function queued(): JobRecord {
  return {
    id: '01M8JH2TQYPMBNJ50HMGRP3N6M',
    name: 'test',
    status: 'QUEUED',
    createdAt: '2025-01-01T10:00:00.000Z',
    updatedAt: '2025-01-01T10:00:00.000Z',
    attempt: 0,
    progress: { epoch: 0, epochs: 5 },
    // endedJobMetrics reads only the status, finishedAt and resources.
    spec: {} as JobRecord['spec'],
  } as JobRecord;
}

/** The record after an attempt that started at 10:01 and ended `status` at 10:05. */
function ended(status: 'SUCCEEDED' | 'FAILED' | 'CANCELLING'): JobRecord {
  const running = transition(queued(), 'RUNNING', at('2025-01-01T10:01:00Z'), { attempt: 1 });
  return transition(running, status, at('2025-01-01T10:05:00Z'), {
    ...(status === 'SUCCEEDED'
      ? {
          resources: {
            trainingSeconds: 212.5,
            samplesPerSecond: 900,
            rows: { training: 80, validation: 20 },
            parameters: 42,
          },
        }
      : {}),
  } as unknown as Partial<JobRecord>);
}

describe('emfLine', () => {
  it('writes the values at the root and declares them in the descent namespace, without dimensions', () => {
    const line = emfLine(
      { jobsSucceeded: 1, trainingSeconds: 12.5 },
      { timestamp: at('2025-01-01T10:00:00Z'), properties: { tenant: 'acme', jobId: 'J1' } },
    );
    assert.ok(line);
    assert.ok(!line.includes('\n'), 'one line');
    assert.deepEqual(JSON.parse(line), {
      tenant: 'acme',
      jobId: 'J1',
      _aws: {
        Timestamp: Date.parse('2025-01-01T10:00:00Z'),
        CloudWatchMetrics: [
          {
            Namespace: 'descent',
            Dimensions: [[]],
            Metrics: [
              { Name: 'jobsSucceeded', Unit: 'Count' },
              { Name: 'trainingSeconds', Unit: 'Seconds' },
            ],
          },
        ],
      },
      jobsSucceeded: 1,
      trainingSeconds: 12.5,
    });
  });

  it('gives nothing to report when no value is a finite number', () => {
    assert.equal(emfLine({}), undefined);
    assert.equal(emfLine({ trainingSeconds: Number.NaN }), undefined);
    const lines: string[] = [];
    const sink = (line: string) => {
      lines.push(line);
    };
    emitMetrics(sink, { jobsFailed: Number.POSITIVE_INFINITY });
    assert.deepEqual(lines, []);
    emitMetrics(sink, { jobsFailed: 1 });
    assert.equal(lines.length, 1);
  });

  it('names every metric in camelCase, after its key, in one namespace', () => {
    assert.equal(METRIC_NAMESPACE, 'descent');
    for (const [key, { name, unit }] of Object.entries(METRICS)) {
      assert.equal(name, key);
      assert.match(name, /^[a-z][a-zA-Z]+$/);
      assert.ok(['Count', 'Seconds', 'Percent'].includes(unit));
    }
  });
});

describe('endedJobMetrics', () => {
  it('counts a job that succeeded, with its training time', () => {
    assert.deepEqual(endedJobMetrics(ended('SUCCEEDED')), { jobsSucceeded: 1, trainingSeconds: 212.5 });
  });

  it('counts a failed job, and a dead-lettered one apart', () => {
    assert.deepEqual(endedJobMetrics(ended('FAILED')), { jobsFailed: 1 });
    const dead = { ...ended('FAILED'), error: { code: 'MAX_ATTEMPTS', message: 'x' } };
    assert.deepEqual(endedJobMetrics(dead), { jobsDeadLettered: 1 });
  });

  it('counts nothing for a job that is still going or was cancelled', () => {
    assert.deepEqual(endedJobMetrics(ended('CANCELLING')), {});
    const cancelled = transition(ended('CANCELLING'), 'CANCELLED', at('2025-01-01T10:06:00Z'));
    assert.deepEqual(endedJobMetrics(cancelled), {});
    assert.deepEqual(endedJobMetrics(queued()), {});
  });
});
