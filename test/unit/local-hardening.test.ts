/**
 * The local stack's own limits: the supervisor's restart delay starts over after a healthy run,
 * concurrent `tenants add` keep every tenant, the filesystem store keeps its files owner-only and
 * leaves no empty folder or temporary file behind, and a data folder that cannot be written stops
 * the start with a message that says what to do.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DataFolderError, prepareDataFolder } from '../../local/data-folder.ts';
import { FsObjectStore } from '../../local/fs-object-store.ts';
import { HEALTHY_WORKER_MS, nextRestart } from '../../local/stack.ts';
import { TenantTokens } from '../../local/tenants.ts';

describe('local stack hardening', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'descent-hardening-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the restart delay doubles while a worker keeps dying, and starts over after a healthy run', () => {
    let state = { restarts: 0, delayMs: 0 };
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      state = nextRestart(state.restarts, 100);
      delays.push(state.delayMs);
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    assert.deepEqual(nextRestart(state.restarts, HEALTHY_WORKER_MS), { restarts: 1, delayMs: 1000 });
  });

  it('concurrent `tenants add` (each with its own view of the file) keep every tenant', async () => {
    const folder = join(dir, 'tenants');
    const names = Array.from({ length: 12 }, (_, i) => `tenant-${i}`);
    const views = await Promise.all(names.map(() => TenantTokens.open(folder)));
    const tokens = await Promise.all(views.map((view, i) => view.set(names[i] as string)));
    const fresh = await TenantTokens.open(folder);
    assert.deepEqual(fresh.names().sort(), [...names].sort());
    for (const [i, token] of tokens.entries()) assert.equal(fresh.tenantFor(token), names[i]);
    const left = (await readdir(folder)).filter((f) => f !== 'tenants.json');
    assert.deepEqual(left, [], 'no lock or temporary file is left');
    assert.equal((await stat(join(folder, 'tenants.json'))).mode & 0o777, 0o600);
  });

  it('the filesystem store writes files 0600 in folders 0700, and a delete leaves no empty folder', async () => {
    const root = join(dir, 'store');
    const store = new FsObjectStore({ root, secret: 's', baseUrl: 'http://127.0.0.1:1' });
    const key = 'tenants/t/jobs/01M8JH2TQYPMBNJ50HMGRP3N6M/model/weights.bin';
    await store.put(key, 'weights');
    await store.put('tenants/t/jobs/keep.json', '{}');
    assert.equal((await stat(join(root, 'objects', ...key.split('/')))).mode & 0o777, 0o600);
    assert.equal((await stat(join(root, 'objects', 'tenants', 't'))).mode & 0o777, 0o700);
    assert.equal((await stat(root)).mode & 0o777, 0o700);
    await store.delete(key);
    assert.deepEqual(await readdir(join(root, 'objects', 'tenants', 't', 'jobs')), ['keep.json']);
    assert.deepEqual(await readdir(join(root, 'meta', 'tenants', 't', 'jobs')), ['keep.json']);
    await store.put(key, 'again'); // the folders come back for a new write
    assert.equal(new TextDecoder().decode((await store.get(key))?.body), 'again');
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
  });

  it('an upload past its limit keeps nothing, not even a temporary file', async () => {
    const root = join(dir, 'streams');
    const store = new FsObjectStore({ root, secret: 's', baseUrl: 'http://127.0.0.1:1' });
    async function* body() {
      for (let i = 0; i < 10; i++) yield new Uint8Array(1000);
    }
    await assert.rejects(store.putStream('a/b', body(), { maxBytes: 5000 }), { status: 413 });
    assert.equal(await store.head('a/b'), undefined);
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
    const stored = await store.putStream('a/b', body(), { maxBytes: 10_000 });
    assert.equal(stored.size, 10_000);
    assert.equal((await store.head('a/b'))?.etag, stored.etag);
  });

  it('a data folder that cannot be written stops the start with a message that names it and what to do', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a folder');
    const error = await prepareDataFolder(join(file, 'data')).catch((e: unknown) => e);
    assert.ok(error instanceof DataFolderError);
    assert.match(
      error.message,
      /The data folder .*a-file\/data cannot be written \(a file is in the way, ENOTDIR\)/,
    );
    assert.match(error.message, /Set DESCENT_DATA_DIR/);
    const fresh = join(dir, 'fresh');
    await prepareDataFolder(fresh);
    assert.equal((await stat(fresh)).mode & 0o777, 0o700);
  });
});
