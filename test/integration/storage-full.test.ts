/**
 * A full storage, for real: a child process runs the filesystem store and the local gateway under a
 * file-size limit (`ulimit -f`), so writes past it fail (EFBIG, as ENOSPC on a full disk). The store
 * throws a `StorageFullError` and keeps no temporary file; an upload gets a 507 that says so; writes
 * that fit still work. A trainer whose artifacts cannot be written fails the job once, STORAGE_FULL.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { StorageFullError } from '../../core/platform/errors.ts';
import { storeWith } from '../helpers/local-ports.ts';
import { TENANT, type TrainerFixture, trainerFixture } from '../helpers/trainer.ts';

const CHILD = fileURLToPath(new URL('../helpers/storage-full-child.ts', import.meta.url));

describe('a full storage', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'descent-full-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the store throws StorageFullError and leaves no temporary file; an upload is a 507; small writes still work', async () => {
    // 128 KiB per file: the state the stack writes fits, a 400 KiB body does not.
    const { stdout } = await promisify(execFile)(
      'bash',
      ['-c', `ulimit -f 128 && exec "${process.execPath}" "${CHILD}" "${dir}"`],
      { env: { ...process.env, DESCENT_LOG_LEVEL: 'error' }, timeout: 120_000 },
    );
    const result = JSON.parse(stdout.trim().split('\n').at(-1) as string);
    assert.equal(result.put.name, 'StorageFullError');
    assert.equal(result.put.status, 507);
    assert.match(result.put.message, /no room for this write \(EFBIG\)/);
    assert.deepEqual(result.putLeft, []);
    assert.equal(result.putStored, false);
    assert.equal(result.smallAfter, true);
    assert.equal(result.createStatus, 201);
    assert.equal(result.uploadStatus, 507);
    assert.equal(result.uploadBody.error.code, 'INSUFFICIENT_STORAGE');
    assert.deepEqual(result.uploadLeft, []);
    assert.equal(result.jobCode, 'DATASET_NOT_UPLOADED');
  });

  it('`npm start` on a data folder it cannot write says so in one line, without a stack trace', async () => {
    const blocker = join(dir, 'not-a-folder');
    await writeFile(blocker, 'x');
    const main = fileURLToPath(new URL('../../local/main.ts', import.meta.url));
    const run = await promisify(execFile)(process.execPath, [main], {
      env: {
        ...process.env,
        DESCENT_DATA_DIR: join(blocker, 'data'),
        DESCENT_PORT: '0',
        DESCENT_WORKERS: '0',
      },
      timeout: 60_000,
    }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      /^descent cannot start: The data folder .*not-a-folder\/data cannot be written \(a file is in the way, ENOTDIR\)\. Set DESCENT_DATA_DIR/,
    );
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  });

  describe('in the trainer', () => {
    let fixture: TrainerFixture;
    before(async () => {
      fixture = await trainerFixture();
    });
    after(async () => {
      await fixture?.cleanup();
    });

    it('a job whose model cannot be written fails once with STORAGE_FULL, not a retry', async () => {
      const full = storeWith(fixture.ports.store, {
        put: (key, body, options) =>
          key.includes('/model/') || key.includes('/checkpoints/')
            ? Promise.reject(new StorageFullError())
            : fixture.ports.store.put(key, body, options),
      });
      const id = await fixture.dataset(
        `x,label\n${Array.from({ length: 20 }, (_, i) => `${i},${i % 2}`).join('\n')}\n`,
      );
      const job = await fixture.submit({ dataset: { id, label: 'label' }, training: { epochs: 2 } });
      const { runJob } = await import('../../trainer/run-job.ts');
      const outcome = await runJob(
        { ...fixture.deps, store: full },
        { tenant: TENANT, jobId: job.id },
        new AbortController().signal,
      );
      assert.equal(outcome, 'done');
      const record = await fixture.record(job.id);
      assert.equal(record.status, 'FAILED');
      assert.equal(record.attempt, 1);
      assert.equal(record.error?.code, 'STORAGE_FULL');
      assert.match(record.error?.message ?? '', /storage is full/);
    });
  });
});
