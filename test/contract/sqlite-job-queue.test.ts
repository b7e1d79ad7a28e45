import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SqliteJobQueue, type SqliteJobQueueOptions } from '../../local/sqlite-job-queue.ts';
import { jobQueueContract } from './job-queue-contract.ts';

const tempDir = (): Promise<string> => fs.mkdtemp(path.join(tmpdir(), 'descent-sqlite-queue-'));

const DEAD_LETTERS = 'jobs-dlq';
const mainOptions = (file: string, extra: Partial<SqliteJobQueueOptions> = {}): SqliteJobQueueOptions => ({
  path: file,
  queueName: 'jobs',
  visibilityTimeoutSeconds: 30,
  maxReceiveCount: 2,
  deadLetterQueueName: DEAD_LETTERS,
  pollIntervalMs: 25,
  ...extra,
});

jobQueueContract('SqliteJobQueue', async () => {
  const dir = await tempDir();
  const file = path.join(dir, 'queue.db');
  const queue = new SqliteJobQueue(mainOptions(file));
  const deadLetterQueue = new SqliteJobQueue({ path: file, queueName: DEAD_LETTERS, pollIntervalMs: 25 });
  return {
    queue,
    deadLetterQueue,
    teardown: async () => {
      queue.close();
      deadLetterQueue.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteJobQueue (local only)', () => {
  let dir: string;
  let counter = 0;
  const newFile = (): string => path.join(dir, `queue-${++counter}.db`);

  before(async () => {
    dir = await tempDir();
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('a stale receipt handle cannot extend, release or delete; deleting a deleted message is a no-op', async () => {
    let now = 1_000_000;
    const queue = new SqliteJobQueue(mainOptions(newFile(), { maxReceiveCount: 5, now: () => now }));
    try {
      await queue.send('job');
      const [first] = await queue.receive({ waitSeconds: 0, visibilityTimeoutSeconds: 10 });
      assert.ok(first);
      now += 11_000;
      await assert.rejects(queue.extendVisibility(first.receiptHandle, 30), /visibility timeout has expired/);
      const [second] = await queue.receive({ waitSeconds: 0, visibilityTimeoutSeconds: 10 });
      assert.ok(second);
      assert.equal(second.receiveCount, 2);
      await assert.rejects(queue.extendVisibility(first.receiptHandle, 30), /stale/);
      await assert.rejects(queue.release(first.receiptHandle), /stale/);
      await assert.rejects(queue.delete(first.receiptHandle), /stale/);
      await queue.extendVisibility(second.receiptHandle, 60);
      now += 59_000;
      assert.deepEqual(await queue.depth(), { visible: 0, inFlight: 1 });
      await queue.delete(second.receiptHandle);
      await queue.delete(second.receiptHandle);
      await queue.delete(first.receiptHandle);
      await assert.rejects(queue.extendVisibility(second.receiptHandle, 30), /deleted/);
      await assert.rejects(queue.release(second.receiptHandle), /deleted/);
      await assert.rejects(queue.delete('not-a-handle'), /malformed receipt handle/);
    } finally {
      queue.close();
    }
  });

  it('uses the injected clock for visibility and delay, and resets the receive count in the dead-letter queue', async () => {
    let now = 5_000_000;
    const file = newFile();
    const queue = new SqliteJobQueue(mainOptions(file, { now: () => now }));
    const dead = new SqliteJobQueue({ path: file, queueName: DEAD_LETTERS, now: () => now });
    try {
      await queue.send('delayed', { delaySeconds: 600 });
      assert.deepEqual(await queue.depth(), { visible: 0, inFlight: 0 });
      now += 600_000;
      const [one] = await queue.receive({ waitSeconds: 0 });
      assert.equal(one?.receiveCount, 1);
      now += 30_000;
      const [two] = await queue.receive({ waitSeconds: 0 });
      assert.equal(two?.receiveCount, 2);
      now += 30_000;
      assert.deepEqual(await queue.receive({ waitSeconds: 0 }), []);
      await assert.rejects(queue.delete(two?.receiptHandle ?? ''), /no longer in queue jobs/);
      const [moved] = await dead.receive({ waitSeconds: 0 });
      assert.equal(moved?.body, 'delayed');
      assert.equal(moved?.receiveCount, 1);
    } finally {
      queue.close();
      dead.close();
    }
  });

  it('a zero visibility timeout delivers each message at most once per receive', async () => {
    const queue = new SqliteJobQueue(mainOptions(newFile(), { maxReceiveCount: 100 }));
    try {
      await queue.send('a');
      await queue.send('b');
      const messages = await queue.receive({ waitSeconds: 0, maxMessages: 10, visibilityTimeoutSeconds: 0 });
      assert.deepEqual(
        messages.map((m) => m.body),
        ['a', 'b'],
      );
    } finally {
      queue.close();
    }
  });

  it('rejects out-of-range arguments and configurations', async () => {
    const file = newFile();
    assert.throws(
      () => new SqliteJobQueue({ path: file, queueName: 'q', maxReceiveCount: 2 }),
      /deadLetterQueueName/,
    );
    const queue = new SqliteJobQueue({ path: file, queueName: 'q' });
    try {
      await assert.rejects(queue.receive({ waitSeconds: 0, maxMessages: 11 }), RangeError);
      await assert.rejects(queue.send('x', { delaySeconds: 901 }), RangeError);
      await assert.rejects(queue.receive({ waitSeconds: -1 }), RangeError);
    } finally {
      queue.close();
    }
  });

  it('close is idempotent and ends a pending long poll', async () => {
    const queue = new SqliteJobQueue({ path: newFile(), queueName: 'q', pollIntervalMs: 20 });
    const polling = queue.receive({ waitSeconds: 10 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    queue.close();
    queue.close();
    assert.deepEqual(await polling, []);
    await assert.rejects(queue.send('x'), /closed/);
  });

  it('two instances on the same file never both receive one message', async () => {
    const file = newFile();
    const a = new SqliteJobQueue({ path: file, queueName: 'q', pollIntervalMs: 5 });
    const b = new SqliteJobQueue({ path: file, queueName: 'q', pollIntervalMs: 5 });
    try {
      for (let i = 0; i < 60; i++) await a.send(`m${i}`);
      const drain = async (queue: SqliteJobQueue): Promise<string[]> => {
        const got: string[] = [];
        for (;;) {
          const messages = await queue.receive({
            waitSeconds: 0,
            maxMessages: 3,
            visibilityTimeoutSeconds: 60,
          });
          if (messages.length === 0) return got;
          got.push(...messages.map((m) => m.body));
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      const [fromA, fromB] = await Promise.all([drain(a), drain(b)]);
      const all = [...fromA, ...fromB];
      assert.equal(all.length, 60);
      assert.equal(new Set(all).size, 60);
      assert.ok(fromA.length > 0 && fromB.length > 0, `a got ${fromA.length}, b got ${fromB.length}`);
    } finally {
      a.close();
      b.close();
    }
  });
});
