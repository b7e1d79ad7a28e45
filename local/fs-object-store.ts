/**
 * `ObjectStore` on the local filesystem, shared by the gateway and several worker processes.
 *
 * Layout under `root`:
 * - `objects/<key>`: the object's bytes, as a plain file (a key's `/` are folders);
 * - `meta/<key>`: JSON sidecar with the ETag, size, content type and the identity (inode, mtime) of the
 *   data file it describes; when it does not describe the current data file (a crash between the two
 *   renames) the ETag is recomputed from the bytes;
 * - `tmp/`: files being written, renamed into place when complete (same filesystem, so atomic);
 * - `locks/`: one exclusive-create lock file per key while it is being written or deleted, so that
 *   `ifMatch` / `ifNoneMatch` are checked and applied atomically across processes.
 *
 * Presigned URLs point at the local gateway (`/_storage/<key>`) and carry an HMAC-SHA256 signature
 * that the gateway checks with `verifyPresigned`.
 *
 * Folders are created 0700 and files 0600 (the store holds every tenant's data). A write that fails
 * removes its temporary file; one refused for space (ENOSPC, EDQUOT, EFBIG) is a `StorageFullError`
 * (507). Deleting an object removes the folders it leaves empty.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  isStorageFull,
  PayloadTooLargeError,
  PreconditionFailedError,
  StorageFullError,
} from '../core/platform/errors.ts';
import type {
  GetOptions,
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  PresignOptions,
  PutOptions,
  PutStreamOptions,
  StoredObject,
} from '../core/platform/ports.ts';

export interface FsObjectStoreOptions {
  /** The folder that holds everything; created when missing. */
  readonly root: string;
  /** Key of the HMAC that signs presigned URLs. */
  readonly secret: string | Uint8Array;
  /** Origin of the gateway that serves `/_storage/...` (a function when its port is known later). */
  readonly baseUrl: string | (() => string);
  /** A lock file older than this is taken to belong to a crashed process and is broken (default 30 s). */
  readonly lockStaleMs?: number;
  /** Give up waiting for a key's lock after this long (default 60 s). */
  readonly lockTimeoutMs?: number;
}

export type PresignedMethod = 'GET' | 'PUT';

export interface PresignedRequest {
  readonly method: PresignedMethod;
  readonly key: string;
  /** Unix seconds. */
  readonly expires: number;
  /** Lower-case hex HMAC-SHA256. */
  readonly signature: string;
  /** For PUT: the content type the uploader must send. */
  readonly contentType?: string;
}

interface Meta {
  readonly etag: string;
  readonly size: number;
  readonly contentType?: string;
  readonly ino: number;
  readonly mtimeMs: number;
}

const MAX_KEY_BYTES = 1024;
const FOLDER_MODE = 0o700;
const FILE_MODE = 0o600;
const MAX_PAGE = 1000;
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;
const STORAGE_PATH = '/_storage/';

/** Why `key` is not a usable object key, or `undefined` when it is. */
const keyProblem = (key: unknown): string | undefined => {
  if (typeof key !== 'string' || key === '') return 'it is empty';
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `it is longer than ${MAX_KEY_BYTES} bytes`;
  if (key.startsWith('/')) return 'it is absolute';
  if (key.includes('\\')) return 'it contains a backslash';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we reject
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'it contains a control character';
  for (const segment of key.split('/')) {
    if (segment === '') return 'it has an empty path segment';
    if (segment === '.' || segment === '..') return `it has a "${segment}" segment`;
  }
  return undefined;
};

const assertKey = (key: string): void => {
  const problem = keyProblem(key);
  if (problem !== undefined) throw new Error(`invalid object key ${JSON.stringify(key)}: ${problem}`);
};

const toBytes = (body: Uint8Array | string): Uint8Array =>
  typeof body === 'string' ? new TextEncoder().encode(body) : body;

const etagOf = (bytes: Uint8Array): string =>
  `"${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}"`;

const unquote = (etag: string): string => etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');

const errorCode = (error: unknown): string | undefined =>
  typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;

/** Errors that mean "there is no object here" when reading. */
const isMissing = (error: unknown): boolean => {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
};

const bytewise = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** A write's error as callers should see it: no room is a `StorageFullError`, anything else itself. */
const storageError = (error: unknown): unknown =>
  isStorageFull(error) && !(error instanceof StorageFullError)
    ? new StorageFullError(
        `The local data folder has no room for this write (${errorCode(error)}); nothing was stored. Free disk space (or raise the quota) and retry.`,
      )
    : error;

const sign = (secret: string | Uint8Array, request: Omit<PresignedRequest, 'signature'>): string => {
  const parts = [request.method, request.key, String(request.expires)];
  if (request.contentType !== undefined && request.contentType !== '') parts.push(request.contentType);
  return createHmac('sha256', secret).update(parts.join('\n')).digest('hex');
};

/**
 * Checks a presigned request: `'invalid'` when the signature does not match (checked first, so a
 * forged URL never learns anything), `'expired'` when it matched but `expires` is past.
 */
export const verifyPresigned = (
  secret: string | Uint8Array,
  request: PresignedRequest,
  nowSeconds: number,
): 'ok' | 'expired' | 'invalid' => {
  if (request.method !== 'GET' && request.method !== 'PUT') return 'invalid';
  if (!Number.isSafeInteger(request.expires) || keyProblem(request.key) !== undefined) return 'invalid';
  if (!/^[0-9a-f]{64}$/.test(request.signature)) return 'invalid';
  const expected = Buffer.from(sign(secret, request), 'hex');
  const given = Buffer.from(request.signature, 'hex');
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return 'invalid';
  return request.expires < nowSeconds ? 'expired' : 'ok';
};

/**
 * Reads a `/_storage/<key>?method=&expires=&signature=[&contentType=]` URL made by `presignGet` /
 * `presignPut`; `undefined` when it is not one. The gateway must still check that the HTTP method
 * matches `method` (HEAD may stand for GET) and, for PUT, that the request's Content-Type equals
 * `contentType` when there is one, then call `verifyPresigned`.
 */
export const parseStorageUrl = (url: URL): PresignedRequest | undefined => {
  if (!url.pathname.startsWith(STORAGE_PATH)) return undefined;
  let key: string;
  try {
    key = url.pathname.slice(STORAGE_PATH.length).split('/').map(decodeURIComponent).join('/');
  } catch {
    return undefined;
  }
  if (keyProblem(key) !== undefined) return undefined;
  const method = url.searchParams.get('method');
  if (method !== 'GET' && method !== 'PUT') return undefined;
  const expiresText = url.searchParams.get('expires') ?? '';
  if (!/^\d{1,15}$/.test(expiresText)) return undefined;
  const signature = url.searchParams.get('signature') ?? '';
  if (!/^[0-9a-f]{64}$/.test(signature)) return undefined;
  const contentType = url.searchParams.get('contentType') ?? undefined;
  return {
    key,
    method,
    expires: Number(expiresText),
    signature,
    ...(contentType === undefined || contentType === '' ? {} : { contentType }),
  };
};

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === 'EPERM';
  }
};

interface LockContent {
  readonly pid?: number;
  readonly host?: string;
  readonly token?: string;
}

const parseLock = (text: string): LockContent => {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as LockContent) : {};
  } catch {
    return {};
  }
};

export class FsObjectStore implements ObjectStore {
  readonly #root: string;
  readonly #secret: string | Uint8Array;
  readonly #baseUrl: string | (() => string);
  readonly #lockStaleMs: number;
  readonly #lockTimeoutMs: number;
  /** Same-process writers of one key queue here, so that only other processes contend for the lock file. */
  readonly #localLocks = new Map<string, Promise<void>>();
  #folders: Promise<void> | undefined;

  constructor(options: FsObjectStoreOptions) {
    this.#root = path.resolve(options.root);
    this.#secret = options.secret;
    this.#baseUrl = options.baseUrl;
    this.#lockStaleMs = options.lockStaleMs ?? 30_000;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 60_000;
  }

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<{ etag: string }> {
    assertKey(key);
    if (options.ifNoneMatch !== undefined && options.ifNoneMatch !== '*') {
      throw new Error(`ifNoneMatch supports only '*', got ${JSON.stringify(options.ifNoneMatch)}`);
    }
    const bytes = toBytes(body);
    const etag = etagOf(bytes);
    try {
      await this.#ensureFolders();
      const dataTemp = await this.#writeTemp(bytes);
      await this.#commit(key, dataTemp, { etag, size: bytes.byteLength, ...options });
    } catch (error) {
      throw storageError(error);
    }
    return { etag };
  }

  /**
   * Stores a body that arrives as a stream (an upload) without holding it whole: written to a
   * temporary file while hashed, then renamed into place like `put`. Past `maxBytes` it stops with a
   * `PayloadTooLargeError` (413) and keeps nothing.
   */
  async putStream(
    key: string,
    body: AsyncIterable<Uint8Array>,
    options: PutStreamOptions,
  ): Promise<{ etag: string; size: number }> {
    assertKey(key);
    try {
      await this.#ensureFolders();
      const file = this.#tempPath();
      const hash = createHash('sha256');
      let size = 0;
      const handle = await fs.open(file, 'wx', FILE_MODE);
      try {
        try {
          for await (const chunk of body) {
            size += chunk.byteLength;
            if (size > options.maxBytes)
              throw new PayloadTooLargeError(`Uploads are limited to ${options.maxBytes} bytes.`);
            hash.update(chunk);
            await handle.write(chunk);
          }
          await handle.sync();
        } finally {
          await handle.close();
        }
      } catch (error) {
        await fs.rm(file, { force: true });
        throw error;
      }
      const etag = `"${hash.digest('hex').slice(0, 32)}"`;
      const contentType = options.contentType === undefined ? {} : { contentType: options.contentType };
      await this.#commit(key, file, { etag, size, ...contentType });
      return { etag, size };
    } catch (error) {
      throw storageError(error);
    }
  }

  /**
   * Moves a written temporary file into place under `key` with its sidecar, checking the
   * preconditions under the key's lock; the temporary files are gone afterwards, whatever happens.
   */
  async #commit(
    key: string,
    dataTemp: string,
    options: PutOptions & { etag: string; size: number },
  ): Promise<void> {
    try {
      await this.#withLock(key, async () => {
        if (options.ifMatch !== undefined || options.ifNoneMatch !== undefined) {
          const current = await this.head(key);
          if (options.ifNoneMatch === '*' && current !== undefined) {
            throw new PreconditionFailedError(key, `an object already exists under ${key}`);
          }
          if (options.ifMatch !== undefined) {
            if (current === undefined) throw new PreconditionFailedError(key, `${key} does not exist`);
            if (unquote(current.etag) !== unquote(options.ifMatch)) {
              throw new PreconditionFailedError(key, `${key} has changed (ETag ${current.etag})`);
            }
          }
        }
        const dataPath = this.#dataPath(key);
        const stats = await fs.stat(dataTemp);
        const meta: Meta = {
          etag: options.etag,
          size: options.size,
          ...(options.contentType === undefined ? {} : { contentType: options.contentType }),
          ino: stats.ino,
          mtimeMs: stats.mtimeMs,
        };
        const metaTemp = await this.#writeTemp(new TextEncoder().encode(JSON.stringify(meta)));
        try {
          await this.#renameInto(dataTemp, dataPath, key);
          await this.#renameInto(metaTemp, this.#metaPath(key), key);
        } finally {
          await fs.rm(metaTemp, { force: true });
        }
        await this.#syncFolder(path.dirname(dataPath));
      });
    } finally {
      await fs.rm(dataTemp, { force: true });
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | undefined> {
    assertKey(key);
    const range = options.range;
    if (range !== undefined) {
      const { start, end } = range;
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
        throw new RangeError(`invalid range ${JSON.stringify(range)}`);
      }
    }
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.#dataPath(key), 'r');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) return undefined;
      const meta = await this.#readMeta(key, stats);
      let body: Uint8Array;
      let etag = meta?.etag;
      if (range === undefined) {
        body = await handle.readFile();
        etag ??= etagOf(body);
      } else {
        const end = Math.min(range.end, stats.size - 1);
        const length = Math.max(0, end - range.start + 1);
        const buffer = Buffer.alloc(length);
        let read = 0;
        while (read < length) {
          const { bytesRead } = await handle.read(buffer, read, length - read, range.start + read);
          if (bytesRead === 0) break;
          read += bytesRead;
        }
        body = buffer.subarray(0, read);
        etag ??= etagOf(await handle.readFile());
      }
      return {
        key,
        etag,
        size: stats.size,
        lastModified: stats.mtime,
        body,
        ...(meta?.contentType === undefined ? {} : { contentType: meta.contentType }),
      };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    } finally {
      await handle.close();
    }
  }

  async getStream(key: string): Promise<AsyncIterable<Uint8Array> | undefined> {
    assertKey(key);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.#dataPath(key), 'r');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    // The open handle keeps reading the same file even if a writer renames a new one into place.
    return handle.createReadStream({ highWaterMark: 1024 * 1024 });
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertKey(key);
    return this.#info(key);
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const limit = Math.min(Math.max(1, Math.floor(options.limit ?? MAX_PAGE)), MAX_PAGE);
    const slash = prefix.lastIndexOf('/');
    const folder = prefix.slice(0, slash + 1);
    const namePrefix = prefix.slice(slash + 1);
    // No key can start with a prefix whose folder part is not itself a valid key path.
    if (folder !== '' && keyProblem(folder.slice(0, -1)) !== undefined) return { objects: [] };
    if (namePrefix.includes('\\') || keyProblem(`x${namePrefix}`) !== undefined) return { objects: [] };

    const keys: string[] = [];
    const walk = async (relative: string, filter: string): Promise<void> => {
      let entries: Dirent[];
      try {
        entries = await fs.readdir(path.join(this.#root, 'objects', ...relative.split('/')), {
          withFileTypes: true,
        });
      } catch (error) {
        if (isMissing(error)) return;
        throw error;
      }
      for (const entry of entries) {
        if (!entry.name.startsWith(filter)) continue;
        const key = `${relative}${entry.name}`;
        if (entry.isDirectory()) await walk(`${key}/`, '');
        else if (entry.isFile()) keys.push(key);
      }
    };
    await walk(folder, namePrefix);

    const cursor = options.cursor;
    const candidates = keys.filter((key) => cursor === undefined || bytewise(key, cursor) > 0).sort(bytewise);
    const objects: ObjectInfo[] = [];
    let index = 0;
    for (; index < candidates.length && objects.length < limit; index++) {
      const key = candidates[index] as string;
      const info = await this.#info(key); // vanished since the walk: skip it
      if (info !== undefined) objects.push(info);
    }
    const last = objects.at(-1);
    return index < candidates.length && last !== undefined ? { objects, nextCursor: last.key } : { objects };
  }

  async delete(key: string): Promise<void> {
    assertKey(key);
    await this.#ensureFolders();
    await this.#withLock(key, async () => {
      for (const file of [this.#dataPath(key), this.#metaPath(key)]) {
        try {
          await fs.unlink(file);
        } catch (error) {
          const code = errorCode(error);
          if (!isMissing(error) && code !== 'EPERM') throw error;
        }
      }
    });
    await this.#pruneFolders(key);
  }

  /** Removes the folders of `key` that are empty now, deepest first (a job deleted leaves none). */
  async #pruneFolders(key: string): Promise<void> {
    const parts = key.split('/').slice(0, -1);
    for (const top of ['objects', 'meta']) {
      for (let depth = parts.length; depth > 0; depth--) {
        try {
          await fs.rmdir(path.join(this.#root, top, ...parts.slice(0, depth)));
        } catch {
          break; // not empty (or already gone): nothing above it is empty either
        }
      }
    }
  }

  async presignGet(key: string, options: PresignOptions): Promise<string> {
    return this.#presign('GET', key, options);
  }

  async presignPut(key: string, options: PresignOptions): Promise<string> {
    return this.#presign('PUT', key, options);
  }

  #presign(method: PresignedMethod, key: string, options: PresignOptions): string {
    assertKey(key);
    const seconds = options.expiresInSeconds;
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_PRESIGN_SECONDS) {
      throw new RangeError(`expiresInSeconds must be in (0, ${MAX_PRESIGN_SECONDS}], got ${seconds}`);
    }
    const contentType = method === 'PUT' && options.contentType ? options.contentType : undefined;
    const expires = Math.floor(Date.now() / 1000) + Math.ceil(seconds);
    const request = { method, key, expires, ...(contentType === undefined ? {} : { contentType }) };
    const query = new URLSearchParams({
      method,
      expires: String(expires),
      signature: sign(this.#secret, request),
    });
    if (contentType !== undefined) query.set('contentType', contentType);
    const base = (typeof this.#baseUrl === 'function' ? this.#baseUrl() : this.#baseUrl).replace(/\/+$/, '');
    const encodedKey = key.split('/').map(encodeURIComponent).join('/');
    return `${base}${STORAGE_PATH}${encodedKey}?${query}`;
  }

  #dataPath(key: string): string {
    return path.join(this.#root, 'objects', ...key.split('/'));
  }

  #metaPath(key: string): string {
    return path.join(this.#root, 'meta', ...key.split('/'));
  }

  #lockPath(key: string): string {
    return path.join(
      this.#root,
      'locks',
      `${createHash('sha256').update(key).digest('hex').slice(0, 40)}.lock`,
    );
  }

  #ensureFolders(): Promise<void> {
    this.#folders ??= (async () => {
      await fs.mkdir(this.#root, { recursive: true, mode: FOLDER_MODE });
      await fs.chmod(this.#root, FOLDER_MODE);
      for (const folder of ['objects', 'meta', 'tmp', 'locks']) {
        await fs.mkdir(path.join(this.#root, folder), { recursive: true, mode: FOLDER_MODE });
      }
      await this.#removeOldTempFiles();
    })().catch((error: unknown) => {
      this.#folders = undefined;
      throw error;
    });
    return this.#folders;
  }

  /** Temp files a crashed writer left behind (older than an hour: no live write takes that long). */
  async #removeOldTempFiles(): Promise<void> {
    const folder = path.join(this.#root, 'tmp');
    const cutoff = Date.now() - 3_600_000;
    for (const name of await fs.readdir(folder)) {
      const file = path.join(folder, name);
      try {
        if ((await fs.stat(file)).mtimeMs < cutoff) await fs.rm(file, { force: true });
      } catch {
        // Gone already, or not ours to remove: ignore.
      }
    }
  }

  /** The sidecar, when it describes exactly this data file. */
  async #readMeta(key: string, stats: Stats): Promise<Meta | undefined> {
    let meta: Partial<Meta>;
    try {
      meta = JSON.parse(await fs.readFile(this.#metaPath(key), 'utf8')) as Partial<Meta>;
    } catch {
      return undefined;
    }
    const matches =
      typeof meta.etag === 'string' &&
      meta.size === stats.size &&
      meta.ino === stats.ino &&
      meta.mtimeMs === stats.mtimeMs;
    return matches ? (meta as Meta) : undefined;
  }

  async #info(key: string): Promise<ObjectInfo | undefined> {
    const dataPath = this.#dataPath(key);
    let stats: Stats;
    try {
      stats = await fs.stat(dataPath);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    if (!stats.isFile()) return undefined;
    let etag = (await this.#readMeta(key, stats))?.etag;
    if (etag === undefined) {
      try {
        etag = etagOf(await fs.readFile(dataPath));
      } catch (error) {
        if (isMissing(error)) return undefined;
        throw error;
      }
    }
    return { key, etag, size: stats.size, lastModified: stats.mtime };
  }

  #tempPath(): string {
    return path.join(this.#root, 'tmp', `${process.pid}-${randomBytes(8).toString('hex')}`);
  }

  /** Writes `bytes` to a new temporary file (0600); on any failure the file is removed. */
  async #writeTemp(bytes: Uint8Array): Promise<string> {
    const file = this.#tempPath();
    const handle = await fs.open(file, 'wx', FILE_MODE);
    try {
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (error) {
      await fs.rm(file, { force: true });
      throw error;
    }
    return file;
  }

  async #renameInto(temp: string, target: string, key: string): Promise<void> {
    try {
      for (let attempt = 0; ; attempt++) {
        await fs.mkdir(path.dirname(target), { recursive: true, mode: FOLDER_MODE });
        try {
          await fs.rename(temp, target);
          return;
        } catch (error) {
          // A delete pruned the (empty) folder between the two calls: make it again.
          if (errorCode(error) !== 'ENOENT' || attempt >= 3) throw error;
        }
      }
    } catch (error) {
      const code = errorCode(error);
      if (code === 'EISDIR' || code === 'ENOTDIR' || code === 'EEXIST' || code === 'ENOTEMPTY') {
        throw new Error(`cannot store ${key}: it clashes with another key used as a folder (${code})`);
      }
      throw error;
    }
  }

  async #syncFolder(folder: string): Promise<void> {
    try {
      const handle = await fs.open(folder, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch {
      // Best effort: some filesystems refuse to fsync a folder.
    }
  }

  async #withLock<T>(key: string, action: () => Promise<T>): Promise<T> {
    const previous = this.#localLocks.get(key) ?? Promise.resolve();
    let done = (): void => {};
    const mine = new Promise<void>((resolve) => {
      done = resolve;
    });
    const tail = previous.then(() => mine);
    this.#localLocks.set(key, tail);
    await previous;
    try {
      const lockPath = this.#lockPath(key);
      const token = await this.#acquire(lockPath, key);
      try {
        return await action();
      } finally {
        await this.#release(lockPath, token);
      }
    } finally {
      done();
      if (this.#localLocks.get(key) === tail) this.#localLocks.delete(key);
    }
  }

  async #acquire(lockPath: string, key: string): Promise<string> {
    const token = randomBytes(12).toString('hex');
    const content = JSON.stringify({
      pid: process.pid,
      host: hostname(),
      token,
      at: new Date().toISOString(),
    });
    const deadline = Date.now() + this.#lockTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await fs.writeFile(lockPath, content, { flag: 'wx', mode: FILE_MODE });
        return token;
      } catch (error) {
        if (errorCode(error) !== 'EEXIST') throw error;
      }
      await this.#breakIfStale(lockPath);
      if (Date.now() > deadline) throw new Error(`timed out waiting for the lock on ${key} (${lockPath})`);
      await sleep(Math.min(50, 2 + attempt * 2) + Math.random() * 5);
    }
  }

  async #release(lockPath: string, token: string): Promise<void> {
    try {
      // Only remove our own lock: it may have been broken as stale and taken by someone else.
      if (parseLock(await fs.readFile(lockPath, 'utf8')).token === token) await fs.unlink(lockPath);
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }

  /** Breaks a lock left by a crashed process: older than the stale time, or held by a dead local pid. */
  async #breakIfStale(lockPath: string): Promise<void> {
    let stats: Stats;
    let holder: LockContent;
    try {
      stats = await fs.stat(lockPath);
      holder = parseLock(await fs.readFile(lockPath, 'utf8'));
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    const old = Date.now() - stats.mtimeMs > this.#lockStaleMs;
    const dead =
      holder.host === hostname() &&
      typeof holder.pid === 'number' &&
      holder.pid !== process.pid &&
      !isAlive(holder.pid);
    if (!old && !dead) return;
    // Move it aside first so that only one breaker wins, then check we moved the lock we judged.
    const aside = `${lockPath}.stale-${randomBytes(6).toString('hex')}`;
    try {
      await fs.rename(lockPath, aside);
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    try {
      const moved = parseLock(await fs.readFile(aside, 'utf8'));
      if (moved.token !== holder.token) {
        // Someone else broke it and took a fresh lock in between: put theirs back.
        await fs.link(aside, lockPath).catch(() => {});
      }
    } finally {
      await fs.rm(aside, { force: true });
    }
  }
}
