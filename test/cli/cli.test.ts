/**
 * The real `descent` CLI, spawned as a user would run it, against the real local stack: training
 * with --follow, --json output, a cancel, a failed job, usage and auth errors, the config file,
 * the local defaults and Cognito credentials (against a stand-in token endpoint).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type FakeServer, startFakeServer } from '../client/fake-server.ts';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';
import { runCli } from './run-cli.ts';

const IRIS = new URL('../../examples/iris/iris.csv', import.meta.url).pathname;

/** A tiny iris job with the examples' placeholder dataset id, as `train --data` fills it. */
const tinySpec = (training: Record<string, unknown> = {}, rest: Record<string, unknown> = {}) => ({
  name: 'cli-iris',
  task: 'classification',
  dataset: { id: '<datasetId>', label: 'species' },
  model: { layers: [{ type: 'dense', units: 8, activation: 'relu' }] },
  training: {
    optimizer: { type: 'adam', learningRate: 0.05 },
    epochs: 8,
    batchSize: 16,
    seed: 1,
    ...training,
  },
  ...rest,
});

const noStackTrace = (text: string) =>
  assert.doesNotMatch(text, /\n\s+at .+\(.+:\d+:\d+\)/, 'no stack trace');

describe('descent CLI against the local stack', { timeout: 240_000 }, () => {
  let stack: TestStack;
  let home: string;
  /** Explicit endpoint and token, as a script would set them. */
  let env: Record<string, string>;
  let specFile: string;
  /** A job trained to the end through the CLI, once, by whichever test needs it first. */
  let finished: Promise<any> | undefined;
  const trainedJob = () => {
    finished ??= (async () => {
      const run = await runCli(['train', specFile, '--data', IRIS, '--follow', '--json'], env);
      assert.equal(run.code, 0, run.stderr);
      return { ...run.json(), stderr: run.stderr };
    })();
    return finished;
  };

  const writeSpec = async (name: string, spec: unknown) => {
    const path = join(home, name);
    await writeFile(path, JSON.stringify(spec));
    return path;
  };

  before(async () => {
    stack = await startTestStack();
    home = await mkdtemp(join(tmpdir(), 'descent-cli-'));
    env = {
      HOME: home,
      XDG_CONFIG_HOME: join(home, 'config'),
      DESCENT_URL: stack.url,
      DESCENT_TOKEN: stack.token,
    };
    specFile = await writeSpec('job.json', tinySpec());
  });
  after(async () => {
    await stack?.destroy();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('prints help with exit 0, and a usage error with exit 2', async () => {
    const help = await runCli(['--help'], env);
    assert.equal(help.code, 0);
    for (const command of [
      'config',
      'datasets upload',
      'train SPEC',
      'jobs list',
      'jobs cancel',
      'logs JOB',
      'result JOB',
      'download JOB',
    ])
      assert.ok(help.stdout.includes(command), command);

    const unknown = await runCli(['frobnicate'], env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);

    const missing = await runCli(['train'], env);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing SPEC/);
    assert.match(missing.stderr, /Usage: descent train SPEC/);

    const badOption = await runCli(['jobs', 'list', '--colour'], env);
    assert.equal(badOption.code, 2);
    assert.match(badOption.stderr, /Unknown option '--colour'/);

    const noData = await runCli(['train', specFile], env);
    assert.equal(noData.code, 2);
    assert.match(noData.stderr, /give --data FILE/);
  });

  it('train --data --follow --json uploads, trains to completion and prints the job and its result', async () => {
    const out = await trainedJob();
    assert.equal(out.dataset.format, 'csv');
    assert.equal(out.dataset.bytes, (await stat(IRIS)).size);
    assert.equal(out.job.status, 'SUCCEEDED');
    assert.equal(out.job.spec.dataset.id, out.dataset.datasetId, 'the placeholder was filled');
    assert.equal(out.job.progress.epoch, 8);
    assert.ok(out.result.report.validation.accuracy >= 0);
    assert.deepEqual(Object.keys(out.result.artifacts).sort(), [
      'loss-curve.svg',
      'model.json',
      'preprocessing.json',
      'report.json',
      'weights.bin',
    ]);
    assert.equal(out.stderr, '', 'nothing but JSON with --json');
  });

  it('train --follow without a TTY prints plain progress and ends with the report summary', async () => {
    const run = await runCli(['train', specFile, '--data', IRIS, '--follow', '--name', 'cli-text'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /Uploaded iris\.csv \(3\.7 kB\) as dataset \w{26}/);
    assert.match(run.stderr, /epoch 8\/8 {2}loss [\d.]+ {2}val loss [\d.]+/);
    assert.match(run.stderr, /SUCCEEDED +Succeeded after 8 epochs/);
    assert.ok(!(run.stdout + run.stderr).includes('\x1b['), 'no colour or cursor codes without a TTY');
    assert.match(run.stdout, /cli-text: SUCCEEDED after 8 epochs/);
    assert.match(run.stdout, /metric +training +validation/);
    assert.match(run.stdout, /Confusion matrix \(validation rows/);
    assert.match(run.stdout, /setosa +versicolor +virginica/);
    assert.match(run.stdout, /Artifacts +model\.json/);
  });

  it('lists, shows, logs, summarises, downloads and deletes a finished job', async () => {
    const finishedJobId = (await trainedJob()).job.id;
    const list = await runCli(['jobs', 'list', '--json'], env);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(list.json().jobs.some((j: { id: string }) => j.id === finishedJobId));

    const table = await runCli(['jobs', 'list', '--status', 'succeeded'], env);
    assert.match(table.stdout, /^ID +NAME +STATUS +EPOCH/);
    assert.ok(table.stdout.includes(finishedJobId));

    const show = await runCli(['jobs', 'show', finishedJobId, '--json'], env);
    assert.equal(show.json().id, finishedJobId);
    const showText = await runCli(['jobs', 'show', finishedJobId], env);
    assert.match(showText.stdout, /Status +SUCCEEDED/);

    const logs = await runCli(['logs', finishedJobId, '--json'], env);
    const lines = logs.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.filter((l) => l.kind === 'epoch').map((l) => l.epoch),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.ok(lines.some((l) => l.kind === 'event' && l.status === 'SUCCEEDED'));

    const result = await runCli(['result', finishedJobId], env);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /accuracy/);

    const dir = join(home, 'artifacts');
    const download = await runCli(['download', finishedJobId, dir, '--json'], env);
    assert.equal(download.code, 0, download.stderr);
    assert.equal(download.json().files.length, 5);
    const model = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
    assert.ok(model.modelTopology);
    assert.ok((await stat(join(dir, 'weights.bin'))).size > 0);

    const deleted = await runCli(['jobs', 'delete', finishedJobId, '--json'], env);
    assert.equal(deleted.json().deleted, true);
    const gone = await runCli(['jobs', 'show', finishedJobId], env);
    assert.equal(gone.code, 3);
    assert.match(gone.stderr, /\[NOT_FOUND|JOB_NOT_FOUND/);
  });

  it('cancels a running job; following it then ends with exit 1', async () => {
    const long = await writeSpec('long.json', tinySpec({ epochs: 100_000 }));
    const submitted = await runCli(['train', long, '--data', IRIS, '--json'], env);
    assert.equal(submitted.code, 0, submitted.stderr);
    const jobId = submitted.json().job.id;
    await stack.waitFor(jobId, (job) => job.status === 'RUNNING' && job.progress.epoch > 0);

    const cancel = await runCli(['jobs', 'cancel', jobId, '--json'], env);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.ok(['CANCELLING', 'CANCELLED'].includes(cancel.json().status));

    const follow = await runCli(['logs', jobId, '--follow'], env);
    assert.equal(follow.code, 1);
    assert.match(follow.stdout, /CANCELLED/);
    assert.match(follow.stderr, new RegExp(`Job ${jobId} was cancelled at epoch \\d+`));
  });

  it('a job that fails exits 1 with its error message', async () => {
    // Regression on a text label: accepted at submit, refused by the trainer.
    const bad = await writeSpec('bad.json', tinySpec({}, { task: 'regression', model: { layers: [] } }));
    const run = await runCli(['train', bad, '--data', IRIS, '--follow'], env);
    assert.equal(run.code, 1, run.stderr);
    const jobId = /Submitted job (\w+)/.exec(run.stderr)?.[1] as string;
    const { body: job } = await stack.call('GET', `/jobs/${jobId}`);
    assert.equal(job.status, 'FAILED');
    assert.ok(
      run.stderr.includes(`Job ${jobId} failed: ${job.error.message} [${job.error.code}]`),
      run.stderr,
    );
    noStackTrace(run.stderr);

    const asJson = await runCli(['result', jobId, '--json'], env);
    assert.equal(asJson.code, 1);
    assert.deepEqual(JSON.parse(asJson.stderr).error, {
      code: job.error.code,
      message: `Job ${jobId} failed: ${job.error.message} [${job.error.code}]`,
      jobId,
      status: 'FAILED',
    });
  });

  it('an invalid spec exits 3 and lists every problem the API found', async () => {
    const invalid = await writeSpec('invalid.json', tinySpec({ epochs: 0 }, { colour: 'blue' }));
    const run = await runCli(['train', invalid, '--data', IRIS], env);
    assert.equal(run.code, 3);
    assert.match(run.stderr, /descent: error: Invalid job spec: .* \[VALIDATION_ERROR\]/);
    assert.match(run.stderr, / {2}- training\.epochs: /);
    assert.match(run.stderr, /unknown field colour/);
    noStackTrace(run.stderr);
  });

  it('a refused token exits 3 with the API message and a hint, in text and JSON', async () => {
    const wrong = { ...env, DESCENT_TOKEN: 'dsc_wrong' };
    const run = await runCli(['jobs', 'list'], wrong);
    assert.equal(run.code, 3);
    assert.match(run.stderr, /Missing or invalid bearer token.*\[UNAUTHORIZED\]/);
    assert.match(run.stderr, /The token from DESCENT_TOKEN was refused/);
    noStackTrace(run.stderr);
    const json = await runCli(['jobs', 'list', '--json'], wrong);
    assert.equal(json.code, 3);
    assert.equal(json.stdout, '');
    const { error } = JSON.parse(json.stderr);
    assert.equal(error.status, 401);
    assert.equal(error.code, 'UNAUTHORIZED');
  });

  it('an unreachable service exits 3 with a hint to start the local stack', async () => {
    const run = await runCli(['jobs', 'list'], {
      HOME: home,
      XDG_CONFIG_HOME: join(home, 'empty'),
      DESCENT_PORT: '9',
    });
    assert.equal(run.code, 3);
    assert.match(run.stderr, /cannot reach http:\/\/127\.0\.0\.1:9 .*\[NETWORK_ERROR\]/);
    assert.match(run.stderr, /start one with `npm start`/);
  });

  it('finds the local stack and its token by itself when nothing is configured', async () => {
    const local = {
      HOME: home,
      XDG_CONFIG_HOME: join(home, 'empty'),
      DESCENT_PORT: new URL(stack.url).port,
      DESCENT_DATA_DIR: stack.dataDir,
    };
    const config = await runCli(['config', '--json'], local);
    assert.deepEqual(
      { url: config.json().url, urlSource: config.json().urlSource, tokenSource: config.json().tokenSource },
      { url: stack.url, urlSource: 'local stack', tokenSource: 'local stack' },
    );
    const list = await runCli(['jobs', 'list', '--json'], local);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(Array.isArray(list.json().jobs));
  });

  it('config saves the endpoint and token (0600) and the environment overrides them', async () => {
    const xdg = { HOME: home, XDG_CONFIG_HOME: join(home, 'cfg') };
    const saved = await runCli(['config', '--url', stack.url, '--token', stack.token], xdg);
    assert.equal(saved.code, 0, saved.stderr);
    const file = join(home, 'cfg', 'descent', 'config.json');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const shown = await runCli(['config'], xdg);
    assert.match(shown.stdout, /URL +http:\/\/127\.0\.0\.1:\d+ {2}\(config file\)/);
    assert.ok(!shown.stdout.includes(stack.token), 'the token is masked');
    assert.equal((await runCli(['jobs', 'list', '--json'], xdg)).code, 0);
    const overridden = await runCli(['jobs', 'list'], { ...xdg, DESCENT_TOKEN: 'dsc_wrong' });
    assert.equal(overridden.code, 3);
    const reset = await runCli(['config', '--reset'], xdg);
    assert.equal(reset.code, 0);
    await assert.rejects(stat(file));
  });

  describe('with Cognito client credentials', () => {
    let tokenEndpoint: FakeServer;
    before(async () => {
      tokenEndpoint = await startFakeServer();
      // The stand-in issues the local stack's token as the access token.
      tokenEndpoint.handle(() => ({
        status: 200,
        body: { access_token: stack.token, expires_in: 3600, token_type: 'Bearer' },
      }));
    });
    after(async () => {
      await tokenEndpoint?.close();
    });

    it('fetches a client-credentials token once and reuses it from the cache until it expires', async () => {
      const xdg = { HOME: home, XDG_CONFIG_HOME: join(home, 'cognito') };
      const saved = await runCli(
        [
          'config',
          '--url',
          stack.url,
          '--token-url',
          `${tokenEndpoint.url}/oauth2/token`,
          '--client-id',
          'app',
          '--client-secret',
          'sec',
          '--scope',
          'descent/read',
        ],
        xdg,
      );
      assert.equal(saved.code, 0, saved.stderr);
      assert.equal((await runCli(['jobs', 'list', '--json'], xdg)).code, 0);
      assert.equal((await runCli(['jobs', 'list', '--json'], xdg)).code, 0);
      assert.equal(tokenEndpoint.requests.length, 1, 'the second run used the cached token');
      const request = tokenEndpoint.requests[0];
      assert.equal(
        Buffer.from(String(request?.headers.authorization).slice(6), 'base64').toString(),
        'app:sec',
      );
      assert.equal(new URLSearchParams(request?.body).get('grant_type'), 'client_credentials');
      const shown = await runCli(['config', '--json'], xdg);
      assert.equal(shown.json().tokenSource, 'cognito');
      assert.ok(!shown.stdout.includes('sec"'), 'the secret is never shown');
    });
  });
});
