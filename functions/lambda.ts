/**
 * Turns a handler factory into a Lambda entry point: the AWS adapters are built once per container,
 * from the environment, on the first invocation (imported lazily so the local gateway never loads them).
 */
import type { Services } from '../core/services.ts';
import type { ApiEvent, ApiHandler, ApiResult } from './http.ts';

let services: Promise<Services> | undefined;

export const awsServices = (): Promise<Services> => {
  services ??= import('../aws/services.ts').then((m) => m.createAwsServices());
  return services;
};

export function lambda(create: (s: Services) => ApiHandler): (event: ApiEvent) => Promise<ApiResult> {
  let handler: ApiHandler | undefined;
  return async (event) => {
    handler ??= create(await awsServices());
    return handler(event);
  };
}
