/**
 * The HTTP plumbing shared by every handler: API Gateway HTTP API (payload v2) events in, results
 * out; JSON bodies with limits; typed errors mapped to `{error: {code, message, details}}`.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import {
  ApiError,
  BadRequestError,
  isStorageFull,
  PayloadTooLargeError,
  PreconditionFailedError,
  StorageFullError,
  UnauthorizedError,
  UnsupportedMediaTypeError,
} from '../core/platform/errors.ts';
import { TENANT_PATTERN } from '../core/platform/keys.ts';
import { log } from '../core/platform/log.ts';

/** What reaches a handler: a v2 event, authorized either by the JWT authorizer or the local gateway. */
export type ApiEvent = APIGatewayProxyEventV2 & {
  requestContext: APIGatewayProxyEventV2['requestContext'] & {
    authorizer?: {
      jwt?: { claims: Record<string, string | number | boolean | string[]>; scopes?: string[] | null };
      lambda?: { tenant?: string };
    };
  };
};
export type ApiResult = APIGatewayProxyStructuredResultV2;
export type ApiHandler = (event: ApiEvent) => Promise<ApiResult>;

/** Largest JSON request body accepted (API Gateway's own limit is 10 MB). */
export const MAX_BODY_BYTES = 1024 * 1024;

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

export const json = (statusCode: number, body: unknown, headers: Record<string, string> = {}): ApiResult => ({
  statusCode,
  headers: { ...JSON_HEADERS, ...headers },
  body: JSON.stringify(body),
});

/**
 * The caller's tenant. In AWS it is the Cognito app client of the access token (one app client per
 * tenant); locally the gateway has already checked the bearer token and put its tenant here.
 */
export function tenantOf(event: ApiEvent): string {
  const authorizer = event.requestContext.authorizer;
  const claims = authorizer?.jwt?.claims;
  const tenant = claims ? (claims.client_id ?? claims.sub) : authorizer?.lambda?.tenant;
  if (typeof tenant !== 'string' || !TENANT_PATTERN.test(tenant)) throw new UnauthorizedError();
  return tenant;
}

export function header(event: ApiEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(event.headers ?? {}))
    if (key.toLowerCase() === wanted) return value;
  return undefined;
}

export function pathParam(event: ApiEvent, name: string): string {
  const value = event.pathParameters?.[name];
  if (value === undefined) throw new BadRequestError(`Missing path parameter ${name}.`);
  return value;
}

export const queryOf = (event: ApiEvent): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(event.queryStringParameters ?? {})) if (v !== undefined) out[k] = v;
  return out;
};

/** The request body parsed as JSON; a 4xx that says what is wrong otherwise. */
export function jsonBody(event: ApiEvent): unknown {
  const type = header(event, 'content-type');
  if (type && !/^application\/(.+\+)?json\b/i.test(type)) {
    throw new UnsupportedMediaTypeError(
      `Send the body as JSON with Content-Type: application/json (got ${type}).`,
    );
  }
  if (event.body === undefined || event.body === '')
    throw new BadRequestError('The request needs a JSON body.', undefined, 'MISSING_BODY');
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  if (Buffer.byteLength(text) > MAX_BODY_BYTES)
    throw new PayloadTooLargeError(`The body is larger than ${MAX_BODY_BYTES} bytes.`);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new BadRequestError(
      `The body is not valid JSON: ${(error as Error).message}`,
      undefined,
      'MALFORMED_JSON',
    );
  }
}

/** Wraps a handler body: typed errors become their 4xx, anything else a logged 500. */
export function api(fn: (event: ApiEvent) => Promise<ApiResult>): ApiHandler {
  return async (event) => {
    try {
      return await fn(event);
    } catch (error) {
      if (error instanceof ApiError) return json(error.status, error.toBody());
      // A write the storage had no room for: a 507 that says so (nothing was stored).
      if (isStorageFull(error)) return json(507, new StorageFullError().toBody());
      if (error instanceof PreconditionFailedError) {
        // Compare-and-swap lost to other writers every time it retried: the record is busy, not broken.
        return json(409, {
          error: { code: 'BUSY', message: 'The record changed while this request ran; retry it.' },
        });
      }
      const requestId = event.requestContext?.requestId;
      log.error('unhandled error in handler', {
        route: event.routeKey,
        requestId,
        error: String((error as Error)?.stack ?? error),
      });
      return json(500, {
        error: {
          code: 'INTERNAL',
          message: 'Internal error; retry, and report the request id if it persists.',
          details: { requestId },
        },
      });
    }
  };
}
