/**
 * The local gateway under hostile clients: a request target that is not a URL or a request Node cannot
 * parse is a 400 (never a 500), a client that disconnects mid-request is not logged as an error,
 * uploads are streamed to storage (a body over the limit keeps nothing), one presigned URL takes one
 * upload at a time, and at most `maxConcurrentUploads` run at once.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../core/platform/log.ts';
import { eventually } from '../helpers/eventually.ts';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';

/** Sends raw bytes and resolves with what the server answered before closing (or `timeoutMs`). */
function raw(url: string, text: string, timeoutMs = 5000): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text));
    let answer = '';
    socket.on('data', (d) => {
      answer += d.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
    setTimeout(() => {
      socket.destroy();
      resolve(answer);
    }, timeoutMs).unref();
  });
}

/** Starts a PUT of `length` bytes to a presigned URL, sending only `sent` of them; the socket stays open. */
function startUpload(
  uploadUrl: string,
  length: number,
  sent: number,
): Promise<{ socket: Socket; answer: Promise<string> }> {
  const url = new URL(uploadUrl);
  return new Promise((resolve) => {
    const socket = connect(Number(url.port), url.hostname, () => {
      socket.write(
        `PUT ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: text/csv\r\nContent-Length: ${length}\r\n\r\n`,
      );
      socket.write('x'.repeat(sent));
      let text = '';
      const answer = new Promise<string>((done) => {
        socket.on('data', (d) => {
          text += d.toString();
          if (text.includes('\r\n\r\n')) done(text);
        });
        socket.on('close', () => done(text));
      });
      resolve({ socket, answer });
    });
  });
}

describe('gateway under hostile clients', () => {
  let stack: TestStack;
  const lines: { level: string; message: string }[] = [];
  before(async () => {
    stack = await startTestStack({
      workers: 0,
      log: createLogger({}, (line) => lines.push(JSON.parse(line)), 'debug'),
      limits: { maxConcurrentUploads: 2, maxDatasetBytes: 100_000 },
    });
  });
  after(async () => {
    await stack?.destroy();
  });
  const tmpFiles = async () => readdir(join(stack.dataDir, 'objects', 'tmp')).catch(() => [] as string[]);
  const dataset = async () =>
    (await stack.call('POST', '/datasets', { body: { name: 'd', format: 'csv' } })).body;

  it('a request target that is not a URL, and a request line Node cannot parse, are 400s', async () => {
    const target = await raw(stack.url, 'GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(target, /^HTTP\/1\.1 400/);
    assert.match(target, /MALFORMED_REQUEST/);
    const garbage = await raw(stack.url, 'THIS IS NOT HTTP\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400/);
    assert.equal(lines.filter((l) => l.level === 'error').length, 0);
  });

  it('a client that disconnects in the middle of its body is not logged as an error', async () => {
    const post = connect(Number(new URL(stack.url).port), '127.0.0.1', () => {
      post.write(
        `POST /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${stack.token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"task":`,
      );
      setTimeout(() => post.destroy(), 50);
    });
    await eventually(
      async () => lines.filter((l) => l.message === 'client disconnected').length,
      (n) => n > 0,
      { what: 'the disconnect to be seen' },
    );
    assert.deepEqual(
      lines.filter((l) => l.level === 'error'),
      [],
    );
  });

  it('one presigned URL takes one upload at a time: a second PUT while the first runs is a 409', async () => {
    const created = await dataset();
    const first = await startUpload(created.uploadUrl, 2000, 1000);
    await eventually(tmpFiles, (files) => files.length > 0, { what: 'the first upload to start writing' });
    const second = await fetch(created.uploadUrl, {
      method: 'PUT',
      headers: created.uploadHeaders,
      body: 'a,b\n1,2\n',
    });
    assert.equal(second.status, 409);
    assert.equal(((await second.json()) as { error: { code: string } }).error.code, 'UPLOAD_IN_PROGRESS');
    first.socket.write('x'.repeat(1000));
    assert.match(await first.answer, /^HTTP\/1\.1 200/);
    first.socket.destroy();
    assert.equal(
      (await fetch(created.uploadUrl, { method: 'PUT', headers: created.uploadHeaders, body: 'a\n1\n' }))
        .status,
      200,
    );
  });

  it('at most maxConcurrentUploads uploads run at once: the next gets a 503 with Retry-After', async () => {
    const [a, b, c] = [await dataset(), await dataset(), await dataset()];
    const held = [await startUpload(a.uploadUrl, 2000, 100), await startUpload(b.uploadUrl, 2000, 100)];
    await eventually(tmpFiles, (files) => files.length >= 2, { what: 'two uploads to start writing' });
    const third = await fetch(c.uploadUrl, { method: 'PUT', headers: c.uploadHeaders, body: 'a\n1\n' });
    assert.equal(third.status, 503);
    assert.equal(third.headers.get('retry-after'), '1');
    for (const upload of held) {
      upload.socket.write('x'.repeat(1900));
      assert.match(await upload.answer, /^HTTP\/1\.1 200/);
      upload.socket.destroy();
    }
    assert.equal(
      (await fetch(c.uploadUrl, { method: 'PUT', headers: c.uploadHeaders, body: 'a\n1\n' })).status,
      200,
    );
  });

  it('an upload over the limit sent without a length is refused as it streams, and keeps nothing', async () => {
    const created = await dataset();
    const chunks = Array.from({ length: 30 }, () => new TextEncoder().encode('y'.repeat(10_000)));
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks.shift();
        if (next) controller.enqueue(next);
        else controller.close();
      },
    });
    const response = await fetch(created.uploadUrl, {
      method: 'PUT',
      headers: created.uploadHeaders,
      body,
      duplex: 'half',
    } as RequestInit).catch((error: unknown) => error);
    if (response instanceof Response) assert.equal(response.status, 413);
    // Either way (a 413, or the connection closed while the client still sent), nothing is kept.
    await eventually(tmpFiles, (files) => files.length === 0, { what: 'the temporary file to go' });
    const job = await stack.call('POST', '/jobs', {
      body: { task: 'classification', dataset: { id: created.datasetId, label: 'y' } },
    });
    assert.equal(job.body.error?.code, 'DATASET_NOT_UPLOADED');
  });
});
