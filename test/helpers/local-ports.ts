/** Real local adapters in a temporary folder, for tests of code that talks to the ports. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { datasetKeys } from '../../core/platform/keys.ts';
import type { ObjectStore } from '../../core/platform/ports.ts';
import { FsObjectStore } from '../../local/fs-object-store.ts';
import { SqliteJobQueue } from '../../local/sqlite-job-queue.ts';

export interface LocalPorts {
  dir: string;
  store: FsObjectStore;
  queue: SqliteJobQueue;
  deadLetters: SqliteJobQueue;
  cleanup(): Promise<void>;
}

export async function localPorts(
  options: { visibilityTimeoutSeconds?: number; maxReceiveCount?: number } = {},
): Promise<LocalPorts> {
  const dir = await mkdtemp(join(tmpdir(), 'descent-ports-'));
  const store = new FsObjectStore({
    root: join(dir, 'objects'),
    secret: 'test-secret',
    baseUrl: 'http://127.0.0.1:1',
  });
  const path = join(dir, 'queue.db');
  const queue = new SqliteJobQueue({
    path,
    queueName: 'jobs',
    visibilityTimeoutSeconds: options.visibilityTimeoutSeconds ?? 30,
    maxReceiveCount: options.maxReceiveCount ?? 3,
    deadLetterQueueName: 'dlq',
    pollIntervalMs: 20,
  });
  const deadLetters = new SqliteJobQueue({ path, queueName: 'dlq', pollIntervalMs: 20 });
  return {
    dir,
    store,
    queue,
    deadLetters,
    cleanup: async () => {
      queue.close();
      deadLetters.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Stores a dataset as an upload would (metadata + data), without the HTTP round trip. */
export async function putDataset(
  store: ObjectStore,
  tenant: string,
  id: string,
  data: string,
  format: 'csv' | 'jsonl' = 'csv',
): Promise<string> {
  const keys = datasetKeys(tenant, id);
  await store.put(
    keys.meta,
    JSON.stringify({ id, name: `dataset-${id.slice(-4)}`, format, createdAt: new Date().toISOString() }),
  );
  await store.put(keys.data, data);
  return id;
}

/** A stored JSON object as the test sees it (`undefined` when there is none). */
export async function readJson(store: ObjectStore, key: string): Promise<any> {
  const object = await store.get(key);
  return object ? JSON.parse(new TextDecoder().decode(object.body)) : undefined;
}

/** `store` with some methods replaced (a failing disk, a slow network): the rest call the real store. */
export function storeWith(store: ObjectStore, overrides: Partial<ObjectStore>): ObjectStore {
  return {
    put: (...a) => store.put(...a),
    putStream: (...a) => store.putStream(...a),
    get: (...a) => store.get(...a),
    head: (...a) => store.head(...a),
    getStream: (...a) => store.getStream(...a),
    list: (...a) => store.list(...a),
    delete: (...a) => store.delete(...a),
    presignGet: (...a) => store.presignGet(...a),
    presignPut: (...a) => store.presignPut(...a),
    ...overrides,
  };
}
