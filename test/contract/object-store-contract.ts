/**
 * The `ObjectStore` contract: every adapter runs these cases. Precondition cases run only where the
 * backend enforces preconditions (the fauxqs S3 emulator does not) and are reported as skipped there.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it, type TestContext } from 'node:test';
import { PreconditionFailedError } from '../../core/platform/errors.ts';
import type { ObjectInfo, ObjectStore } from '../../core/platform/ports.ts';

export interface ObjectStoreFixture {
  readonly store: ObjectStore;
  /** Whether `ifMatch` / `ifNoneMatch` are enforced by the backend. */
  readonly enforcesPreconditions: boolean;
  /** Set when the backend does not list in bytewise (UTF-8) order: the reason that case is skipped. */
  readonly bytewiseListingSkipReason?: string;
  teardown(): Promise<void>;
}

export const PRECONDITIONS_SKIP_REASON =
  'the fauxqs emulator does not enforce S3 preconditions; covered by the local store';

const text = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : new TextDecoder().decode(bytes);

/** An error of the body's own, which putStream must pass on as itself (a cancel, a lost lease). */
class ProducerFailed extends Error {}

const bytewise = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

export function objectStoreContract(name: string, setup: () => Promise<ObjectStoreFixture>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let fixture: ObjectStoreFixture | undefined;
    const store = (): ObjectStore => {
      assert.ok(fixture, 'setup did not run');
      return fixture.store;
    };
    /** A fresh folder per case, so that cases never see each other's objects. */
    const folder = (): string => `contract/${randomUUID()}/`;
    /** Runs `body` only where preconditions are enforced; otherwise marks the case skipped. */
    const withPreconditions = (body: () => Promise<void>) => async (t: TestContext) => {
      if (!fixture?.enforcesPreconditions) {
        t.skip(PRECONDITIONS_SKIP_REASON);
        return;
      }
      await body();
    };

    before(async () => {
      fixture = await setup();
    });
    after(async () => {
      await fixture?.teardown();
    });

    it('put then get round-trips every byte value, with the returned ETag and content type', async () => {
      const key = `${folder()}bytes.bin`;
      const body = Uint8Array.from({ length: 512 }, (_, i) => i % 256);
      const { etag } = await store().put(key, body, { contentType: 'application/octet-stream' });
      const object = await store().get(key);
      assert.ok(object);
      assert.deepEqual(new Uint8Array(object.body), body);
      assert.equal(object.etag, etag);
      assert.equal(object.key, key);
      assert.equal(object.size, 512);
      assert.equal(object.contentType, 'application/octet-stream');
      assert.ok(object.lastModified instanceof Date);
    });

    it('put of a string stores its UTF-8 bytes', async () => {
      const key = `${folder()}greeting.txt`;
      await store().put(key, 'héllo ✓', { contentType: 'text/plain; charset=utf-8' });
      const object = await store().get(key);
      assert.equal(text(object?.body), 'héllo ✓');
      assert.equal(object?.size, Buffer.byteLength('héllo ✓'));
      assert.equal(object?.contentType, 'text/plain; charset=utf-8');
    });

    it('the ETag changes when the content changes and is quoted like an HTTP entity tag', async () => {
      const key = `${folder()}job.json`;
      const first = await store().put(key, '{"v":1}');
      const second = await store().put(key, '{"v":2}');
      assert.notEqual(first.etag, second.etag);
      assert.match(second.etag, /^"[^"]+"$/);
      assert.equal((await store().head(key))?.etag, second.etag);
      assert.equal(text((await store().get(key))?.body), '{"v":2}');
    });

    it('head describes an object without its body', async () => {
      const key = `${folder()}model.json`;
      const { etag } = await store().put(key, 'x'.repeat(300));
      const info = await store().head(key);
      assert.ok(info);
      assert.equal(info.key, key);
      assert.equal(info.etag, etag);
      assert.equal(info.size, 300);
      assert.ok(info.lastModified instanceof Date);
      assert.ok(Math.abs(info.lastModified.getTime() - Date.now()) < 60_000);
      assert.equal('body' in info, false);
    });

    it('get with a range returns the inclusive slice, clamps the end, and keeps the full size', async () => {
      const key = `${folder()}digits.txt`;
      await store().put(key, '0123456789');
      const middle = await store().get(key, { range: { start: 2, end: 5 } });
      assert.equal(text(middle?.body), '2345');
      assert.equal(middle?.size, 10);
      const tail = await store().get(key, { range: { start: 7, end: 1000 } });
      assert.equal(text(tail?.body), '789');
      const first = await store().get(key, { range: { start: 0, end: 0 } });
      assert.equal(text(first?.body), '0');
      assert.equal(middle?.etag, (await store().head(key))?.etag);
    });

    it('getStream yields the whole body in chunks; a missing key gives undefined', async () => {
      const key = `${folder()}big.bin`;
      const body = new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => (i * 31) & 0xff);
      await store().put(key, body);
      const stream = await store().getStream(key);
      assert.ok(stream);
      const chunks: Uint8Array[] = [];
      for await (const chunk of stream) chunks.push(chunk);
      assert.ok(chunks.length > 1, 'arrives in more than one chunk');
      assert.deepEqual(Buffer.concat(chunks), Buffer.from(body));
      assert.equal(await store().getStream(`${folder()}missing.bin`), undefined);
    });

    it('putStream stores a body that arrives in chunks (past one multipart part), with its size and ETag', async () => {
      const key = `${folder()}streamed.csv`;
      const chunk = (i: number) => new Uint8Array(256 * 1024).map((_, j) => (i * 7 + j) & 0xff);
      const body = async function* () {
        for (let i = 0; i < 26; i++) yield chunk(i); // 6.5 MiB: two parts of S3's 5 MiB
      };
      const stored = await store().putStream(key, body(), {
        contentType: 'text/csv',
        maxBytes: 7 * 1024 * 1024,
      });
      assert.equal(stored.size, 26 * 256 * 1024);
      const found = await store().get(key);
      assert.deepEqual(
        Buffer.from(found?.body ?? []),
        Buffer.concat(Array.from({ length: 26 }, (_, i) => chunk(i))),
      );
      assert.equal(found?.contentType, 'text/csv');
      assert.equal(found?.etag, stored.etag);
      const small = await store().putStream(
        `${folder()}small.txt`,
        (async function* () {
          yield new TextEncoder().encode('a,b\n');
        })(),
        { maxBytes: 10 },
      );
      assert.equal(small.size, 4);
    });

    it('putStream keeps nothing when the body grows past maxBytes (413) or throws (its own error)', async () => {
      const base = folder();
      const over = async function* () {
        for (let i = 0; i < 8; i++) yield new Uint8Array(1024 * 1024);
      };
      await assert.rejects(store().putStream(`${base}over.bin`, over(), { maxBytes: 6 * 1024 * 1024 }), {
        status: 413,
      });
      const failing = async function* () {
        yield new Uint8Array(6 * 1024 * 1024);
        throw new ProducerFailed('the producer failed');
      };
      await assert.rejects(
        store().putStream(`${base}failed.bin`, failing(), { maxBytes: 1 << 30 }),
        ProducerFailed,
      );
      assert.equal(await store().head(`${base}over.bin`), undefined);
      assert.equal(await store().head(`${base}failed.bin`), undefined);
      assert.deepEqual((await store().list(base)).objects, []);
    });

    it('get and head of a missing key return undefined', async () => {
      const key = `${folder()}missing.json`;
      assert.equal(await store().get(key), undefined);
      assert.equal(await store().get(key, { range: { start: 0, end: 3 } }), undefined);
      assert.equal(await store().head(key), undefined);
    });

    it('list returns the objects under a prefix in ascending key order, folders interleaved', async () => {
      const base = folder();
      const names = ['b', 'a/b', 'a-c', 'a.d', 'a/a/z', 'z/y/x/w', 'c0'];
      for (const name of names) await store().put(`${base}${name}`, name);
      await store().put(`contract-outside-${randomUUID()}`, 'not listed');
      const page = await store().list(base);
      assert.deepEqual(
        page.objects.map((o) => o.key),
        names.map((n) => `${base}${n}`).sort(bytewise),
      );
      assert.equal(page.nextCursor, undefined);
      const b = page.objects.find((o) => o.key === `${base}b`);
      assert.equal(b?.size, 1);
      assert.match(b?.etag ?? '', /^"[^"]+"$/);
    });

    it('list orders keys bytewise: upper case before lower case, non-ASCII last', async (t) => {
      if (fixture?.bytewiseListingSkipReason !== undefined) {
        t.skip(fixture.bytewiseListingSkipReason);
        return;
      }
      const base = folder();
      const names = ['b', 'B', 'é', 'a', 'Z', '~', '_'];
      for (const name of names) await store().put(`${base}${name}`, name);
      const page = await store().list(base);
      assert.deepEqual(
        page.objects.map((o) => o.key.slice(base.length)),
        ['B', 'Z', '_', 'a', 'b', '~', 'é'],
      );
    });

    it('list pages with limit and cursor, and the pages add up to the whole listing', async () => {
      const base = folder();
      const keys = Array.from({ length: 7 }, (_, i) => `${base}item-${i}`);
      for (const key of keys) await store().put(key, key);
      const seen: ObjectInfo[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await store().list(base, { limit: 3, ...(cursor === undefined ? {} : { cursor }) });
        assert.ok(page.objects.length <= 3);
        seen.push(...page.objects);
        cursor = page.nextCursor;
        pages++;
        assert.ok(pages <= 5, 'pagination does not end');
      } while (cursor !== undefined);
      assert.equal(pages, 3);
      assert.deepEqual(
        seen.map((o) => o.key),
        keys,
      );
    });

    it('list matches a prefix that is not a folder boundary', async () => {
      const base = folder();
      const keys = ['jobs/01J', 'jobs/01JA/job.json', 'jobs/01JB/job.json', 'jobs/02X/job.json', 'jobs0'];
      for (const key of keys) await store().put(`${base}${key}`, key);
      const page = await store().list(`${base}jobs/01J`);
      assert.deepEqual(
        page.objects.map((o) => o.key),
        [`${base}jobs/01J`, `${base}jobs/01JA/job.json`, `${base}jobs/01JB/job.json`],
      );
      const jobs = await store().list(`${base}jobs/`);
      assert.equal(jobs.objects.length, 4);
    });

    it('list of a prefix with no objects is empty', async () => {
      const page = await store().list(`${folder()}nothing/here`);
      assert.deepEqual(page.objects, []);
      assert.equal(page.nextCursor, undefined);
    });

    it('delete removes an object, and deleting a missing key is not an error', async () => {
      const base = folder();
      await store().put(`${base}a/b.txt`, 'b');
      await store().put(`${base}a/c.txt`, 'c');
      await store().delete(`${base}a/b.txt`);
      assert.equal(await store().head(`${base}a/b.txt`), undefined);
      assert.equal(await store().get(`${base}a/b.txt`), undefined);
      await store().delete(`${base}a/b.txt`);
      await store().delete(`${base}never/existed`);
      assert.deepEqual(
        (await store().list(base)).objects.map((o) => o.key),
        [`${base}a/c.txt`],
      );
    });

    it('a presigned PUT then a presigned GET round-trip the bytes over HTTP', async () => {
      const key = `${folder()}upload/data.csv`;
      const body = 'x,y\n1,2\n3,4\n';
      const putUrl = await store().presignPut(key, { expiresInSeconds: 60, contentType: 'text/csv' });
      const put = await fetch(putUrl, { method: 'PUT', body, headers: { 'content-type': 'text/csv' } });
      assert.equal(put.status, 200, await put.clone().text());
      await put.arrayBuffer();
      const stored = await store().get(key);
      assert.equal(text(stored?.body), body);
      assert.equal(stored?.contentType, 'text/csv');

      const getUrl = await store().presignGet(key, { expiresInSeconds: 60 });
      const got = await fetch(getUrl);
      assert.equal(got.status, 200);
      assert.equal(await got.text(), body);
    });

    it(
      'ifNoneMatch "*" creates an object once and rejects a second create',
      withPreconditions(async () => {
        const key = `${folder()}once.json`;
        const { etag } = await store().put(key, 'first', { ifNoneMatch: '*' });
        await assert.rejects(store().put(key, 'second', { ifNoneMatch: '*' }), PreconditionFailedError);
        const object = await store().get(key);
        assert.equal(text(object?.body), 'first');
        assert.equal(object?.etag, etag);
      }),
    );

    it(
      'ifMatch with the current ETag replaces the object; a stale ETag is rejected and changes nothing',
      withPreconditions(async () => {
        const key = `${folder()}job.json`;
        const v1 = await store().put(key, 'v1');
        const v2 = await store().put(key, 'v2', { ifMatch: v1.etag });
        assert.notEqual(v2.etag, v1.etag);
        await assert.rejects(store().put(key, 'v3', { ifMatch: v1.etag }), PreconditionFailedError);
        const object = await store().get(key);
        assert.equal(text(object?.body), 'v2');
        assert.equal(object?.etag, v2.etag);
      }),
    );

    it(
      'ifMatch on a missing key is rejected',
      withPreconditions(async () => {
        const key = `${folder()}absent.json`;
        await assert.rejects(
          store().put(key, 'x', { ifMatch: '"0123456789abcdef"' }),
          PreconditionFailedError,
        );
        assert.equal(await store().head(key), undefined);
      }),
    );

    it(
      'ten concurrent compare-and-swap increments with retry end at exactly ten',
      withPreconditions(async () => {
        const key = `${folder()}counter.json`;
        await store().put(key, '0', { ifNoneMatch: '*' });
        const increment = async (): Promise<void> => {
          for (;;) {
            const current = await store().get(key);
            assert.ok(current);
            const next = String(Number(text(current.body)) + 1);
            try {
              await store().put(key, next, { ifMatch: current.etag });
              return;
            } catch (error) {
              if (!(error instanceof PreconditionFailedError)) throw error;
            }
          }
        };
        await Promise.all(Array.from({ length: 10 }, increment));
        assert.equal(text((await store().get(key))?.body), '10');
      }),
    );
  });
}
