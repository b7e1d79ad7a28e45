/**
 * The one compare-and-swap primitive and its retry policy: every concurrent change applied, stored
 * documents validated on read, a writer that keeps losing ends with a 409 BUSY after a bounded number
 * of tries, and a fenced overwrite asks before taking a document back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { BusyError, CorruptDocumentError, PreconditionFailedError } from '../../core/platform/errors.ts';
import { CAS_RETRY, casBackoffMs, retryDelaySeconds } from '../../core/platform/retry.ts';
import { UNCHANGED, VersionedDocuments } from '../../core/platform/versioned-document.ts';
import { type LocalPorts, localPorts, storeWith } from '../helpers/local-ports.ts';

const counter = z.object({ n: z.int() });

describe('retry policy', () => {
  it('waits between half and all of min(cap, base·2^(n−1)), and stops after its tries', () => {
    const policy = { tries: 5, baseMs: 10, capMs: 50 };
    assert.equal(
      casBackoffMs(1, policy, () => 0),
      5,
    );
    assert.equal(
      casBackoffMs(1, policy, () => 1),
      10,
    );
    assert.equal(
      casBackoffMs(3, policy, () => 1),
      40,
    );
    assert.equal(
      casBackoffMs(4, policy, () => 1),
      50,
      'capped',
    );
    assert.equal(
      casBackoffMs(4, policy, () => 0),
      25,
    );
    assert.equal(
      casBackoffMs(5, policy, () => 0.5),
      undefined,
      'tries spent',
    );
    const worst = Array.from(
      { length: CAS_RETRY.tries - 1 },
      (_, i) => casBackoffMs(i + 1, CAS_RETRY, () => 1) ?? 0,
    );
    const total = worst.reduce((a, b) => a + b, 0);
    assert.ok(total > 3000 && total < 8000, `the whole policy waits at most ${total} ms`);
  });

  it('retries a failed job after 5 s, 10 s, 20 s … at most 5 minutes', () => {
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => retryDelaySeconds(n)),
      [5, 10, 20, 40],
    );
    assert.equal(retryDelaySeconds(50), 300);
  });
});

describe('VersionedDocuments', () => {
  let ports: LocalPorts;
  let docs: VersionedDocuments<typeof counter>;
  before(async () => {
    ports = await localPorts();
    docs = new VersionedDocuments(ports.store, counter, { what: 'counter', sleep: async () => {} });
  });
  after(async () => {
    await ports.cleanup();
  });

  it('applies every one of many concurrent read-modify-writes', async () => {
    const all = new VersionedDocuments(ports.store, counter, { what: 'counter' });
    await all.create('c/many.json', { n: 0 });
    await Promise.all(
      Array.from({ length: 12 }, () => all.update('c/many.json', (c) => ({ n: (c?.n ?? 0) + 1 }))),
    );
    assert.equal((await all.read('c/many.json'))?.value.n, 12);
  });

  it('creates a missing document through update, and UNCHANGED writes nothing', async () => {
    const created = await docs.update('c/new.json', (c) => (c ? UNCHANGED : { n: 1 }));
    assert.equal(created?.value.n, 1);
    const same = await docs.update('c/new.json', () => UNCHANGED);
    assert.equal(same?.etag, created?.etag);
    assert.equal(await docs.update('c/none.json', () => UNCHANGED), undefined);
  });

  it('create is create-once', async () => {
    await docs.create('c/once.json', { n: 1 });
    await assert.rejects(docs.create('c/once.json', { n: 2 }), PreconditionFailedError);
  });

  it('validates on read: a document that fails its schema is a CorruptDocumentError naming it', async () => {
    await ports.store.put('c/bad.json', JSON.stringify({ n: 'one' }));
    await assert.rejects(
      docs.read('c/bad.json'),
      (e: unknown) => e instanceof CorruptDocumentError && /c\/bad\.json/.test(e.message),
    );
    await ports.store.put('c/notjson.json', '{');
    await assert.rejects(docs.read('c/notjson.json'), CorruptDocumentError);
  });

  it('a writer that loses every time ends with a 409 BUSY after the policy’s tries', async () => {
    await docs.create('c/contended.json', { n: 0 });
    let tries = 0;
    const policy = { tries: 4, baseMs: 1, capMs: 1 };
    const losing = new VersionedDocuments(ports.store, counter, {
      what: 'counter',
      retry: policy,
      sleep: async () => {},
    });
    await assert.rejects(
      losing.update('c/contended.json', async (c) => {
        tries++;
        await ports.store.put('c/contended.json', JSON.stringify({ n: (c?.n ?? 0) + 100 })); // someone else wins
        return { n: 1 };
      }),
      (e: unknown) => e instanceof BusyError && e.status === 409 && e.code === 'BUSY',
    );
    assert.equal(tries, 4);
  });

  it('a fenced overwrite asks before taking a document back, and stops when told', async () => {
    const etag = await docs.overwrite('c/owned.json', { n: 1 }, null, async () => {});
    await ports.store.put('c/owned.json', JSON.stringify({ n: 99 })); // a stale writer
    let asked = 0;
    const taken = await docs.overwrite('c/owned.json', { n: 2 }, etag, async () => {
      asked++;
    });
    assert.equal(asked, 1);
    assert.equal((await docs.read('c/owned.json'))?.etag, taken);
    await ports.store.put('c/owned.json', JSON.stringify({ n: 7 })); // the new owner
    await assert.rejects(
      docs.overwrite('c/owned.json', { n: 3 }, taken, async () => {
        throw new Error('fenced');
      }),
      /fenced/,
    );
    assert.equal((await docs.read('c/owned.json'))?.value.n, 7);
  });

  it('does not retry an error that is not a lost compare-and-swap', async () => {
    let puts = 0;
    const failing = storeWith(ports.store, {
      put: async () => {
        puts++;
        throw new Error('disk full');
      },
    });
    const d = new VersionedDocuments(failing, counter, { what: 'counter' });
    await assert.rejects(
      d.update('c/x.json', () => ({ n: 1 })),
      /disk full/,
    );
    assert.equal(puts, 1);
  });
});
