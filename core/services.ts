/**
 * The composition root of the API's domain code: the ports, the clock, the id generator and the
 * limits that every service function takes.
 */
import { ulid } from './platform/ids.ts';
import { DEFAULT_LIMITS, type Limits } from './platform/limits.ts';
import type { JobQueue, ObjectStore } from './platform/ports.ts';

export interface Services {
  readonly store: ObjectStore;
  readonly queue: JobQueue;
  readonly now: () => Date;
  readonly newId: () => string;
  readonly limits: Limits;
}

export function createServices(
  store: ObjectStore,
  queue: JobQueue,
  overrides: Partial<Services> = {},
): Services {
  return {
    store,
    queue,
    now: () => new Date(),
    newId: () => ulid(),
    limits: DEFAULT_LIMITS,
    ...overrides,
  };
}
