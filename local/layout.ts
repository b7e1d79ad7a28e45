/** Where local mode keeps its state under the data folder, and how it opens the two ports there. */
import { join } from 'node:path';
import { FsObjectStore } from './fs-object-store.ts';
import { SqliteJobQueue } from './sqlite-job-queue.ts';

export const JOBS_QUEUE = 'jobs';
export const DEAD_LETTER_QUEUE = 'jobs-dead-letter';
/** Seconds a received job stays invisible between heartbeats. */
export const VISIBILITY_TIMEOUT_SECONDS = 60;

export const dataPaths = (dataDir: string) => ({
  objects: join(dataDir, 'objects'),
  queue: join(dataDir, 'queue.db'),
});

export function openLocalStore(
  dataDir: string,
  secret: string,
  baseUrl: string | (() => string),
): FsObjectStore {
  return new FsObjectStore({ root: dataPaths(dataDir).objects, secret, baseUrl });
}

export function openJobQueue(dataDir: string, maxReceiveCount: number): SqliteJobQueue {
  return new SqliteJobQueue({
    path: dataPaths(dataDir).queue,
    queueName: JOBS_QUEUE,
    visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
    maxReceiveCount,
    deadLetterQueueName: DEAD_LETTER_QUEUE,
    // An idle worker looks for a new job this often: it bounds the submit → RUNNING latency.
    pollIntervalMs: 25,
  });
}

export function openDeadLetterQueue(dataDir: string): SqliteJobQueue {
  return new SqliteJobQueue({ path: dataPaths(dataDir).queue, queueName: DEAD_LETTER_QUEUE });
}
