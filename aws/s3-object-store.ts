/** `ObjectStore` on S3: conditional writes map to `PreconditionFailedError`, big bodies go multipart. */

import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { PayloadTooLargeError, PreconditionFailedError } from '../core/platform/errors.ts';
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

export interface S3ObjectStoreOptions {
  readonly client: S3Client;
  readonly bucket: string;
}

/** Bodies larger than this, written without preconditions, are uploaded in parts. */
const MULTIPART_THRESHOLD = 16 * 1024 * 1024;

interface AwsErrorShape {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

const awsError = (error: unknown): { name: string | undefined; status: number | undefined } => {
  const shape = (typeof error === 'object' && error !== null ? error : {}) as AwsErrorShape;
  return { name: shape.name ?? shape.Code, status: shape.$metadata?.httpStatusCode };
};

const isNotFound = (error: unknown): boolean => {
  const { name, status } = awsError(error);
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404;
};

const isPreconditionFailure = (error: unknown): boolean => {
  const { name, status } = awsError(error);
  return (
    name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || status === 412 || status === 409
  );
};

const toBytes = (body: Uint8Array | string): Uint8Array =>
  typeof body === 'string' ? new TextEncoder().encode(body) : body;

/** The total size from a `Content-Range: bytes 0-9/1234` header. */
const totalFromContentRange = (contentRange: string | undefined): number | undefined => {
  const match = /\/(\d+)$/.exec(contentRange ?? '');
  return match?.[1] === undefined ? undefined : Number(match[1]);
};

export class S3ObjectStore implements ObjectStore {
  readonly #client: S3Client;
  readonly #bucket: string;

  constructor(options: S3ObjectStoreOptions) {
    this.#client = options.client;
    this.#bucket = options.bucket;
  }

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<{ etag: string }> {
    const bytes = toBytes(body);
    const conditional = options.ifMatch !== undefined || options.ifNoneMatch !== undefined;
    const params = {
      Bucket: this.#bucket,
      Key: key,
      Body: bytes,
      ...(options.contentType === undefined ? {} : { ContentType: options.contentType }),
    };
    if (!conditional && bytes.byteLength > MULTIPART_THRESHOLD) {
      const result = await new Upload({ client: this.#client, params }).done();
      return { etag: result.ETag ?? (await this.#etagAfterWrite(key)) };
    }
    try {
      const result = await this.#client.send(
        new PutObjectCommand({
          ...params,
          ...(options.ifMatch === undefined ? {} : { IfMatch: options.ifMatch }),
          ...(options.ifNoneMatch === undefined ? {} : { IfNoneMatch: options.ifNoneMatch }),
        }),
      );
      return { etag: result.ETag ?? (await this.#etagAfterWrite(key)) };
    } catch (error) {
      // S3 answers If-Match on a missing key with 404 NoSuchKey.
      if (isPreconditionFailure(error) || (options.ifMatch !== undefined && isNotFound(error))) {
        throw new PreconditionFailedError(key);
      }
      throw error;
    }
  }

  /**
   * A multipart upload fed as the body arrives (lib-storage's `Upload`: parts of 5 MiB, a few in
   * flight; a body under one part is a single PUT). Should the body throw or pass `maxBytes`, no
   * object is made and the caller gets the body's error: the upload is aborted where the role may
   * (`s3:AbortMultipartUpload`; descent's roles are not granted it, and the bucket's lifecycle rule
   * expires the parts of an unfinished upload), and a refused abort does not hide the body's error.
   */
  async putStream(
    key: string,
    body: AsyncIterable<Uint8Array>,
    options: PutStreamOptions,
  ): Promise<{ etag: string; size: number }> {
    let size = 0;
    let failed: { error: unknown } | undefined;
    const counted = async function* () {
      try {
        for await (const chunk of body) {
          size += chunk.byteLength;
          if (size > options.maxBytes)
            throw new PayloadTooLargeError(`Writes are limited to ${options.maxBytes} bytes.`);
          yield chunk;
        }
      } catch (error) {
        failed = { error };
        throw error;
      }
    };
    const params = {
      Bucket: this.#bucket,
      Key: key,
      Body: Readable.from(counted(), { objectMode: false }),
      ...(options.contentType === undefined ? {} : { ContentType: options.contentType }),
    };
    try {
      const result = await new Upload({ client: this.#client, params, leavePartsOnError: false }).done();
      return { etag: result.ETag ?? (await this.#etagAfterWrite(key)), size };
    } catch (error) {
      throw failed ? failed.error : error;
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | undefined> {
    const range = options.range;
    if (range !== undefined) {
      const { start, end } = range;
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
        throw new RangeError(`invalid range ${JSON.stringify(range)}`);
      }
    }
    try {
      const result = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: key,
          ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end}` }),
        }),
      );
      const body = result.Body === undefined ? new Uint8Array() : await result.Body.transformToByteArray();
      const size = totalFromContentRange(result.ContentRange) ?? result.ContentLength ?? body.byteLength;
      return {
        key,
        etag: result.ETag ?? '',
        size,
        lastModified: result.LastModified ?? new Date(0),
        body,
        ...(result.ContentType === undefined ? {} : { contentType: result.ContentType }),
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      // A range that starts past the end: the object exists, the slice is empty (as the local store).
      if (
        range !== undefined &&
        (awsError(error).status === 416 || awsError(error).name === 'InvalidRange')
      ) {
        const info = await this.head(key);
        return info === undefined ? undefined : { ...info, body: new Uint8Array() };
      }
      throw error;
    }
  }

  async getStream(key: string): Promise<AsyncIterable<Uint8Array> | undefined> {
    try {
      const result = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }));
      // In Node the SDK's body is a Readable, which is an async iterable of Buffers.
      return (result.Body as unknown as AsyncIterable<Uint8Array> | undefined) ?? (async function* () {})();
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const result = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }));
      return {
        key,
        etag: result.ETag ?? '',
        size: result.ContentLength ?? 0,
        lastModified: result.LastModified ?? new Date(0),
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const result = await this.#client.send(
      new ListObjectsV2Command({
        Bucket: this.#bucket,
        Prefix: prefix,
        MaxKeys: options.limit ?? 1000,
        ...(options.cursor === undefined ? {} : { ContinuationToken: options.cursor }),
      }),
    );
    const objects: ObjectInfo[] = (result.Contents ?? []).map((object) => ({
      key: object.Key ?? '',
      etag: object.ETag ?? '',
      size: object.Size ?? 0,
      lastModified: object.LastModified ?? new Date(0),
    }));
    return result.IsTruncated && result.NextContinuationToken
      ? { objects, nextCursor: result.NextContinuationToken }
      : { objects };
  }

  async delete(key: string): Promise<void> {
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  async presignGet(key: string, options: PresignOptions): Promise<string> {
    return getSignedUrl(this.#client, new GetObjectCommand({ Bucket: this.#bucket, Key: key }), {
      expiresIn: options.expiresInSeconds,
    });
  }

  async presignPut(key: string, options: PresignOptions): Promise<string> {
    const contentType = options.contentType;
    return getSignedUrl(
      this.#client,
      new PutObjectCommand({
        Bucket: this.#bucket,
        Key: key,
        ...(contentType === undefined ? {} : { ContentType: contentType }),
      }),
      {
        expiresIn: options.expiresInSeconds,
        // The uploader must then send exactly this Content-Type.
        ...(contentType === undefined ? {} : { signableHeaders: new Set(['content-type']) }),
      },
    );
  }

  async #etagAfterWrite(key: string): Promise<string> {
    const info = await this.head(key);
    if (info === undefined) throw new Error(`S3 returned no ETag for ${key} and the object is not there`);
    return info.etag;
  }
}
