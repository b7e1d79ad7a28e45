/** A scripted HTTP server on 127.0.0.1 for client tests: records every request, answers from a handler. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export type Reply =
  | { status: number; body?: unknown; headers?: Record<string, string>; raw?: string }
  | 'hang'
  | 'drop';

export interface FakeServer {
  readonly url: string;
  readonly requests: Recorded[];
  /** Answers each request; `n` counts the requests so far (1 = the first). */
  handle(handler: (request: Recorded, n: number) => Reply | Promise<Reply>): void;
  close(): Promise<void>;
}

export async function startFakeServer(): Promise<FakeServer> {
  const requests: Recorded[] = [];
  let handler: (request: Recorded, n: number) => Reply | Promise<Reply> = () => ({ status: 404 });
  const hanging = new Set<ServerResponse>();
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const recorded: Recorded = {
      method: request.method ?? 'GET',
      path: request.url ?? '/',
      headers: request.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    };
    requests.push(recorded);
    const reply = await handler(recorded, requests.length);
    if (reply === 'hang') {
      hanging.add(response);
      return;
    }
    if (reply === 'drop') {
      request.socket.destroy();
      return;
    }
    const text = reply.raw ?? (reply.body === undefined ? '' : JSON.stringify(reply.body));
    response.writeHead(reply.status, {
      ...(reply.raw === undefined ? { 'content-type': 'application/json' } : {}),
      ...reply.headers,
    });
    response.end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    handle: (h) => {
      handler = h;
    },
    close: async () => {
      for (const response of hanging) response.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
