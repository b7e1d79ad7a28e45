import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PreconditionFailedError } from '../../core/platform/errors.ts';
import { FsObjectStore, parseStorageUrl, verifyPresigned } from '../../local/fs-object-store.ts';
import { type StorageServer, startStorageServer } from '../helpers/storage-server.ts';
import { objectStoreContract } from './object-store-contract.ts';

const SECRET = 'contract-test-secret';

const makeStore = async (): Promise<{
  store: FsObjectStore;
  root: string;
  server: StorageServer;
  teardown(): Promise<void>;
}> => {
  const root = await fs.mkdtemp(path.join(tmpdir(), 'descent-fs-store-'));
  let url = '';
  const store = new FsObjectStore({ root, secret: SECRET, baseUrl: () => url });
  const server = await startStorageServer(store, SECRET);
  url = server.url;
  return {
    store,
    root,
    server,
    teardown: async () => {
      await server.close();
      await fs.rm(root, { recursive: true, force: true });
    },
  };
};

objectStoreContract('FsObjectStore', async () => {
  const { store, teardown } = await makeStore();
  return { store, enforcesPreconditions: true, teardown };
});

describe('FsObjectStore (local only)', () => {
  let store: FsObjectStore;
  let root: string;
  let server: StorageServer;
  let teardown: () => Promise<void>;

  before(async () => {
    ({ store, root, server, teardown } = await makeStore());
  });
  after(async () => {
    await teardown();
  });

  it('rejects empty, absolute, dot-dot, backslash and control-character keys', async () => {
    for (const key of [
      '',
      '/etc/passwd',
      'a/../b',
      '..',
      'a/./b',
      'a\\b',
      'a\u0000b',
      'a\nb',
      'a//b',
      'a/',
    ]) {
      await assert.rejects(store.put(key, 'x'), /invalid object key/, JSON.stringify(key));
      await assert.rejects(store.get(key), /invalid object key/, JSON.stringify(key));
      await assert.rejects(store.presignGet(key, { expiresInSeconds: 60 }), /invalid object key/);
    }
  });

  it('keeps the ETag and content type across instances, and its own files out of list', async () => {
    const fresh = await makeStore(); // its own root: the whole listing is this test's
    try {
      const { etag } = await fresh.store.put('persist/a.json', '{}', { contentType: 'application/json' });
      const other = new FsObjectStore({ root: fresh.root, secret: SECRET, baseUrl: 'http://unused' });
      const object = await other.get('persist/a.json');
      assert.equal(object?.etag, etag);
      assert.equal(object?.contentType, 'application/json');
      assert.deepEqual(
        (await other.list('')).objects.map((o) => o.key),
        ['persist/a.json'],
      );
      assert.equal(await fs.readFile(path.join(fresh.root, 'objects', 'persist', 'a.json'), 'utf8'), '{}');
    } finally {
      await fresh.teardown();
    }
  });

  it('recomputes the ETag when the sidecar no longer describes the data file', async () => {
    await store.put('heal/x.txt', 'old');
    // As after a crash between the data and the sidecar renames.
    await fs.writeFile(path.join(root, 'objects', 'heal', 'x.txt'), 'new content');
    const expected = (await store.put('heal/y.txt', 'new content')).etag;
    assert.equal((await store.head('heal/x.txt'))?.etag, expected);
    assert.equal((await store.get('heal/x.txt'))?.etag, expected);
    await assert.rejects(store.put('heal/x.txt', 'v', { ifMatch: '"stale"' }), PreconditionFailedError);
    await store.put('heal/x.txt', 'v', { ifMatch: expected });
  });

  it('a key cannot be both an object and a folder', async () => {
    await store.put('clash/a', 'file');
    await assert.rejects(store.put('clash/a/b', 'x'), /clash|ENOTDIR|EEXIST/);
    assert.equal(await store.get('clash/a/b'), undefined);
    assert.equal(text(await store.get('clash/a')), 'file');
  });

  it('breaks a lock left by a crashed process', async () => {
    const key = 'locks/crashed.json';
    await store.put(key, '1');
    const lockFile = path.join(
      root,
      'locks',
      `${createHash('sha256').update(key).digest('hex').slice(0, 40)}.lock`,
    );
    // Older than the stale time:
    await fs.writeFile(lockFile, JSON.stringify({ pid: process.pid, host: 'elsewhere', token: 'old' }));
    const old = new Date(Date.now() - 120_000);
    await fs.utimes(lockFile, old, old);
    await store.put(key, '2');
    // Fresh, but held by a process of this host that is gone:
    await fs.writeFile(lockFile, JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), token: 'dead' }));
    await store.put(key, '3');
    assert.equal(text(await store.get(key)), '3');
    await assert.rejects(fs.stat(lockFile), { code: 'ENOENT' });
  });

  it('times out on a lock held by a live process', async () => {
    const quick = new FsObjectStore({ root, secret: SECRET, baseUrl: 'http://unused', lockTimeoutMs: 200 });
    const key = 'locks/held.json';
    const lockFile = path.join(
      root,
      'locks',
      `${createHash('sha256').update(key).digest('hex').slice(0, 40)}.lock`,
    );
    await fs.mkdir(path.dirname(lockFile), { recursive: true });
    await fs.writeFile(lockFile, JSON.stringify({ pid: process.ppid, host: hostname(), token: 'live' }));
    await assert.rejects(quick.put(key, 'x'), /timed out waiting for the lock/);
    await fs.rm(lockFile);
    await quick.put(key, 'x');
  });

  it('presigned URLs carry an HMAC that verifyPresigned checks, expiry after the signature', async () => {
    const url = new URL(
      await store.presignPut('signed/a.bin', { expiresInSeconds: 60, contentType: 'image/png' }),
    );
    assert.equal(url.origin, server.url);
    assert.equal(url.pathname, '/_storage/signed/a.bin');
    const parsed = parseStorageUrl(url);
    assert.ok(parsed);
    assert.equal(parsed.method, 'PUT');
    assert.equal(parsed.contentType, 'image/png');
    const now = Math.floor(Date.now() / 1000);
    assert.equal(verifyPresigned(SECRET, parsed, now), 'ok');
    assert.equal(verifyPresigned(SECRET, parsed, now + 120), 'expired');
    assert.equal(verifyPresigned('another-secret', parsed, now), 'invalid');
    assert.equal(verifyPresigned(SECRET, { ...parsed, key: 'signed/b.bin' }, now), 'invalid');
    assert.equal(verifyPresigned(SECRET, { ...parsed, method: 'GET' }, now), 'invalid');
    assert.equal(verifyPresigned(SECRET, { ...parsed, contentType: 'text/html' }, now), 'invalid');
    assert.equal(verifyPresigned(SECRET, { ...parsed, expires: parsed.expires + 3600 }, now), 'invalid');
    assert.equal(verifyPresigned(SECRET, { ...parsed, signature: 'zz' }, now), 'invalid');
    assert.equal(parseStorageUrl(new URL('http://h/other/path?method=GET')), undefined);
    assert.equal(
      parseStorageUrl(new URL('http://h/_storage/a/%2E%2E/b?method=GET&expires=1&signature=x')),
      undefined,
    );
  });

  it('encodes each key segment in presigned URLs', async () => {
    const key = 'odd names/ä b?#%.txt';
    const url = await store.presignPut(key, { expiresInSeconds: 60 });
    assert.equal(parseStorageUrl(new URL(url))?.key, key);
    const put = await fetch(url, { method: 'PUT', body: 'odd' });
    assert.equal(put.status, 200);
    const got = await fetch(await store.presignGet(key, { expiresInSeconds: 60 }));
    assert.equal(await got.text(), 'odd');
  });

  it('the storage server rejects forged, expired, wrong-method and wrong-content-type requests', async () => {
    await store.put('signed/secret.txt', 'secret');
    const good = new URL(await store.presignGet('signed/secret.txt', { expiresInSeconds: 60 }));

    const forged = new URL(good);
    forged.pathname = '/_storage/signed/other.txt';
    assert.equal((await drain(fetch(forged))).status, 403);

    const tampered = new URL(good);
    tampered.searchParams.set('expires', String(Number(good.searchParams.get('expires')) + 3600));
    assert.equal((await drain(fetch(tampered))).status, 403);

    const stale = signedUrlExpiredAt(good, 'signed/secret.txt', 1000);
    const expiredResponse = await fetch(stale);
    assert.equal(expiredResponse.status, 403);
    assert.match(await expiredResponse.text(), /URL_EXPIRED/);

    assert.equal((await drain(fetch(good, { method: 'PUT', body: 'overwrite' }))).status, 403);
    const putUrl = await store.presignPut('signed/typed.txt', {
      expiresInSeconds: 60,
      contentType: 'text/plain',
    });
    const wrongType = await drain(
      fetch(putUrl, { method: 'PUT', body: 'x', headers: { 'content-type': 'text/html' } }),
    );
    assert.equal(wrongType.status, 403);
    assert.equal(await store.head('signed/typed.txt'), undefined);
    assert.equal(text(await store.get('signed/secret.txt')), 'secret');
    assert.equal((await fetch(good)).status, 200);
  });
});

const text = (object: { body: Uint8Array } | undefined): string | undefined =>
  object === undefined ? undefined : new TextDecoder().decode(object.body);

const drain = async (response: Promise<Response>): Promise<Response> => {
  const result = await response;
  await result.arrayBuffer();
  return result;
};

/** A correctly signed GET URL that expired at `expires` (unix seconds). */
const signedUrlExpiredAt = (template: URL, key: string, expires: number): URL => {
  const url = new URL(template);
  url.searchParams.set('expires', String(expires));
  url.searchParams.set(
    'signature',
    createHmac('sha256', SECRET).update(`GET\n${key}\n${expires}`).digest('hex'),
  );
  return url;
};
