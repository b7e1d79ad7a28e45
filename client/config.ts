/**
 * Where the CLI finds its endpoint and credentials (Node only). In order:
 *
 * - URL: `DESCENT_URL`, else the config file's `url`, else the local stack
 *   (`http://127.0.0.1:${DESCENT_PORT:-8080}`).
 * - Token: `DESCENT_TOKEN`, else the config file's `token`, else a Cognito client-credentials
 *   token fetched with the config file's `cognito` settings (cached until it expires), else, for a
 *   loopback URL only, the local stack's token in `${DESCENT_DATA_DIR:-./.descent}/token`.
 *
 * The config file is `${XDG_CONFIG_HOME:-~/.config}/descent/config.json`, mode 0600.
 */
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { TokenProvider } from './client.ts';
import {
  type AccessToken,
  type ClientCredentials,
  clientCredentialsProvider,
  type TokenCache,
} from './cognito.ts';
import { DescentError } from './errors.ts';

export interface StoredConfig {
  url?: string;
  token?: string;
  cognito?: ClientCredentials;
}

export type Env = Record<string, string | undefined>;

export const DEFAULT_LOCAL_PORT = 8080;

export function configDir(env: Env = process.env): string {
  const base =
    env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'descent');
}

export const configPath = (env: Env = process.env): string => join(configDir(env), 'config.json');
const tokenCachePath = (env: Env) => join(configDir(env), 'token-cache.json');

/** Writes a file only its owner can read, atomically (write, chmod, rename). */
async function writePrivate(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, text, { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, path);
}

/** The config file's contents; `undefined` when there is none; a clear error when it is unreadable. */
export async function readConfig(env: Env = process.env): Promise<StoredConfig | undefined> {
  const path = configPath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DescentError('CONFIG_UNREADABLE', `Cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as StoredConfig;
  } catch (error) {
    throw new DescentError(
      'CONFIG_INVALID',
      `${path} is not a valid config file (${(error as Error).message}); fix it or run \`descent config --reset\`.`,
    );
  }
}

export async function writeConfig(config: StoredConfig, env: Env = process.env): Promise<string> {
  const path = configPath(env);
  await writePrivate(path, `${JSON.stringify(config, null, 2)}\n`);
  return path;
}

/** Deletes the config file and the cached token. */
export async function resetConfig(env: Env = process.env): Promise<void> {
  await rm(configPath(env), { force: true });
  await rm(tokenCachePath(env), { force: true });
}

/** A Cognito token cache in the config folder (0600), keyed so that changed settings never reuse it. */
export function fileTokenCache(credentials: ClientCredentials, env: Env = process.env): TokenCache {
  const path = tokenCachePath(env);
  const key = `${credentials.tokenUrl}|${credentials.clientId}|${credentials.scope ?? ''}`;
  return {
    async load() {
      try {
        const cached = JSON.parse(await readFile(path, 'utf8')) as AccessToken & { key?: string };
        if (cached.key !== key || typeof cached.accessToken !== 'string') return undefined;
        return { accessToken: cached.accessToken, expiresAt: Number(cached.expiresAt) };
      } catch {
        return undefined;
      }
    },
    async save(token) {
      await writePrivate(path, JSON.stringify({ key, ...token }));
    },
  };
}

export type Source = 'DESCENT_URL' | 'DESCENT_TOKEN' | 'config file' | 'cognito' | 'local stack' | 'none';

export interface ResolvedConfig {
  readonly url: string;
  readonly urlSource: Source;
  readonly token?: string | TokenProvider;
  readonly tokenSource: Source;
  /** The local token file consulted (when the URL is a loopback one). */
  readonly localTokenFile?: string;
  readonly configFile: string;
  readonly stored?: StoredConfig;
}

const isLoopback = (url: string): boolean => {
  try {
    const host = new URL(url).hostname;
    return host === 'localhost' || host === '[::1]' || host.startsWith('127.');
  } catch {
    return false;
  }
};

export interface ResolveOptions {
  readonly env?: Env;
  readonly cwd?: string;
  readonly fetch?: typeof fetch;
}

export async function resolveConfig(options: ResolveOptions = {}): Promise<ResolvedConfig> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const stored = await readConfig(env);
  const configFile = configPath(env);
  const base = { configFile, ...(stored ? { stored } : {}) };

  const port = env.DESCENT_PORT && env.DESCENT_PORT !== '' ? env.DESCENT_PORT : String(DEFAULT_LOCAL_PORT);
  const [url, urlSource]: [string, Source] = env.DESCENT_URL
    ? [env.DESCENT_URL, 'DESCENT_URL']
    : stored?.url
      ? [stored.url, 'config file']
      : [`http://127.0.0.1:${port}`, 'local stack'];

  if (env.DESCENT_TOKEN)
    return { ...base, url, urlSource, token: env.DESCENT_TOKEN, tokenSource: 'DESCENT_TOKEN' };
  if (stored?.token) return { ...base, url, urlSource, token: stored.token, tokenSource: 'config file' };
  if (stored?.cognito) {
    const credentials = stored.cognito;
    const token = clientCredentialsProvider(credentials, {
      cache: fileTokenCache(credentials, env),
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    return { ...base, url, urlSource, token, tokenSource: 'cognito' };
  }
  // The local stack's own token, never sent anywhere but to this machine.
  if (isLoopback(url)) {
    const localTokenFile = join(resolve(cwd, env.DESCENT_DATA_DIR || '.descent'), 'token');
    try {
      const token = (await readFile(localTokenFile, 'utf8')).trim();
      if (token) return { ...base, url, urlSource, token, tokenSource: 'local stack', localTokenFile };
    } catch {}
    return { ...base, url, urlSource, tokenSource: 'none', localTokenFile };
  }
  return { ...base, url, urlSource, tokenSource: 'none' };
}
