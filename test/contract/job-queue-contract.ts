/**
 * The `JobQueue` contract: every adapter runs these cases. Each case gets a fresh queue and its
 * dead-letter queue from `setup`, so the cases run concurrently and the suite takes about as long
 * as its slowest case (a few seconds of visibility timeouts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobQueue } from '../../core/platform/ports.ts';

export interface JobQueueFixture {
  /** A new, empty queue whose messages go to `deadLetterQueue` after 2 receives (maxReceiveCount 2). */
  readonly queue: JobQueue;
  readonly deadLetterQueue: JobQueue;
  teardown(): Promise<void>;
}

export function jobQueueContract(name: string, setup: () => Promise<JobQueueFixture>): void {
  const withQueues =
    (body: (queue: JobQueue, deadLetterQueue: JobQueue) => Promise<void>) => async (): Promise<void> => {
      const fixture = await setup();
      try {
        await body(fixture.queue, fixture.deadLetterQueue);
      } finally {
        await fixture.teardown();
      }
    };

  describe(`JobQueue contract: ${name}`, { concurrency: true }, () => {
    it(
      'send then receive delivers the body once with receiveCount 1; delete removes it and is idempotent',
      withQueues(async (queue) => {
        const { messageId } = await queue.send('{"jobId":"01J"}');
        const [message, ...rest] = await queue.receive({ waitSeconds: 1 });
        assert.equal(rest.length, 0);
        assert.ok(message);
        assert.equal(message.messageId, messageId);
        assert.equal(message.body, '{"jobId":"01J"}');
        assert.equal(message.receiveCount, 1);
        assert.ok(message.receiptHandle.length > 0);
        await queue.delete(message.receiptHandle);
        await queue.delete(message.receiptHandle);
        assert.deepEqual(await queue.depth(), { visible: 0, inFlight: 0 });
        assert.deepEqual(await queue.receive({ waitSeconds: 0 }), []);
      }),
    );

    it(
      'receive returns at most maxMessages, each message once',
      withQueues(async (queue) => {
        for (const body of ['a', 'b', 'c']) await queue.send(body);
        const first = await queue.receive({ waitSeconds: 1, maxMessages: 2, visibilityTimeoutSeconds: 30 });
        assert.ok(first.length >= 1 && first.length <= 2);
        const bodies = first.map((m) => m.body);
        for (let i = 0; i < 5 && bodies.length < 3; i++) {
          const more = await queue.receive({ waitSeconds: 1, maxMessages: 10, visibilityTimeoutSeconds: 30 });
          bodies.push(...more.map((m) => m.body));
        }
        assert.deepEqual(bodies.sort(), ['a', 'b', 'c']);
      }),
    );

    it(
      'a long poll returns as soon as a message arrives mid-wait',
      withQueues(async (queue) => {
        const started = Date.now();
        const polling = queue.receive({ waitSeconds: 5 });
        await sleep(300);
        await queue.send('late');
        const messages = await polling;
        assert.deepEqual(
          messages.map((m) => m.body),
          ['late'],
        );
        assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
      }),
    );

    it(
      'a long poll with nothing to receive returns [] after waitSeconds',
      withQueues(async (queue) => {
        const started = Date.now();
        assert.deepEqual(await queue.receive({ waitSeconds: 1 }), []);
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 900 && elapsed < 3000, `took ${elapsed} ms`);
      }),
    );

    it(
      'aborting the signal ends a long poll early with no messages',
      withQueues(async (queue) => {
        // Already aborted: returns at once, and leaves a waiting message alone.
        await queue.send('keep');
        assert.deepEqual(await queue.receive({ waitSeconds: 5, signal: AbortSignal.abort() }), []);
        assert.deepEqual(await queue.depth(), { visible: 1, inFlight: 0 });
        const [kept] = await queue.receive({ waitSeconds: 1 });
        assert.ok(kept);
        await queue.delete(kept.receiptHandle);
        // Aborted mid-wait. (With SQS the abandoned poll may still take a message sent later and hide
        // it for its visibility timeout, so nothing is sent after this.)
        const controller = new AbortController();
        const started = Date.now();
        const polling = queue.receive({ waitSeconds: 10, signal: controller.signal });
        await sleep(200);
        controller.abort();
        assert.deepEqual(await polling, []);
        assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
      }),
    );

    it(
      'a received message stays hidden for its visibility timeout, then comes back with receiveCount 2',
      withQueues(async (queue) => {
        const { messageId } = await queue.send('job');
        const [first] = await queue.receive({ waitSeconds: 1, visibilityTimeoutSeconds: 1 });
        assert.equal(first?.receiveCount, 1);
        assert.deepEqual(await queue.receive({ waitSeconds: 0 }), []);
        assert.deepEqual(await queue.depth(), { visible: 0, inFlight: 1 });
        const [second] = await queue.receive({ waitSeconds: 4, visibilityTimeoutSeconds: 30 });
        assert.ok(second);
        assert.equal(second.messageId, messageId);
        assert.equal(second.body, 'job');
        assert.equal(second.receiveCount, 2);
        assert.notEqual(second.receiptHandle, first?.receiptHandle);
        await queue.delete(second.receiptHandle);
      }),
    );

    it(
      'extendVisibility keeps a message hidden past its original timeout',
      withQueues(async (queue) => {
        await queue.send('long job');
        const [message] = await queue.receive({ waitSeconds: 1, visibilityTimeoutSeconds: 1 });
        assert.ok(message);
        await queue.extendVisibility(message.receiptHandle, 5);
        await sleep(1600);
        assert.deepEqual(await queue.receive({ waitSeconds: 0 }), []);
        assert.deepEqual(await queue.depth(), { visible: 0, inFlight: 1 });
        await queue.delete(message.receiptHandle);
        assert.deepEqual(await queue.depth(), { visible: 0, inFlight: 0 });
      }),
    );

    it(
      'release makes a received message visible again at once',
      withQueues(async (queue) => {
        await queue.send('handed back');
        const [message] = await queue.receive({ waitSeconds: 1, visibilityTimeoutSeconds: 30 });
        assert.ok(message);
        await queue.release(message.receiptHandle);
        assert.deepEqual(await queue.depth(), { visible: 1, inFlight: 0 });
        const [again] = await queue.receive({ waitSeconds: 1 });
        assert.equal(again?.body, 'handed back');
        assert.equal(again?.receiveCount, 2);
      }),
    );

    it(
      'depth counts visible and in-flight messages',
      withQueues(async (queue) => {
        assert.deepEqual(await queue.depth(), { visible: 0, inFlight: 0 });
        for (const body of ['1', '2', '3']) await queue.send(body);
        assert.deepEqual(await queue.depth(), { visible: 3, inFlight: 0 });
        const [message] = await queue.receive({ waitSeconds: 1, visibilityTimeoutSeconds: 30 });
        assert.ok(message);
        assert.deepEqual(await queue.depth(), { visible: 2, inFlight: 1 });
        await queue.delete(message.receiptHandle);
        assert.deepEqual(await queue.depth(), { visible: 2, inFlight: 0 });
      }),
    );

    it(
      'a message received more than maxReceiveCount (2) times moves to the dead-letter queue',
      withQueues(async (queue, deadLetterQueue) => {
        const { messageId } = await queue.send('poison');
        const [first] = await queue.receive({ waitSeconds: 1, visibilityTimeoutSeconds: 1 });
        assert.equal(first?.receiveCount, 1);
        const [second] = await queue.receive({ waitSeconds: 4, visibilityTimeoutSeconds: 1 });
        assert.equal(second?.receiveCount, 2);
        await sleep(1200);
        assert.deepEqual(await queue.receive({ waitSeconds: 0 }), []);
        assert.deepEqual(await queue.depth(), { visible: 0, inFlight: 0 });
        const [dead] = await deadLetterQueue.receive({ waitSeconds: 2 });
        assert.ok(dead, 'the message reached the dead-letter queue');
        assert.equal(dead.body, 'poison');
        assert.equal(dead.messageId, messageId);
        await deadLetterQueue.delete(dead.receiptHandle);
        assert.deepEqual(await deadLetterQueue.depth(), { visible: 0, inFlight: 0 });
      }),
    );

    it(
      'delaySeconds keeps a new message invisible until the delay has passed',
      withQueues(async (queue) => {
        const started = Date.now();
        await queue.send('later', { delaySeconds: 1 });
        assert.deepEqual(await queue.receive({ waitSeconds: 0 }), []);
        const [message] = await queue.receive({ waitSeconds: 4 });
        assert.equal(message?.body, 'later');
        assert.ok(Date.now() - started >= 900, `arrived after ${Date.now() - started} ms`);
      }),
    );
  });
}
