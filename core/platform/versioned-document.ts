/**
 * The one compare-and-swap primitive: JSON documents in the object store, validated with their zod
 * schema on every read, changed only by a write conditioned on the ETag that was read. Every writer
 * that loses retries under one policy (`CAS_RETRY`) and ends with a typed 409 BUSY, never a loop
 * without end. The job and sweep records, events, metrics, the checkpoint pointer, dataset metadata
 * and idempotency records are thin wrappers over it.
 */
import type { z } from 'zod';
import { BusyError, CorruptDocumentError, PreconditionFailedError } from './errors.ts';
import { fromJson, toJson } from './json.ts';
import type { ObjectStore } from './ports.ts';
import { CAS_RETRY, casBackoffMs, type RetryPolicy } from './retry.ts';

export interface Versioned<T> {
  readonly value: T;
  readonly etag: string;
}

export interface DocumentOptions {
  /** What the document is, for messages ("job record"). */
  readonly what: string;
  /** @default CAS_RETRY */
  readonly retry?: RetryPolicy;
  /** @default a timer */
  readonly sleep?: (ms: number) => Promise<void>;
  /** @default Math.random */
  readonly random?: () => number;
}

const timer = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const JSON_TYPE = { contentType: 'application/json' } as const;

/**
 * `change` returns this to leave the document as it is (the update then returns the version read).
 */
export const UNCHANGED: unique symbol = Symbol('unchanged');
/** What a change gets (the parsed document) and gives back (anything the schema reads back as one). */
export type Change<Out, In> = (
  current: Out | undefined,
) => In | typeof UNCHANGED | Promise<In | typeof UNCHANGED>;

export class VersionedDocuments<S extends z.ZodType> {
  readonly store: ObjectStore;
  readonly #schema: S;
  readonly #options: DocumentOptions;

  constructor(store: ObjectStore, schema: S, options: DocumentOptions) {
    this.store = store;
    this.#schema = schema;
    this.#options = options;
  }

  /** The document and its ETag, validated; `undefined` when there is none. */
  async read(key: string): Promise<Versioned<z.output<S>> | undefined> {
    const object = await this.store.get(key);
    if (!object) return undefined;
    return { value: this.#parse(key, object.body), etag: object.etag };
  }

  /** Stores a new document; `PreconditionFailedError` if one exists already (create-once). */
  async create(key: string, value: z.input<S>): Promise<string> {
    return (await this.store.put(key, toJson(value), { ifNoneMatch: '*', ...JSON_TYPE })).etag;
  }

  /**
   * Read-modify-write: `change` gets the current value (`undefined` when there is none) and returns
   * the new one, or `UNCHANGED`; it may run several times, once per try, so any side effect it has
   * must be safe to repeat (a sweep's report is written from the version it stamps). Throwing from it aborts the update (a fence, a 409). Returns
   * the version now stored, or `undefined` when there is none and `change` left it so.
   */
  async update(
    key: string,
    change: Change<z.output<S>, z.input<S>>,
  ): Promise<Versioned<z.output<S>> | undefined> {
    for (let failures = 0; ; ) {
      const current = await this.read(key);
      const next = await change(current?.value);
      if (next === UNCHANGED) return current;
      try {
        const put = await this.store.put(
          key,
          toJson(next),
          current ? { ifMatch: current.etag, ...JSON_TYPE } : { ifNoneMatch: '*', ...JSON_TYPE },
        );
        return { value: this.#schema.parse(next) as z.output<S>, etag: put.etag };
      } catch (error) {
        if (!(error instanceof PreconditionFailedError)) throw error;
        await this.#backoff(++failures);
      }
    }
  }

  /**
   * A fenced overwrite, for documents one writer owns at a time (a job's metrics, its checkpoint
   * pointer): writes `value` over the version this writer last saw (`since`: its ETag, or `null` for
   * none). If another writer got in between, `onConflict` decides: it throws to give up (this
   * writer lost ownership) or returns to write over the newer version. Returns the new ETag.
   */
  async overwrite(
    key: string,
    value: z.input<S>,
    since: string | null,
    onConflict: () => Promise<void>,
  ): Promise<string> {
    let etag = since;
    for (let failures = 0; ; ) {
      try {
        const put = await this.store.put(
          key,
          toJson(value),
          etag ? { ifMatch: etag, ...JSON_TYPE } : { ifNoneMatch: '*', ...JSON_TYPE },
        );
        return put.etag;
      } catch (error) {
        if (!(error instanceof PreconditionFailedError)) throw error;
        await onConflict();
        await this.#backoff(++failures);
        etag = (await this.store.head(key))?.etag ?? null;
      }
    }
  }

  #parse(key: string, body: Uint8Array): z.output<S> {
    let raw: unknown;
    try {
      raw = fromJson(body);
    } catch (error) {
      throw new CorruptDocumentError(key, `not JSON (${(error as Error).message})`);
    }
    const parsed = this.#schema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new CorruptDocumentError(
        key,
        `not a ${this.#options.what}${issue ? ` (${issue.path.join('.') || 'root'}: ${issue.message})` : ''}`,
      );
    }
    return parsed.data;
  }

  async #backoff(failures: number): Promise<void> {
    const wait = casBackoffMs(
      failures,
      this.#options.retry ?? CAS_RETRY,
      this.#options.random ?? Math.random,
    );
    if (wait === undefined) throw new BusyError(this.#options.what);
    await (this.#options.sleep ?? timer)(wait);
  }
}
