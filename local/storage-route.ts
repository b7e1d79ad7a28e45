/**
 * Serves the presigned `/_storage/...` URLs of an `FsObjectStore`, as S3 serves its presigned URLs:
 * GET/HEAD read the object, PUT writes it, once `verifyPresigned` accepts the signature.
 *
 * Uploads are streamed to the store (never buffered whole), at most `maxConcurrentUploads` at once
 * (more get a 503 with Retry-After), one at a time per object (a second PUT while one is in flight
 * is a 409), and a full storage is a 507 that says so.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isApiError, isStorageFull } from '../core/platform/errors.ts';
import type { ObjectStore } from '../core/platform/ports.ts';
import { parseStorageUrl, verifyPresigned } from './fs-object-store.ts';

const fail = (response: ServerResponse, status: number, code: string, message: string): void => {
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    ...(status === 503 ? { 'retry-after': '1' } : {}),
    // The rest of a body refused part-way is not read: the connection closes after the answer.
    ...(status === 413 || status === 507 ? { connection: 'close' } : {}),
  });
  response.end(JSON.stringify({ error: { code, message } }));
};

/** Reads a request body, refusing more than `maxBytes` (returns `undefined` when over). */
export async function readBody(request: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  const declared = Number(request.headers['content-length'] ?? '0');
  if (declared > maxBytes) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export interface StorageRouteOptions {
  readonly maxUploadBytes: number;
  /** @default 4 */
  readonly maxConcurrentUploads?: number;
}

export type StorageRoute = (request: IncomingMessage, response: ServerResponse) => Promise<void>;

/** The `/_storage/` handler of one gateway, with its uploads in flight. */
export function createStorageRoute(
  store: ObjectStore,
  secret: string | Uint8Array,
  options: StorageRouteOptions,
): StorageRoute {
  const uploading = new Set<string>();
  const maxConcurrent = options.maxConcurrentUploads ?? 4;

  const upload = async (
    key: string,
    request: IncomingMessage,
    response: ServerResponse,
    contentType: string | undefined,
  ) => {
    if (Number(request.headers['content-length'] ?? '0') > options.maxUploadBytes) {
      request.resume();
      return fail(
        response,
        413,
        'PAYLOAD_TOO_LARGE',
        `Uploads are limited to ${options.maxUploadBytes} bytes.`,
      );
    }
    if (uploading.has(key)) {
      request.resume();
      return fail(
        response,
        409,
        'UPLOAD_IN_PROGRESS',
        'An upload to this URL is already in progress; wait for it to finish.',
      );
    }
    if (uploading.size >= maxConcurrent) {
      request.resume();
      return fail(
        response,
        503,
        'TOO_MANY_UPLOADS',
        `The server takes ${maxConcurrent} uploads at once; retry in a moment.`,
      );
    }
    uploading.add(key);
    try {
      const put = { ...(contentType === undefined ? {} : { contentType }), maxBytes: options.maxUploadBytes };
      const { etag } = await store.putStream(key, request, put);
      response.writeHead(200, { etag });
      response.end();
    } catch (error) {
      if (response.headersSent) return void response.destroy();
      // Answered with `connection: close`: the rest of the body is not read.
      if (isStorageFull(error)) return fail(response, 507, 'INSUFFICIENT_STORAGE', (error as Error).message);
      if (isApiError(error)) return fail(response, error.status, error.code, error.message);
      if (request.destroyed) return void response.destroy(); // the client went away: nothing to answer
      throw error;
    } finally {
      uploading.delete(key);
    }
  };

  return async (request, response) => {
    const parsed = parseStorageUrl(new URL(request.url ?? '/', 'http://localhost'));
    if (parsed === undefined) return fail(response, 404, 'NOT_FOUND', 'Not a storage URL.');
    const method = request.method === 'HEAD' ? 'GET' : request.method;
    if (method !== parsed.method)
      return fail(response, 403, 'SIGNATURE_INVALID', `This URL is signed for ${parsed.method}.`);
    const verdict = verifyPresigned(secret, parsed, Math.floor(Date.now() / 1000));
    if (verdict === 'invalid')
      return fail(
        response,
        403,
        'SIGNATURE_INVALID',
        'The URL signature does not match; use the URL exactly as the API returned it.',
      );
    if (verdict === 'expired')
      return fail(response, 403, 'URL_EXPIRED', 'This URL has expired; ask the API for a new one.');

    if (parsed.method === 'PUT') {
      const contentType = request.headers['content-type'];
      if (parsed.contentType !== undefined && contentType !== parsed.contentType) {
        return fail(
          response,
          403,
          'SIGNATURE_INVALID',
          `This URL is signed for Content-Type: ${parsed.contentType}.`,
        );
      }
      return upload(parsed.key, request, response, contentType);
    }
    const object = await store.get(parsed.key);
    if (object === undefined) return fail(response, 404, 'NOT_FOUND', 'No such object.');
    response.writeHead(200, {
      etag: object.etag,
      'content-type': object.contentType ?? 'application/octet-stream',
      'content-length': object.body.byteLength,
    });
    response.end(request.method === 'HEAD' ? undefined : object.body);
  };
}
