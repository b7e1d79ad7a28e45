/**
 * Typed errors. API errors carry their HTTP status and a stable `code`, and serialise to the API's
 * error shape `{error: {code, message, details}}`. Anything else that reaches a handler is a 500.
 * Messages and details quote user input (cells, column names), so both are bounded here, once.
 */
import { bounded, boundedValue } from './text.ts';

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details?: unknown;

  constructor(status: number, code: string, message: string, details?: unknown) {
    super(bounded(message));
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details === undefined ? undefined : boundedValue(details);
  }

  toBody(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

export class BadRequestError extends ApiError {
  constructor(message: string, details?: unknown, code = 'BAD_REQUEST') {
    super(400, code, message, details);
    this.name = 'BadRequestError';
  }
}

export class ValidationError extends ApiError {
  constructor(message: string, details?: unknown) {
    super(400, 'VALIDATION_ERROR', message, details);
    this.name = 'ValidationError';
  }
}

export class UnauthorizedError extends ApiError {
  constructor(message = 'Missing or invalid bearer token: send `Authorization: Bearer <token>`.') {
    super(401, 'UNAUTHORIZED', message);
    this.name = 'UnauthorizedError';
  }
}

export class ForbiddenError extends ApiError {
  constructor(message: string) {
    super(403, 'FORBIDDEN', message);
    this.name = 'ForbiddenError';
  }
}

export class NotFoundError extends ApiError {
  constructor(message: string, code = 'NOT_FOUND') {
    super(404, code, message);
    this.name = 'NotFoundError';
  }
}

export class MethodNotAllowedError extends ApiError {
  constructor(message: string) {
    super(405, 'METHOD_NOT_ALLOWED', message);
    this.name = 'MethodNotAllowedError';
  }
}

export class ConflictError extends ApiError {
  constructor(message: string, code = 'CONFLICT', details?: unknown) {
    super(409, code, message, details);
    this.name = 'ConflictError';
  }
}

export class PayloadTooLargeError extends ApiError {
  constructor(message: string, code = 'PAYLOAD_TOO_LARGE', details?: unknown) {
    super(413, code, message, details);
    this.name = 'PayloadTooLargeError';
  }
}

export class UnsupportedMediaTypeError extends ApiError {
  constructor(message: string) {
    super(415, 'UNSUPPORTED_MEDIA_TYPE', message);
    this.name = 'UnsupportedMediaTypeError';
  }
}

export class TooManyRequestsError extends ApiError {
  constructor(message: string) {
    super(429, 'TOO_MANY_REQUESTS', message);
    this.name = 'TooManyRequestsError';
  }
}

/**
 * The storage is full (or refuses a file that large): nothing was stored; the request can be retried
 * once space is freed. On the filesystem store this is ENOSPC, EDQUOT or EFBIG.
 */
export class StorageFullError extends ApiError {
  constructor(
    message = 'The server has no storage space left, so nothing was stored; free space (or raise the quota) and retry.',
  ) {
    super(507, 'INSUFFICIENT_STORAGE', message);
    this.name = 'StorageFullError';
  }
}

/** Filesystem error codes that mean "no room for this write". */
const STORAGE_FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

/** Whether `error` (from a write) means the storage is full: a `StorageFullError`, or ENOSPC/EDQUOT/EFBIG. */
export function isStorageFull(error: unknown): boolean {
  if (error instanceof StorageFullError) return true;
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  return typeof code === 'string' && STORAGE_FULL_CODES.has(code);
}

/** A dependency (the queue, the store) failed; the request may be retried as it is. */
export class ServiceUnavailableError extends ApiError {
  constructor(message: string) {
    super(503, 'SERVICE_UNAVAILABLE', message);
    this.name = 'ServiceUnavailableError';
  }
}

/** A compare-and-swap lost to other writers on every try of its retry policy: busy, not broken; retry later. */
export class BusyError extends ConflictError {
  constructor(what: string) {
    super(`The ${what} changed while this request ran, on every try; retry it.`, 'BUSY');
    this.name = 'BusyError';
  }
}

/** A stored document that fails its schema: the data is damaged (or from an incompatible version). */
export class CorruptDocumentError extends Error {
  readonly key: string;
  constructor(key: string, detail: string) {
    super(`The stored document ${key} is not valid: ${detail}`);
    this.name = 'CorruptDocumentError';
    this.key = key;
  }
}

/** A storage key was asked for with a tenant or id that is not well formed (no such object can exist). */
export class InvalidKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidKeyError';
  }
}

/** Thrown by an `ObjectStore` when an `ifMatch` / `ifNoneMatch` precondition fails. */
export class PreconditionFailedError extends Error {
  readonly key: string;
  constructor(key: string, message = `precondition failed for ${key}`) {
    super(message);
    this.name = 'PreconditionFailedError';
    this.key = key;
  }
}

/**
 * A training failure that retrying cannot fix (bad data, a spec the trainer cannot build): the job
 * fails at once with this code and message. Any other error in the worker is treated as temporary.
 */
export class UnrecoverableError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(bounded(message));
    this.name = 'UnrecoverableError';
    this.code = code;
  }
}

export const isApiError = (error: unknown): error is ApiError => error instanceof ApiError;
