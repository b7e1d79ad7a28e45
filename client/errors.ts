/** The client's typed errors. Browser-safe: no Node imports. */

/** Base of every error the client throws on purpose; `code` is stable and machine-readable. */
export class DescentError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DescentError';
    this.code = code;
  }
}

/**
 * The API (or a presigned storage URL, or the token endpoint) answered with an error status.
 * `code`, `message` and `details` are the API's `{error: {code, message, details}}`.
 */
export class DescentApiError extends DescentError {
  readonly status: number;
  readonly details?: unknown;
  /** The request id the server gave, when it gave one (quote it in bug reports). */
  readonly requestId?: string;
  /** `METHOD path` of the failed call. */
  readonly request?: string;

  constructor(
    status: number,
    code: string,
    message: string,
    extra: { details?: unknown; requestId?: string; request?: string } = {},
  ) {
    super(code, message);
    this.name = 'DescentApiError';
    this.status = status;
    if (extra.details !== undefined) this.details = extra.details;
    if (extra.requestId !== undefined) this.requestId = extra.requestId;
    if (extra.request !== undefined) this.request = extra.request;
  }

  /** True for a missing, invalid or expired credential (401) or a missing permission (403). */
  get isAuthError(): boolean {
    return this.status === 401 || this.status === 403;
  }

  /** The API's error shape, as a script would want it. */
  toJSON(): { status: number; code: string; message: string; details?: unknown; requestId?: string } {
    return {
      status: this.status,
      code: this.code,
      message: this.message,
      ...(this.details === undefined ? {} : { details: this.details }),
      ...(this.requestId === undefined ? {} : { requestId: this.requestId }),
    };
  }
}

/** The request never got an answer: connection refused or reset, DNS failure, or a timeout. */
export class DescentNetworkError extends DescentError {
  constructor(message: string, options: { cause?: unknown; timeout?: boolean } = {}) {
    super(options.timeout ? 'TIMEOUT' : 'NETWORK_ERROR', message, { cause: options.cause });
    this.name = 'DescentNetworkError';
  }
}

/** Builds a `DescentApiError` from an error response: the API's JSON shape, S3's XML, or plain text. */
export function apiErrorFrom(
  status: number,
  statusText: string,
  text: string,
  headers: Headers,
  request?: string,
): DescentApiError {
  const requestId =
    headers.get('apigw-requestid') ?? headers.get('x-amzn-requestid') ?? headers.get('x-amz-request-id');
  const extra: { requestId?: string; request?: string } = {
    ...(requestId ? { requestId } : {}),
    ...(request ? { request } : {}),
  };
  try {
    const body = JSON.parse(text) as { error?: unknown; error_description?: unknown; message?: unknown };
    const error = body?.error;
    if (error && typeof error === 'object') {
      const e = error as { code?: unknown; message?: unknown; details?: unknown };
      // A 500 names its request id in the details, for the logs.
      const detailsId = (e.details as { requestId?: unknown } | undefined)?.requestId;
      if (!extra.requestId && typeof detailsId === 'string') Object.assign(extra, { requestId: detailsId });
      return new DescentApiError(
        status,
        typeof e.code === 'string' ? e.code : `HTTP_${status}`,
        typeof e.message === 'string' ? e.message : statusText || `HTTP ${status}`,
        { ...extra, ...(e.details === undefined ? {} : { details: e.details }) },
      );
    }
    // OAuth token endpoints: {"error": "invalid_client", "error_description": "…"}.
    if (typeof error === 'string') {
      const description = typeof body.error_description === 'string' ? `: ${body.error_description}` : '';
      return new DescentApiError(status, error.toUpperCase(), `${error}${description}`, extra);
    }
    // API Gateway's own answers, e.g. {"message": "Unauthorized"}.
    if (typeof body?.message === 'string')
      return new DescentApiError(
        status,
        status === 401 ? 'UNAUTHORIZED' : `HTTP_${status}`,
        body.message,
        extra,
      );
  } catch {}
  // S3: <Error><Code>AccessDenied</Code><Message>…</Message></Error>.
  const xmlCode = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
  if (xmlCode) {
    const xmlMessage = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
    return new DescentApiError(status, xmlCode, xmlMessage ?? xmlCode, extra);
  }
  const plain = text.trim().slice(0, 300);
  return new DescentApiError(status, `HTTP_${status}`, plain || statusText || `HTTP ${status}`, extra);
}
