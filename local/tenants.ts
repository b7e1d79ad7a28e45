/**
 * Local tenants and their API tokens (`$DESCENT_DATA_DIR/tenants.json`, tokens stored as SHA-256
 * hashes). The default tenant's token is kept in `$DESCENT_DATA_DIR/token`, or taken from
 * `DESCENT_TOKEN`. In AWS this role is played by Cognito app clients and the JWT authorizer.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TENANT_PATTERN } from '../core/platform/keys.ts';

export const DEFAULT_TENANT = 'default';

interface TenantEntry {
  name: string;
  tokenSha256: string;
  createdAt: string;
}

const hash = (token: string) => createHash('sha256').update(token).digest('hex');
const newToken = () => `dsc_${randomBytes(24).toString('base64url')}`;

async function writeAtomic(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, text, { mode: 0o600 });
  await rename(temp, path);
}

export class TenantTokens {
  readonly #file: string;
  #tenants: TenantEntry[];

  private constructor(file: string, tenants: TenantEntry[]) {
    this.#file = file;
    this.#tenants = tenants;
  }

  static async open(dataDir: string): Promise<TenantTokens> {
    await mkdir(dataDir, { recursive: true });
    const file = join(dataDir, 'tenants.json');
    const tenants = existsSync(file)
      ? ((JSON.parse(await readFile(file, 'utf8')) as { tenants: TenantEntry[] }).tenants ?? [])
      : [];
    return new TenantTokens(file, tenants);
  }

  /** Re-reads the file, so tenants added by `npm run tenants` while the stack runs are seen. */
  async reload(): Promise<void> {
    if (existsSync(this.#file))
      this.#tenants = (JSON.parse(await readFile(this.#file, 'utf8')) as { tenants: TenantEntry[] }).tenants;
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
    this.#tenants = [...this.#tenants.filter((t) => t.name !== name), entry];
    await writeAtomic(this.#file, `${JSON.stringify({ tenants: this.#tenants }, null, 2)}\n`);
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
