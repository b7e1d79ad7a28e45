/**
 * ECS task scale-in protection through the agent endpoint, against a local HTTP server that answers
 * like the ECS agent: the trainer protects its task while busy, renews it, drops it when idle, and never
 * fails a job over it.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createLogger } from '../../core/platform/log.ts';
import { TASK_PROTECTION_PATH, TaskProtection } from '../../trainer/task-protection.ts';

interface Received {
  method: string;
  url: string;
  contentType: string | undefined;
  body: { ProtectionEnabled: boolean; ExpiresInMinutes?: number };
}

/** A stand-in for the ECS agent: records each request, answers with `reply` (an agent success by default). */
function fakeAgent() {
  const received: Received[] = [];
  let reply: (body: Received['body']) => { status: number; body: unknown } = (body) => ({
    status: 200,
    body: {
      protection: {
        ProtectionEnabled: body.ProtectionEnabled,
        ExpirationDate: '2025-01-01T11:00:00Z',
        TaskArn: 'arn:aws:ecs:eu-west-1:123456789012:task/cluster/abc',
      },
    },
  });
  const server: Server = createServer(async (request: IncomingMessage, response) => {
    let text = '';
    for await (const chunk of request) text += chunk;
    const body = JSON.parse(text) as Received['body'];
    received.push({
      method: request.method ?? '',
      url: request.url ?? '',
      contentType: request.headers['content-type'],
      body,
    });
    const { status, body: answer } = reply(body);
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  });
  return {
    received,
    server,
    answer(next: typeof reply) {
      reply = next;
    },
    url: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/task-id`,
  };
}

/** A logger that keeps its warnings. */
function recordingLog() {
  const warnings: Record<string, unknown>[] = [];
  const log = createLogger({}, (line) => {
    const entry = JSON.parse(line) as Record<string, unknown>;
    if (entry.level === 'warn') warnings.push(entry);
  });
  return { log, warnings };
}

describe('TaskProtection', () => {
  const agent = fakeAgent();
  before(async () => {
    await new Promise<void>((resolve) => agent.server.listen(0, '127.0.0.1', resolve));
  });
  after(() => {
    agent.server.close();
  });
  beforeEach(() => {
    agent.received.length = 0;
    agent.answer((body) => ({
      status: 200,
      body: { protection: { ProtectionEnabled: body.ProtectionEnabled } },
    }));
  });

  it('protects the task for the configured minutes while busy and drops the protection when idle', async () => {
    const { log, warnings } = recordingLog();
    const protection = new TaskProtection({ agentUri: agent.url(), expiresInMinutes: 90, log });
    await protection.setBusy(true);
    await protection.setBusy(false);
    protection.close();
    assert.deepEqual(
      agent.received.map((r) => [r.method, r.url, r.contentType, r.body]),
      [
        [
          'PUT',
          `/api/task-id${TASK_PROTECTION_PATH}`,
          'application/json',
          { ProtectionEnabled: true, ExpiresInMinutes: 90 },
        ],
        ['PUT', `/api/task-id${TASK_PROTECTION_PATH}`, 'application/json', { ProtectionEnabled: false }],
      ],
    );
    assert.deepEqual(warnings, []);
  });

  it('renews the protection while the job lasts, and stops renewing once idle', async () => {
    const { log } = recordingLog();
    const protection = new TaskProtection({
      agentUri: agent.url(),
      expiresInMinutes: 1,
      log,
      renewEveryMs: 30,
    });
    await protection.setBusy(true);
    await new Promise((resolve) => setTimeout(resolve, 110));
    await protection.setBusy(false);
    const renewals = agent.received.filter((r) => r.body.ProtectionEnabled).length;
    assert.ok(renewals >= 3, `${renewals} protections in 110 ms, renewing every 30 ms`);
    const count = agent.received.length;
    await new Promise((resolve) => setTimeout(resolve, 70));
    assert.equal(agent.received.length, count, 'renewed after the job ended');
    assert.deepEqual(agent.received.at(-1)?.body, { ProtectionEnabled: false });
  });

  it('logs and carries on when the agent refuses (no IAM permission), answers a failure, or is unreachable', async () => {
    const { log, warnings } = recordingLog();
    agent.answer(() => ({
      status: 400,
      body: {
        error: {
          Code: 'AccessDeniedException',
          Message: 'not authorized to perform: ecs:UpdateTaskProtection',
        },
      },
    }));
    const protection = new TaskProtection({ agentUri: agent.url(), expiresInMinutes: 60, log });
    await protection.setBusy(true);
    agent.answer(() => ({ status: 200, body: { failure: { Arn: 'arn', Reason: 'TASK_NOT_VALID' } } }));
    await protection.setBusy(false);
    protection.close();
    const down = new TaskProtection({ agentUri: 'http://127.0.0.1:1/api/x', expiresInMinutes: 60, log });
    await down.setBusy(true);
    down.close();
    assert.deepEqual(
      warnings.map((w) => [w.message, w.protectionEnabled, String(w.reason).slice(0, 40)]),
      [
        ['task protection not updated', true, 'not authorized to perform: ecs:UpdateTas'],
        ['task protection not updated', false, 'TASK_NOT_VALID'],
        ['task protection not updated', true, 'TypeError: fetch failed'],
      ],
    );
  });

  it('uses the injected fetch, and does nothing without an agent (not on ECS)', async () => {
    const { log } = recordingLog();
    const calls: string[] = [];
    const fetch = (async (url: string | URL | Request, init?: RequestInit) => {
      calls.push(`${init?.method} ${String(url)} ${init?.body}`);
      return new Response(JSON.stringify({ protection: { ProtectionEnabled: true } }), { status: 200 });
    }) as typeof globalThis.fetch;
    const injected = new TaskProtection({ agentUri: 'http://agent/api/t', expiresInMinutes: 5, log, fetch });
    await injected.setBusy(true);
    injected.close();
    assert.deepEqual(calls, [
      `PUT http://agent/api/t${TASK_PROTECTION_PATH} {"ProtectionEnabled":true,"ExpiresInMinutes":5}`,
    ]);

    const none = new TaskProtection({ agentUri: undefined, expiresInMinutes: 5, log, fetch });
    assert.equal(none.available, false);
    await none.setBusy(true);
    await none.setBusy(false);
    assert.equal(calls.length, 1);
  });

  it('rejects a protection time ECS would refuse', () => {
    const { log } = recordingLog();
    for (const minutes of [0, 2881, 1.5]) {
      assert.throws(
        () => new TaskProtection({ agentUri: 'http://x', expiresInMinutes: minutes, log }),
        RangeError,
      );
    }
  });
});
