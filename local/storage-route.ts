/**
 * Serves the presigned `/_storage/...` URLs of an `FsObjectStore`, as S3 serves its presigned URLs:
 * GET/HEAD read the object, PUT writes it, once `verifyPresigned` accepts the signature.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ObjectStore } from '../core/platform/ports.ts';
import { parseStorageUrl, verifyPresigned } from './fs-object-store.ts';

const fail = (response: ServerResponse, status: number, code: string, message: string): void => {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
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

export async function handleStorageRequest(
  store: ObjectStore,
  secret: string | Uint8Array,
  request: IncomingMessage,
  response: ServerResponse,
  options: { maxUploadBytes: number },
): Promise<void> {
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
    const body = await readBody(request, options.maxUploadBytes);
    if (!body) {
      request.resume();
      return fail(
        response,
        413,
        'PAYLOAD_TOO_LARGE',
        `Uploads are limited to ${options.maxUploadBytes} bytes.`,
      );
    }
    const { etag } = await store.put(parsed.key, body, contentType === undefined ? {} : { contentType });
    response.writeHead(200, { etag });
    response.end();
    return;
  }
  const object = await store.get(parsed.key);
  if (object === undefined) return fail(response, 404, 'NOT_FOUND', 'No such object.');
  response.writeHead(200, {
    etag: object.etag,
    'content-type': object.contentType ?? 'application/octet-stream',
    'content-length': object.body.byteLength,
  });
  response.end(request.method === 'HEAD' ? undefined : object.body);
}
