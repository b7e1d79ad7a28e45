/**
 * Run under a file-size limit (`ulimit -f`) by `test/integration/storage-full.test.ts`: every write
 * past the limit fails with EFBIG, as writes to a full disk fail with ENOSPC, so the real filesystem
 * store and gateway meet a real failed write. Prints what it saw as one JSON line.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startEphemeralStack } from '../../local/ephemeral-stack.ts';
import { FsObjectStore } from '../../local/fs-object-store.ts';

// The kernel signals a write past the limit with SIGXFSZ (which would kill the process): handled,
// the write fails with EFBIG instead.
process.on('SIGXFSZ', () => {});

const dir = process.argv[2] as string;
const big = new Uint8Array(400 * 1024).fill(65);
const result: Record<string, unknown> = {};

const store = new FsObjectStore({ root: join(dir, 'store'), secret: 's', baseUrl: 'http://127.0.0.1:1' });
const failed = await store.put('a/big.bin', big).then(
  () => undefined,
  (error: Error & { status?: number }) => ({
    name: error.name,
    status: error.status,
    message: error.message,
  }),
);
result.put = failed;
result.putLeft = await readdir(join(dir, 'store', 'tmp'));
result.putStored = (await store.head('a/big.bin')) !== undefined;
result.smallAfter = (await store.put('a/small.bin', 'fits')).etag !== undefined;

const stack = await startEphemeralStack({ dataDir: join(dir, 'stack'), workers: 0 });
try {
  const created = await stack.call('POST', '/datasets', { body: { name: 'big', format: 'csv' } });
  result.createStatus = created.status;
  const upload = await fetch(created.body.uploadUrl, {
    method: 'PUT',
    headers: created.body.uploadHeaders,
    body: big,
  });
  result.uploadStatus = upload.status;
  result.uploadBody = await upload.json();
  result.uploadLeft = await readdir(join(dir, 'stack', 'objects', 'tmp'));
  const job = await stack.call('POST', '/jobs', {
    body: { task: 'classification', dataset: { id: created.body.datasetId, label: 'y' } },
  });
  result.jobCode = job.body.error?.code;
} finally {
  await stack.stop();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
