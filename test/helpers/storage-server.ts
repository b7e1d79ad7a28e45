/**
 * A tiny HTTP server that serves the presigned `/_storage/...` URLs of an `FsObjectStore` with the
 * same route the local gateway uses, for contract tests that exercise presigned URLs.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ObjectStore } from '../../core/platform/ports.ts';
import { createStorageRoute } from '../../local/storage-route.ts';

export interface StorageServer {
  /** `http://127.0.0.1:<port>`, to pass as the store's `baseUrl`. */
  readonly url: string;
  close(): Promise<void>;
}

export async function startStorageServer(
  store: ObjectStore,
  secret: string | Uint8Array,
): Promise<StorageServer> {
  const route = createStorageRoute(store, secret, { maxUploadBytes: 64 * 1024 * 1024 });
  const server = createServer((request, response) => {
    route(request, response).catch((error: unknown) => {
      if (!response.headersSent) {
        response.writeHead(500, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ error: { code: 'INTERNAL', message: String(error) } }));
      } else response.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
