import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { type FauxqsServer, startFauxqs } from 'fauxqs';
import { S3ObjectStore } from '../../aws/s3-object-store.ts';
import { PreconditionFailedError } from '../../core/platform/errors.ts';
import { objectStoreContract } from './object-store-contract.ts';

const clientFor = (server: FauxqsServer): S3Client =>
  new S3Client({
    endpoint: server.address,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });

objectStoreContract('S3ObjectStore on the fauxqs emulator', async () => {
  const server = await startFauxqs({ port: 0, logger: false });
  const bucket = `contract-${randomUUID()}`;
  server.createBucket(bucket);
  const client = clientFor(server);
  return {
    store: new S3ObjectStore({ client, bucket }),
    enforcesPreconditions: false,
    bytewiseListingSkipReason:
      'the fauxqs emulator sorts listings with localeCompare, not in S3 bytewise order; covered by the local store',
    teardown: async () => {
      client.destroy();
      await server.stop();
    },
  };
});

describe('S3ObjectStore (S3 only)', () => {
  let server: FauxqsServer;
  let client: S3Client;
  const bucket = 'adapter-tests';

  before(async () => {
    server = await startFauxqs({ port: 0, logger: false });
    server.createBucket(bucket);
    client = clientFor(server);
  });
  after(async () => {
    client.destroy();
    await server.stop();
  });

  it('uploads a body over 16 MiB in parts and reads it back', async () => {
    const store = new S3ObjectStore({ client, bucket });
    const body = new Uint8Array(17 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4096) body[i] = (i / 4096) % 251;
    const { etag } = await store.put('big/weights.bin', body, { contentType: 'application/octet-stream' });
    assert.match(etag, /-\d+"$/, 'a multipart ETag ends in -<parts>');
    const info = await store.head('big/weights.bin');
    assert.equal(info?.size, body.length);
    const tail = await store.get('big/weights.bin', {
      range: { start: body.length - 8192, end: body.length - 1 },
    });
    assert.deepEqual(new Uint8Array(tail?.body ?? []), body.subarray(body.length - 8192));
  });

  it('maps S3 precondition answers (412, 409 conflict, 404 on ifMatch) to PreconditionFailedError', async () => {
    const answers = [
      Object.assign(new Error('At least one of the pre-conditions you specified did not hold'), {
        name: 'PreconditionFailed',
        $metadata: { httpStatusCode: 412 },
      }),
      Object.assign(new Error('conflict'), {
        name: 'ConditionalRequestConflict',
        $metadata: { httpStatusCode: 409 },
      }),
      Object.assign(new Error('The specified key does not exist.'), {
        name: 'NoSuchKey',
        $metadata: { httpStatusCode: 404 },
      }),
    ];
    for (const answer of answers) {
      const failing = { send: async () => Promise.reject(answer) } as unknown as S3Client;
      const store = new S3ObjectStore({ client: failing, bucket });
      await assert.rejects(store.put('k', 'v', { ifMatch: '"abc"' }), PreconditionFailedError);
    }
    const other = Object.assign(new Error('denied'), {
      name: 'AccessDenied',
      $metadata: { httpStatusCode: 403 },
    });
    const denied = new S3ObjectStore({
      client: { send: async () => Promise.reject(other) } as unknown as S3Client,
      bucket,
    });
    await assert.rejects(denied.put('k', 'v', { ifNoneMatch: '*' }), /denied/);
  });

  it('sends IfMatch / IfNoneMatch with the put', async () => {
    const inputs: Record<string, unknown>[] = [];
    const recording = {
      send: async (command: { input: Record<string, unknown> }) => {
        inputs.push(command.input);
        return { ETag: '"e"' };
      },
    } as unknown as S3Client;
    const store = new S3ObjectStore({ client: recording, bucket });
    await store.put('a', 'x', { ifNoneMatch: '*' });
    await store.put('a', 'y', { ifMatch: '"e"', contentType: 'text/plain' });
    assert.equal(inputs[0]?.IfNoneMatch, '*');
    assert.equal(inputs[1]?.IfMatch, '"e"');
    assert.equal(inputs[1]?.ContentType, 'text/plain');
  });

  it('presigns a PUT that signs the content type', async () => {
    const store = new S3ObjectStore({ client, bucket });
    const url = new URL(
      await store.presignPut('up/x.csv', { expiresInSeconds: 300, contentType: 'text/csv' }),
    );
    assert.equal(url.searchParams.get('X-Amz-Expires'), '300');
    assert.match(url.searchParams.get('X-Amz-SignedHeaders') ?? '', /content-type/);
  });
});
