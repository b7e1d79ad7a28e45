/**
 * The local adapters shared by several processes, as the local stack's gateway and workers share
 * them: compare-and-swap on the filesystem store and receives on the SQLite queue hold across
 * processes. The child processes start together on a signal from this one, not after a sleep.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PreconditionFailedError } from '../../core/platform/errors.ts';
import { FsObjectStore } from '../../local/fs-object-store.ts';
import { SqliteJobQueue } from '../../local/sqlite-job-queue.ts';

const text = (o: { body: Uint8Array } | undefined) => new TextDecoder().decode(o?.body);

/**
 * Starts `count` processes running `script`; each prints `ready` once set up and waits for `go` on
 * its stdin, so that all of them really contend. Resolves with each one's last line of output.
 */
async function together(count: number, script: string, env: Record<string, string>): Promise<string[]> {
  const children = Array.from({ length: count }, () =>
    spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  const outputs = children.map(
    (child) =>
      new Promise<string[]>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk;
        });
        child.once('error', reject);
        child.once('exit', (code) =>
          code === 0 ? resolve(out.trim().split('\n')) : reject(new Error(`child exited ${code}: ${out}`)),
        );
      }),
  );
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          const onData = (chunk: Buffer) => {
            if (String(chunk).includes('ready')) {
              child.stdout.off('data', onData);
              resolve();
            }
          };
          child.stdout.on('data', onData);
        }),
    ),
  );
  for (const child of children) child.stdin.end('go\n');
  return (await Promise.all(outputs)).map((lines) => lines.at(-1) ?? '');
}

/** The child's side of `together`: announce, then wait for the signal. */
const WAIT_FOR_GO = `
  process.stdout.write('ready\\n');
  await new Promise((resolve) => process.stdin.once('data', resolve));`;

describe('local adapters across processes', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(tmpdir(), 'descent-cross-process-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('compare-and-swap on the filesystem store holds across processes', async () => {
    const root = path.join(dir, 'objects');
    const store = new FsObjectStore({ root, secret: 's', baseUrl: 'http://x' });
    const key = 'cas/counter.json';
    await store.put(key, '0', { ifNoneMatch: '*' });
    const child = `
      const { FsObjectStore } = await import(process.env.STORE_MODULE);
      const store = new FsObjectStore({ root: process.env.ROOT, secret: 's', baseUrl: 'http://x' });
      ${WAIT_FOR_GO}
      for (let i = 0; i < 10; i++) {
        for (;;) {
          const current = await store.get(process.env.KEY);
          try {
            await store.put(process.env.KEY, String(Number(new TextDecoder().decode(current.body)) + 1), { ifMatch: current.etag });
            break;
          } catch (error) {
            if (error.name !== 'PreconditionFailedError') throw error;
          }
        }
      }
      process.stdout.write('done\\n');`;
    const inProcess = async (): Promise<void> => {
      for (let i = 0; i < 10; i++) {
        for (;;) {
          const current = await store.get(key);
          assert.ok(current);
          try {
            await store.put(key, String(Number(text(current)) + 1), { ifMatch: current.etag });
            break;
          } catch (error) {
            if (!(error instanceof PreconditionFailedError)) throw error;
          }
        }
      }
    };
    const children = together(2, child, {
      STORE_MODULE: new URL('../../local/fs-object-store.ts', import.meta.url).href,
      ROOT: root,
      KEY: key,
    });
    await Promise.all([children, inProcess()]);
    assert.equal(text(await store.get(key)), '30');
  });

  it('processes sharing the SQLite queue never both receive one message', async () => {
    const file = path.join(dir, 'queue.db');
    const queue = new SqliteJobQueue({ path: file, queueName: 'q' });
    try {
      for (let i = 0; i < 100; i++) await queue.send(`m${i}`);
      const child = `
        const { SqliteJobQueue } = await import(process.env.QUEUE_MODULE);
        const queue = new SqliteJobQueue({ path: process.env.DB, queueName: 'q' });
        const got = [];
        ${WAIT_FOR_GO}
        for (;;) {
          const messages = await queue.receive({ waitSeconds: 0, maxMessages: 2, visibilityTimeoutSeconds: 60 });
          if (messages.length === 0) break;
          got.push(...messages.map((m) => m.body));
          // Pacing, not synchronisation: SQLite's busy handler is not fair, and a tight loop starves the others.
          await new Promise((resolve) => setTimeout(resolve, 3));
        }
        queue.close();
        process.stdout.write(JSON.stringify(got) + '\\n');`;
      const results = (
        await together(3, child, {
          QUEUE_MODULE: new URL('../../local/sqlite-job-queue.ts', import.meta.url).href,
          DB: file,
        })
      ).map((line) => JSON.parse(line) as string[]);
      const all = results.flat();
      assert.equal(all.length, 100);
      assert.equal(new Set(all).size, 100);
      assert.ok(results.filter((got) => got.length > 0).length >= 2, 'at least two processes received');
      assert.deepEqual(await queue.depth(), { visible: 0, inFlight: 100 });
    } finally {
      queue.close();
    }
  });
});
