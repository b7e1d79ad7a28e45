/**
 * From your data to predictions with the real `descent` CLI against the local stack: a spec checked
 * before its upload, a model trained on a raw table (id column, date, text, blanks), raw held-out
 * rows predicted online and as a batch job (the same answers), explained, a malformed file refused
 * naming its row and column, datasets listed and deleted, jobs compared, downloads that do not
 * overwrite, `--version`, group help and a closed pipe.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pkg from '../../package.json' with { type: 'json' };
import { eventually } from '../helpers/eventually.ts';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';
import { BIN, runCli } from './run-cli.ts';

const CHURN = new URL('../../examples/churn/', import.meta.url).pathname;
const TRAIN = join(CHURN, 'customers.csv');
const HELD_OUT = join(CHURN, 'new-customers.csv');

/** A CSV's rows as objects of strings (the files here have no quoted fields). */
const csvRows = (text: string) => {
  const [head, ...lines] = text.trim().split('\n');
  const columns = (head as string).split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [columns[i], v])));
};

describe('descent CLI: from your data to predictions', { timeout: 300_000 }, () => {
  let stack: TestStack;
  let home: string;
  let env: Record<string, string>;
  let jobId: string;

  before(async () => {
    stack = await startTestStack();
    home = await mkdtemp(join(tmpdir(), 'descent-predict-cli-'));
    env = {
      HOME: home,
      XDG_CONFIG_HOME: join(home, 'config'),
      DESCENT_URL: stack.url,
      DESCENT_TOKEN: stack.token,
    };
    const spec = JSON.parse(await readFile(join(CHURN, 'job.json'), 'utf8'));
    await writeFile(
      join(home, 'job.json'),
      JSON.stringify({ ...spec, training: { ...spec.training, epochs: 40 } }),
    );
    const run = await runCli(['train', join(home, 'job.json'), '--data', TRAIN, '--follow', '--json'], env);
    assert.equal(run.code, 0, run.stderr);
    jobId = run.json().job.id;
  });
  after(async () => {
    await stack?.destroy();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('shows the test metrics, the id column left out and the warnings in the summary, and the metric in lists', async () => {
    const result = await runCli(['result', jobId], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /metric\s+training\s+validation\s+test/);
    assert.match(result.stdout, /Not used\s+customer_id \(identifier/);
    assert.match(result.stdout, /Warning.*"customer_id" looks like an identifier/);
    const list = await runCli(['jobs', 'list'], env);
    assert.match(list.stdout, /METRIC/);
    assert.match(list.stdout, new RegExp(`${jobId}.*accuracy 0\\.\\d+`));
  });

  it('predicts a raw held-out file online, adding prediction columns, and will not overwrite without --force', async () => {
    const out = join(home, 'predicted.csv');
    const run = await runCli(['predict', jobId, '--data', HELD_OUT, '--out', out], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /Predicted 200 rows .*\(online\)/);
    const rows = csvRows(await readFile(out, 'utf8'));
    assert.equal(rows.length, 200);
    assert.ok('probability_yes' in (rows[0] as object) && 'customer_id' in (rows[0] as object));
    const right = rows.filter((r) => r.predicted_churned === r.churned).length;
    assert.ok(right / rows.length > 0.8, `accuracy ${right / rows.length}`);

    const again = await runCli(['predict', jobId, '--data', HELD_OUT, '--out', out], env);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists; give --force/);
  });

  it('gives the same predictions as a batch job, and explains them as JSON Lines', async () => {
    const online = csvRows((await runCli(['predict', jobId, '--data', HELD_OUT], env)).stdout).map(
      (r) => r.predicted_churned,
    );
    const out = join(home, 'batch.csv');
    const batch = await runCli(['predict', jobId, '--data', HELD_OUT, '--batch', '--out', out], env);
    assert.equal(batch.code, 0, batch.stderr);
    assert.match(batch.stderr, /batch job/);
    assert.deepEqual(
      csvRows(await readFile(out, 'utf8')).map((r) => r.predicted_churned),
      online,
    );

    const explained = await runCli(
      ['predict', jobId, '--data', HELD_OUT, '--explain', '--format', 'jsonl'],
      env,
    );
    assert.equal(explained.code, 0, explained.stderr);
    const first = JSON.parse(explained.stdout.split('\n')[0] as string);
    for (const c of ['plan', 'signup_date', 'tenure_months'])
      assert.equal(typeof first[`attribution_${c}`], 'number');
    assert.equal(first.attribution_customer_id, undefined);

    const json = await runCli(['predict', jobId, '--data', HELD_OUT, '--json'], env);
    assert.equal(json.code, 0, json.stderr);
    const doc = json.json();
    assert.equal(doc.rows.length, 200);
    assert.deepEqual(
      doc.rows.map((r: { predicted_churned: string }) => r.predicted_churned),
      online,
    );
  });

  it('refuses a malformed row naming its row and column', async () => {
    const bad = join(home, 'bad.csv');
    const lines = (await readFile(HELD_OUT, 'utf8')).trim().split('\n').slice(0, 4);
    lines[2] = (lines[2] as string).replace(/^([^,]*),[^,]*,/, '$1,next tuesday,');
    await writeFile(bad, `${lines.join('\n')}\n`);
    const run = await runCli(['predict', jobId, '--data', bad], env);
    assert.equal(run.code, 3);
    assert.match(
      run.stderr,
      /row 2\), column "signup_date": "next tuesday" is not an ISO-8601 date.*\[INVALID_ROW\]/,
    );
  });

  it('checks a spec before uploading its data, lists and deletes datasets, and trains on an uploaded one', async () => {
    const before = (await runCli(['datasets', 'list', '--all', '--json'], env)).json().datasets.length;
    const badSpec = join(home, 'bad.json');
    await writeFile(
      badSpec,
      JSON.stringify({ task: 'clustering', dataset: { id: '<datasetId>', label: 'churned' } }),
    );
    const refused = await runCli(['train', badSpec, '--data', TRAIN], env);
    assert.equal(refused.code, 3);
    assert.match(refused.stderr, /task/);
    const after = (await runCli(['datasets', 'list', '--all', '--json'], env)).json().datasets;
    assert.equal(after.length, before, 'nothing was uploaded');

    const uploaded = await runCli(['datasets', 'upload', TRAIN, '--json'], env);
    const datasetId = uploaded.json().datasetId;
    const listed = await runCli(['datasets', 'list'], env);
    assert.match(listed.stdout, new RegExp(`${datasetId}\\s+customers.csv\\s+csv`));
    const submitted = await runCli(['train', join(home, 'job.json'), '--dataset', datasetId, '--json'], env);
    assert.equal(submitted.code, 0, submitted.stderr);
    assert.equal(submitted.json().job.spec.dataset.id, datasetId);
    const trainingJob = submitted.json().job.id;
    await runCli(['jobs', 'cancel', trainingJob], env);
    const inUse = await runCli(['datasets', 'delete', datasetId], env);
    if (inUse.code !== 0) {
      // Still running (CANCELLING): refused until the job has ended.
      assert.match(inUse.stderr, /is used by job .*DATASET_IN_USE/s);
      await eventually(
        async () => (await runCli(['jobs', 'show', trainingJob, '--json'], env)).json().status,
        (status) => status === 'CANCELLED',
        { timeoutMs: 60_000 },
      );
      const deleted = await runCli(['datasets', 'delete', datasetId, '--json'], env);
      assert.equal(deleted.code, 0, deleted.stderr);
    }
    const gone = await runCli(['datasets', 'delete', datasetId], env);
    assert.equal(gone.code, 3);
    assert.match(gone.stderr, /DATASET_NOT_FOUND/);
  });

  it('compares jobs side by side, and downloads into descent-models/JOB without overwriting', async () => {
    const compare = await runCli(['compare', jobId, jobId], env);
    assert.equal(compare.code, 0, compare.stderr);
    assert.match(compare.stdout, /validation accuracy/);
    assert.match(compare.stdout, /test accuracy/);

    const first = await runCli(['download', jobId], env, { cwd: home });
    assert.equal(first.code, 0, first.stderr);
    assert.ok(await stat(join(home, 'descent-models', jobId, 'model.json')));
    const second = await runCli(['download', jobId], env, { cwd: home });
    assert.equal(second.code, 2);
    assert.match(second.stderr, /--force/);
    assert.equal((await runCli(['download', jobId, '--force'], env, { cwd: home })).code, 0);
  });

  it('prints its version, a group help for a bare group, and stops quietly when the reader goes away', async () => {
    const version = await runCli(['--version'], env);
    assert.equal(version.code, 0);
    assert.equal(version.stdout.trim(), `descent ${pkg.version}`);
    const group = await runCli(['jobs'], env);
    assert.equal(group.code, 0);
    assert.match(group.stdout, /jobs list/);
    assert.match(group.stdout, /jobs cancel/);

    const piped = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn('sh', ['-c', `"${process.execPath}" "${BIN}" logs ${jobId} | head -1`], {
        env: { PATH: process.env.PATH ?? '', ...env },
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      child.on('close', (code) => resolve({ code, stderr }));
    });
    assert.equal(piped.code, 0);
    assert.doesNotMatch(piped.stderr, /EPIPE|at .+:\d+:\d+/);
  });
});
