/**
 * Where the client's endpoint and token come from: Cognito client-credentials tokens (against a
 * local stand-in for the token endpoint), their cache, and the CLI's config resolution.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { clientCredentialsProvider, fetchClientCredentialsToken } from '../../client/cognito.ts';
import { configPath, fileTokenCache, resolveConfig, writeConfig } from '../../client/config.ts';
import { DescentApiError } from '../../client/errors.ts';
import { type FakeServer, startFakeServer } from './fake-server.ts';

const credentials = (url: string) => ({
  tokenUrl: `${url}/oauth2/token`,
  clientId: 'client-1',
  clientSecret: 's3cret',
  scope: 'descent/read descent/write',
});

describe('Cognito client-credentials tokens', () => {
  let server: FakeServer;
  let issued = 0;

  before(async () => {
    server = await startFakeServer();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.requests.length = 0;
    issued = 0;
    server.handle(() => ({
      status: 200,
      body: { access_token: `access-${++issued}`, expires_in: 3600, token_type: 'Bearer' },
    }));
  });

  it('POSTs grant_type=client_credentials with HTTP Basic client authentication and the scope', async () => {
    const token = await fetchClientCredentialsToken(credentials(server.url), { now: () => 1_000_000 });
    assert.deepEqual(token, { accessToken: 'access-1', expiresAt: 1_000_000 + 3600 * 1000 });
    const request = server.requests[0];
    assert.equal(request?.method, 'POST');
    assert.equal(request?.path, '/oauth2/token');
    assert.equal(request?.headers['content-type'], 'application/x-www-form-urlencoded');
    const basic = String(request?.headers.authorization).replace(/^Basic /, '');
    assert.equal(Buffer.from(basic, 'base64').toString(), 'client-1:s3cret');
    const form = new URLSearchParams(request?.body);
    assert.equal(form.get('grant_type'), 'client_credentials');
    assert.equal(form.get('scope'), 'descent/read descent/write');
  });

  it("throws the endpoint's OAuth error as a DescentApiError", async () => {
    server.handle(() => ({
      status: 400,
      body: { error: 'invalid_client', error_description: 'Client authentication failed' },
    }));
    await assert.rejects(fetchClientCredentialsToken(credentials(server.url)), (error: unknown) => {
      assert.ok(error instanceof DescentApiError);
      assert.equal(error.status, 400);
      assert.equal(error.code, 'INVALID_CLIENT');
      assert.match(
        error.message,
        /refused the client credentials: invalid_client: Client authentication failed/,
      );
      return true;
    });
  });

  it('the provider reuses a token until a minute before it expires, then fetches a new one', async () => {
    let now = 0;
    const provider = clientCredentialsProvider(credentials(server.url), { now: () => now });
    assert.equal(await provider(), 'access-1');
    now = 3600 * 1000 - 61_000;
    assert.equal(await provider(), 'access-1');
    now = 3600 * 1000 - 59_000;
    assert.equal(await provider(), 'access-2');
    assert.equal(server.requests.length, 2);
  });

  it('concurrent callers share one fetch', async () => {
    const provider = clientCredentialsProvider(credentials(server.url));
    const tokens = await Promise.all([provider(), provider(), provider()]);
    assert.deepEqual(tokens, ['access-1', 'access-1', 'access-1']);
    assert.equal(server.requests.length, 1);
  });

  describe('with the file cache', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'descent-xdg-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('keeps the token between processes in a 0600 file, and never for other credentials', async () => {
      const env = { XDG_CONFIG_HOME: dir };
      const creds = credentials(server.url);
      const first = clientCredentialsProvider(creds, { cache: fileTokenCache(creds, env) });
      assert.equal(await first(), 'access-1');
      // A second "process": a new provider over the same file.
      const second = clientCredentialsProvider(creds, { cache: fileTokenCache(creds, env) });
      assert.equal(await second(), 'access-1');
      assert.equal(server.requests.length, 1);
      const file = join(dir, 'descent', 'token-cache.json');
      assert.equal((await stat(file)).mode & 0o777, 0o600);

      const other = { ...creds, clientId: 'client-2' };
      const third = clientCredentialsProvider(other, { cache: fileTokenCache(other, env) });
      assert.equal(await third(), 'access-2');
    });
  });
});

describe('resolveConfig', () => {
  let home: string;
  let cwd: string;

  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'descent-config-'));
    cwd = join(home, 'project');
    await mkdir(join(cwd, '.descent'), { recursive: true });
  });
  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('defaults to the local stack and its token when nothing is configured', async () => {
    await writeFile(join(cwd, '.descent', 'token'), 'dsc_local\n');
    const config = await resolveConfig({ env: { XDG_CONFIG_HOME: home }, cwd });
    assert.equal(config.url, 'http://127.0.0.1:8080');
    assert.equal(config.urlSource, 'local stack');
    assert.equal(config.token, 'dsc_local');
    assert.equal(config.tokenSource, 'local stack');
  });

  it('follows DESCENT_PORT and DESCENT_DATA_DIR for the local defaults', async () => {
    const data = join(home, 'data');
    await mkdir(data);
    await writeFile(join(data, 'token'), 'dsc_other');
    const config = await resolveConfig({
      env: { XDG_CONFIG_HOME: home, DESCENT_PORT: '9999', DESCENT_DATA_DIR: data },
      cwd,
    });
    assert.equal(config.url, 'http://127.0.0.1:9999');
    assert.equal(config.token, 'dsc_other');
  });

  it('lets DESCENT_URL and DESCENT_TOKEN override the config file', async () => {
    await writeConfig({ url: 'https://api.example.test', token: 'from-file' }, { XDG_CONFIG_HOME: home });
    const fromFile = await resolveConfig({ env: { XDG_CONFIG_HOME: home }, cwd });
    assert.equal(fromFile.url, 'https://api.example.test');
    assert.equal(fromFile.token, 'from-file');
    assert.equal(fromFile.tokenSource, 'config file');
    const fromEnv = await resolveConfig({
      env: { XDG_CONFIG_HOME: home, DESCENT_URL: 'http://127.0.0.1:1234', DESCENT_TOKEN: 'from-env' },
      cwd,
    });
    assert.equal(fromEnv.url, 'http://127.0.0.1:1234');
    assert.equal(fromEnv.urlSource, 'DESCENT_URL');
    assert.equal(fromEnv.token, 'from-env');
  });

  it('writes the config file with mode 0600 in $XDG_CONFIG_HOME/descent', async () => {
    const path = await writeConfig({ url: 'https://x.test' }, { XDG_CONFIG_HOME: home });
    assert.equal(path, join(home, 'descent', 'config.json'));
    assert.equal(path, configPath({ XDG_CONFIG_HOME: home }));
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), { url: 'https://x.test' });
  });

  it('never sends the local token to a remote URL', async () => {
    await writeFile(join(cwd, '.descent', 'token'), 'dsc_local');
    const config = await resolveConfig({
      env: { XDG_CONFIG_HOME: home, DESCENT_URL: 'https://api.example.test' },
      cwd,
    });
    assert.equal(config.token, undefined);
    assert.equal(config.tokenSource, 'none');
  });

  it('gives a token provider for Cognito credentials in the config file', async () => {
    await writeConfig(
      {
        url: 'https://api.example.test',
        cognito: { tokenUrl: 'https://auth.test/oauth2/token', clientId: 'c', clientSecret: 's' },
      },
      { XDG_CONFIG_HOME: home },
    );
    const config = await resolveConfig({ env: { XDG_CONFIG_HOME: home }, cwd });
    assert.equal(config.tokenSource, 'cognito');
    assert.equal(typeof config.token, 'function');
  });

  it('says how to fix a broken config file', async () => {
    await mkdir(join(home, 'descent'), { recursive: true });
    await writeFile(join(home, 'descent', 'config.json'), '{ nope');
    await assert.rejects(resolveConfig({ env: { XDG_CONFIG_HOME: home }, cwd }), {
      code: 'CONFIG_INVALID',
      message: /descent config --reset/,
    });
  });
});
