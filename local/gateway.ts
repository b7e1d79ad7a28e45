/**
 * The local stand-in for API Gateway: turns HTTP requests into HTTP API (payload v2) events, checks
 * the bearer token as the JWT authorizer would, and calls the very handlers Lambda runs, from the
 * same route table the CDK stack uses. It also serves the local presigned storage URLs.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { matchPath, type Route, routes } from '../core/api/routes.ts';
import {
  type ApiError,
  BadRequestError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  UnauthorizedError,
} from '../core/platform/errors.ts';
import type { Logger } from '../core/platform/log.ts';
import type { Services } from '../core/services.ts';
import { type ApiEvent, type ApiHandler, type ApiResult, MAX_BODY_BYTES } from '../functions/http.ts';
import { isDashboardPath, serveDashboard } from './dashboard/serve.ts';
import { createStorageRoute, readBody } from './storage-route.ts';
import type { TenantTokens } from './tenants.ts';

export interface GatewayOptions {
  readonly services: Services;
  readonly tokens: TenantTokens;
  /** Signs and verifies the local presigned URLs. */
  readonly storageSecret: string;
  readonly log: Logger;
}

type HandlerModule = { create: (s: Services) => ApiHandler };

function send(response: ServerResponse, result: ApiResult): void {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(result.headers ?? {})) headers[k] = String(v);
  response.writeHead(result.statusCode ?? 200, headers);
  response.end(
    result.isBase64Encoded && result.body ? Buffer.from(result.body, 'base64') : (result.body ?? ''),
  );
}

const errorResult = (error: ApiError): ApiResult => ({
  statusCode: error.status,
  headers: { 'content-type': 'application/json; charset=utf-8' },
  body: JSON.stringify(error.toBody()),
});

export function toEvent(
  request: IncomingMessage,
  url: URL,
  route: Route,
  params: Record<string, string>,
  body: Buffer,
  tenant?: string,
): ApiEvent {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(request.headers))
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(',') : v;
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = k in query ? `${query[k]},${v}` : v;
  const now = new Date();
  const routeKey = `${route.method} ${route.path}`;
  return {
    version: '2.0',
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    ...(url.search ? { queryStringParameters: query } : {}),
    ...(Object.keys(params).length ? { pathParameters: params } : {}),
    ...(body.length ? { body: body.toString('utf8') } : {}),
    isBase64Encoded: false,
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName: headers.host ?? 'localhost',
      domainPrefix: 'localhost',
      http: {
        method: route.method,
        path: url.pathname,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp: request.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: now.toISOString(),
      timeEpoch: now.getTime(),
      ...(tenant ? { authorizer: { lambda: { tenant } } } : {}),
    },
  };
}

/** Errors that only mean the client went away (closed the connection, reset it, stopped sending). */
const DISCONNECTED = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);
const isDisconnect = (error: unknown, request: IncomingMessage): boolean => {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
  return DISCONNECTED.has(code) || (error as Error)?.message === 'aborted' || request.destroyed;
};

/** The request's URL, or `undefined` when its target cannot be read as one (`GET //[ HTTP/1.1`). */
function requestUrl(request: IncomingMessage): URL | undefined {
  try {
    return new URL(request.url ?? '/', 'http://localhost');
  } catch {
    return undefined;
  }
}

export function createGateway(options: GatewayOptions): Server {
  const { services, tokens, log } = options;
  const storage = createStorageRoute(services.store, options.storageSecret, {
    maxUploadBytes: services.limits.maxDatasetBytes,
    maxConcurrentUploads: services.limits.maxConcurrentUploads,
  });
  const handlers = new Map<string, Promise<ApiHandler>>();
  const handlerFor = (route: Route) => {
    let handler = handlers.get(route.handler);
    if (!handler) {
      handler = (import(`../functions/${route.handler}.ts`) as Promise<HandlerModule>).then((m) =>
        m.create(services),
      );
      handlers.set(route.handler, handler);
    }
    return handler;
  };

  const serve = async (request: IncomingMessage, response: ServerResponse) => {
    const url = requestUrl(request);
    if (!url) {
      request.resume();
      return send(
        response,
        errorResult(
          new BadRequestError('The request target is not a valid URL path.', undefined, 'MALFORMED_REQUEST'),
        ),
      );
    }
    if (url.pathname.startsWith('/_storage/')) return storage(request, response);
    // The local dashboard's page and assets (the page calls the API with the same token).
    if (isDashboardPath(url.pathname)) return serveDashboard(request, response, url.pathname);
    const candidates = routes
      .map((route) => ({ route, params: matchPath(route.path, url.pathname) }))
      .filter((c) => c.params);
    if (candidates.length === 0) {
      request.resume();
      return send(
        response,
        errorResult(
          new NotFoundError(
            `No route ${request.method} ${url.pathname}; see GET /openapi.json for the API.`,
            'ROUTE_NOT_FOUND',
          ),
        ),
      );
    }
    const match = candidates.find((c) => c.route.method === request.method);
    if (!match?.params) {
      request.resume();
      const allowed = candidates.map((c) => c.route.method).join(', ');
      return send(
        response,
        errorResult(new MethodNotAllowedError(`${url.pathname} accepts ${allowed}, not ${request.method}.`)),
      );
    }
    let tenant: string | undefined;
    if (match.route.scope) {
      const auth = request.headers.authorization ?? '';
      const token = /^Bearer\s+(\S+)$/i.exec(auth)?.[1];
      tenant = token ? tokens.tenantFor(token) : undefined;
      if (!tenant && token) {
        await tokens.reload();
        tenant = tokens.tenantFor(token);
      }
      if (!tenant) {
        request.resume();
        return send(response, errorResult(new UnauthorizedError()));
      }
    }
    const body = await readBody(request, MAX_BODY_BYTES);
    if (!body) {
      request.resume();
      return send(
        response,
        errorResult(new PayloadTooLargeError(`The body is larger than ${MAX_BODY_BYTES} bytes.`)),
      );
    }
    const started = performance.now();
    const handler = await handlerFor(match.route);
    const result = await handler(toEvent(request, url, match.route, match.params, body, tenant));
    send(response, result);
    log.debug('request', {
      route: match.route.path,
      method: request.method,
      status: result.statusCode,
      ms: +(performance.now() - started).toFixed(1),
    });
  };

  const server = createServer((request, response) => {
    serve(request, response).catch((error: unknown) => {
      if (isDisconnect(error, request)) {
        // The client went away mid-request: nothing to answer, nothing wrong with the service.
        log.debug('client disconnected', {
          method: request.method,
          error: String((error as Error)?.message ?? error),
        });
        response.destroy();
        return;
      }
      log.error('gateway error', { error: String((error as Error)?.stack ?? error) });
      if (!response.headersSent)
        send(response, {
          statusCode: 500,
          body: JSON.stringify({ error: { code: 'INTERNAL', message: 'Internal error.' } }),
        });
      else response.destroy();
    });
  });
  // A request Node's parser cannot read (a malformed request line, bad headers): a 400, not a log entry.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || error.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const body = JSON.stringify({
      error: { code: 'MALFORMED_REQUEST', message: 'The request could not be parsed as HTTP/1.1.' },
    });
    socket.end(
      `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    log.debug('malformed request', { error: error.code ?? error.message });
  });
  return server;
}
