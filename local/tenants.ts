/**
 * Local tenants and their API tokens (`$DESCENT_DATA_DIR/tenants.json`, tokens stored as SHA-256
 * hashes). The default tenant's token is kept in `$DESCENT_DATA_DIR/token`, or taken from
 * `DESCENT_TOKEN`. In AWS this role is played by Cognito app clients and the JWT authorizer.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TENANT_PATTERN } from '../core/platform/keys.ts';

export const DEFAULT_TENANT = 'default';

interface TenantEntry {
  name: string;
  tokenSha256: string;
  createdAt: string;
}

const hash = (token: string) => createHash('sha256').update(token).digest('hex');
const newToken = () => `dsc_${randomBytes(24).toString('base64url')}`;

/** Writes `text` to `path` through a temporary file (0600) renamed into place; no temporary file is left. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, text, { mode: 0o600 });
    await rename(temp, path);
  } finally {
    await rm(temp, { force: true });
  }
}

/** A lock held longer than this belongs to a process that died: it is broken. */
const LOCK_STALE_MS = 10_000;

/**
 * Runs `action` holding `lock` (a file created exclusively): read-modify-writes of one file by
 * several processes (`npm run tenants -- add` run twice at once, the stack) then never lose a change.
 */
async function withFileLock<T>(lock: string, action: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const since = await stat(lock).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (since > LOCK_STALE_MS) await rm(lock, { force: true });
      else await sleep(Math.min(50, 5 + attempt * 5) + Math.random() * 10);
    }
  }
  try {
    return await action();
  } finally {
    await rm(lock, { force: true });
  }
}

async function readTenants(file: string): Promise<TenantEntry[]> {
  if (!existsSync(file)) return [];
  return (JSON.parse(await readFile(file, 'utf8')) as { tenants?: TenantEntry[] }).tenants ?? [];
}

export class TenantTokens {
  readonly #file: string;
  #tenants: TenantEntry[];

  private constructor(file: string, tenants: TenantEntry[]) {
    this.#file = file;
    this.#tenants = tenants;
  }

  static async open(dataDir: string): Promise<TenantTokens> {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const file = join(dataDir, 'tenants.json');
    return new TenantTokens(file, await readTenants(file));
  }

  /** Re-reads the file, so tenants added by `npm run tenants` while the stack runs are seen. */
  async reload(): Promise<void> {
    if (existsSync(this.#file)) this.#tenants = await readTenants(this.#file);
  }

  /** The tenant a bearer token belongs to, or `undefined`. */
  tenantFor(token: string): string | undefined {
    const digest = Buffer.from(hash(token), 'hex');
    for (const entry of this.#tenants) {
      if (timingSafeEqual(digest, Buffer.from(entry.tokenSha256, 'hex'))) return entry.name;
    }
    return undefined;
  }

  names(): string[] {
    return this.#tenants.map((t) => t.name);
  }

  /** Creates a tenant (or gives it a new token) and returns the token; only its hash is stored. */
  async set(name: string, token: string = newToken()): Promise<string> {
    if (!TENANT_PATTERN.test(name)) {
      throw new Error(
        `Tenant names are 1–63 characters of a-z, 0-9, _ and -, starting with a letter or digit (got "${name}").`,
      );
    }
    const entry = { name, tokenSha256: hash(token), createdAt: new Date().toISOString() };
    // Under the file's lock, from the file as it is now: a tenant another process added is kept.
    await withFileLock(`${this.#file}.lock`, async () => {
      const current = await readTenants(this.#file);
      this.#tenants = [...current.filter((t) => t.name !== name), entry];
      await writeAtomic(this.#file, `${JSON.stringify({ tenants: this.#tenants }, null, 2)}\n`);
    });
    return token;
  }
}

/**
 * The default tenant's token: `DESCENT_TOKEN` if set, else the one in `$DATA/token`, else a new one
 * written there on first start. Registers it for the default tenant.
 */
export async function ensureDefaultToken(
  dataDir: string,
  tokens: TenantTokens,
  fromEnv?: string,
): Promise<string> {
  const file = join(dataDir, 'token');
  let token = fromEnv && fromEnv.length > 0 ? fromEnv : undefined;
  if (!token && existsSync(file)) token = (await readFile(file, 'utf8')).trim();
  if (!token) {
    token = newToken();
    await writeAtomic(file, `${token}\n`);
  }
  if (tokens.tenantFor(token) !== DEFAULT_TENANT) await tokens.set(DEFAULT_TENANT, token);
  return token;
}

/** A secret kept in the data folder (e.g. the key that signs local presigned URLs). */
export async function ensureSecret(dataDir: string, name: string): Promise<string> {
  const file = join(dataDir, name);
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  const secret = randomBytes(32).toString('hex');
  await writeAtomic(file, `${secret}\n`);
  return secret;
}
