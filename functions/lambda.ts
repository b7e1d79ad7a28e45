/**
 * Turns handler factories into Lambda entry points: the AWS context (the ports this function was
 * granted, and the services composed on them) is built once per container, from the environment, on
 * the first invocation (imported lazily so that the local gateway never loads the AWS adapters).
 */
import type { AwsContext } from '../aws/services.ts';
import type { Services } from '../core/services.ts';
import type { ApiEvent, ApiHandler, ApiResult } from './http.ts';

let context: Promise<AwsContext> | undefined;

export const awsContext = (): Promise<AwsContext> => {
  context ??= import('../aws/services.ts').then((m) => m.createAwsContext());
  return context;
};

/** An API route's entry: `create` gets the services. */
export function lambda(create: (s: Services) => ApiHandler): (event: ApiEvent) => Promise<ApiResult> {
  let handler: ApiHandler | undefined;
  return async (event) => {
    handler ??= create((await awsContext()).services);
    return handler(event);
  };
}

/** Any other entry (an SQS event source, an EventBridge rule): `create` gets the whole context. */
export function lambdaWith<E, R>(
  create: (context: AwsContext) => (event: E) => Promise<R>,
): (event: E) => Promise<R> {
  let handler: ((event: E) => Promise<R>) | undefined;
  return async (event) => {
    handler ??= create(await awsContext());
    return handler(event);
  };
}
