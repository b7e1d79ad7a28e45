/**
 * The two ports the domain talks to. Adapters: `local/` (filesystem, SQLite) and `aws/` (S3, SQS).
 * One contract suite (`test/contract/`) runs against every adapter.
 */

export interface PutOptions {
  /** Write only if the current object's ETag equals this one (compare-and-swap). */
  readonly ifMatch?: string;
  /** `'*'`: write only if no object exists under the key (create-once). */
  readonly ifNoneMatch?: '*';
  readonly contentType?: string;
}

export interface PutStreamOptions {
  readonly contentType?: string;
  /** Past this many bytes the write stops with a `PayloadTooLargeError` (413) and keeps nothing. */
  readonly maxBytes: number;
}

export interface GetOptions {
  /** Inclusive byte range, as HTTP's `Range: bytes=start-end`. */
  readonly range?: { readonly start: number; readonly end: number };
}

export interface ObjectInfo {
  readonly key: string;
  readonly etag: string;
  readonly size: number;
  readonly lastModified: Date;
}

export interface StoredObject extends ObjectInfo {
  readonly body: Uint8Array;
  readonly contentType?: string;
}

export interface ListOptions {
  /** The `nextCursor` of the previous page. */
  readonly cursor?: string;
  /** At most this many objects per page (default 1000). */
  readonly limit?: number;
}

export interface ListPage {
  /** Objects in ascending key order (bytewise, as S3 lists). */
  readonly objects: ObjectInfo[];
  readonly nextCursor?: string;
}

export interface PresignOptions {
  readonly expiresInSeconds: number;
  /** For PUT: the content type the uploader must send. */
  readonly contentType?: string;
}

export interface ObjectStore {
  /** Stores the body; returns the new ETag. Throws `PreconditionFailedError` when a precondition fails. */
  put(key: string, body: Uint8Array | string, options?: PutOptions): Promise<{ etag: string }>;
  /**
   * Stores a body that arrives as a stream (an upload, a long output) without holding it whole:
   * all of it or nothing (a body that throws, or grows past `maxBytes`, leaves no object).
   */
  putStream(
    key: string,
    body: AsyncIterable<Uint8Array>,
    options: PutStreamOptions,
  ): Promise<{ etag: string; size: number }>;
  /** The object, or `undefined` when there is none. */
  get(key: string, options?: GetOptions): Promise<StoredObject | undefined>;
  head(key: string): Promise<ObjectInfo | undefined>;
  /** The object's bytes as a stream of chunks (large datasets are parsed as they arrive), or `undefined`. */
  getStream(key: string): Promise<AsyncIterable<Uint8Array> | undefined>;
  list(prefix: string, options?: ListOptions): Promise<ListPage>;
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  presignGet(key: string, options: PresignOptions): Promise<string>;
  presignPut(key: string, options: PresignOptions): Promise<string>;
}

export interface QueueMessage {
  readonly messageId: string;
  readonly body: string;
  /** Identifies this delivery; changes on every receive. */
  readonly receiptHandle: string;
  /** 1 on the first delivery. */
  readonly receiveCount: number;
}

export interface ReceiveOptions {
  /** Long poll: wait up to this many seconds for a message (0 = return at once). */
  readonly waitSeconds: number;
  /** How long the received messages stay invisible (default: the queue's). */
  readonly visibilityTimeoutSeconds?: number;
  /** Default 1, at most 10. */
  readonly maxMessages?: number;
  /** Aborting ends the long poll early with no messages. */
  readonly signal?: AbortSignal;
}

export interface QueueDepth {
  /** Messages waiting to be received. */
  readonly visible: number;
  /** Messages received and not yet deleted or visible again. */
  readonly inFlight: number;
}

export interface JobQueue {
  send(body: string, options?: { delaySeconds?: number }): Promise<{ messageId: string }>;
  /**
   * Receives up to `maxMessages`. A message received more than the queue's maximum receive count
   * goes to the dead-letter queue instead of being delivered.
   */
  receive(options: ReceiveOptions): Promise<QueueMessage[]>;
  /** Heartbeat: the message stays invisible for `seconds` from now. */
  extendVisibility(receiptHandle: string, seconds: number): Promise<void>;
  /** Makes the message visible again now (for another worker). */
  release(receiptHandle: string): Promise<void>;
  delete(receiptHandle: string): Promise<void>;
  depth(): Promise<QueueDepth>;
}
