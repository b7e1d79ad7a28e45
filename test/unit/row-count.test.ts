/**
 * Row counting at submit stays bounded: a dataset up to 16 MiB is counted exactly (and the count
 * cached); a larger one is estimated from its first MiB, so that a submit reads at most that much of
 * it, whatever the upload limit (API Gateway gives a request 30 seconds).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  countRows,
  EXACT_COUNT_BYTES,
  findDatasetMeta,
  SAMPLE_BYTES,
} from '../../core/datasets/dataset-service.ts';
import { submitJob } from '../../core/jobs/job-service.ts';
import { DEFAULT_LIMITS } from '../../core/platform/limits.ts';
import type { ObjectStore } from '../../core/platform/ports.ts';
import { createServices, type Services } from '../../core/services.ts';
import { type LocalPorts, localPorts, putDataset } from '../helpers/local-ports.ts';
import { quiet, TENANT } from '../helpers/trainer.ts';

/** The store, counting the bytes read back from it. */
function counting(inner: ObjectStore): { store: ObjectStore; read: () => number } {
  let read = 0;
  const store: ObjectStore = {
    put: (key, body, options) => inner.put(key, body, options),
    putStream: (key, body, options) => inner.putStream(key, body, options),
    head: (key) => inner.head(key),
    list: (prefix, options) => inner.list(prefix, options),
    delete: (key) => inner.delete(key),
    presignGet: (key, options) => inner.presignGet(key, options),
    presignPut: (key, options) => inner.presignPut(key, options),
    get: async (key, options) => {
      const found = await inner.get(key, options);
      read += found?.body.byteLength ?? 0;
      return found;
    },
    getStream: async (key) => {
      const stream = await inner.getStream(key);
      if (!stream) return undefined;
      return (async function* () {
        for await (const chunk of stream) {
          read += chunk.byteLength;
          yield chunk;
        }
      })();
    },
  };
  return { store, read: () => read };
}

describe('countRows', () => {
  let ports: LocalPorts;
  let services: Services;
  let reads: () => number;
  const row = (i: number) => `${i % 97},${(i * 31) % 89},${i % 2 ? 'odd' : 'even'}`;

  before(async () => {
    ports = await localPorts();
    const store = counting(ports.store);
    reads = store.read;
    services = createServices(store.store, ports.queue, {
      log: quiet,
      limits: { ...DEFAULT_LIMITS, maxEpochRows: 1_000_000 },
    });
  });
  after(async () => {
    await ports?.cleanup();
  });

  it('counts a dataset up to 16 MiB exactly and caches the count', async () => {
    const id = await putDataset(
      ports.store,
      TENANT,
      services.newId(),
      `a,b,label\n${[0, 1, 2, 3, 4].map(row).join('\n')}`,
    );
    const meta = await findDatasetMeta(services, TENANT, id);
    assert.ok(meta);
    assert.deepEqual(await countRows(services, TENANT, meta), { rows: 5, estimated: false });
    const cached = await findDatasetMeta(services, TENANT, id);
    assert.equal(cached?.rows, 5);
    const before = reads();
    assert.deepEqual(await countRows(services, TENANT, cached as NonNullable<typeof cached>), {
      rows: 5,
      estimated: false,
    });
    assert.equal(reads(), before, 'a cached count reads no data');
  });

  it('estimates a larger dataset from its first MiB, within 2%, reading no more than that', async () => {
    const lines: string[] = [];
    let bytes = 0;
    for (let i = 0; bytes <= EXACT_COUNT_BYTES + SAMPLE_BYTES; i++) {
      const line = row(i);
      lines.push(line);
      bytes += line.length + 1;
    }
    const id = await putDataset(ports.store, TENANT, services.newId(), `a,b,label\n${lines.join('\n')}\n`);
    const meta = await findDatasetMeta(services, TENANT, id);
    assert.ok(meta);
    const before = reads();
    const { rows, estimated } = await countRows(services, TENANT, meta);
    assert.equal(estimated, true);
    assert.ok(Math.abs(rows - lines.length) / lines.length < 0.02, `${rows} for ${lines.length}`);
    assert.ok(reads() - before <= SAMPLE_BYTES, `read ${reads() - before} bytes`);

    // The quota refuses on the estimate, and says it is one.
    await assert.rejects(
      submitJob(services, TENANT, {
        task: 'classification',
        dataset: { id, label: 'label' },
        training: { epochs: 2 },
      }),
      (error: Error) =>
        /× about \d+ = about \d+ \(rows estimated from the first MiB of the data\)/.test(error.message),
    );
  });
});
