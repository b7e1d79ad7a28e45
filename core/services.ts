/**
 * The composition root of the domain code: the ports, the clock, the id generator, the limits and
 * the job lifecycle that every service function takes, with the lifecycle's subscribers wired once
 * here (a sweep advances when one of its trials ends; the caller adds metrics or events).
 */
import { JobLifecycle } from './jobs/lifecycle.ts';
import { ulid } from './platform/ids.ts';
import { DEFAULT_LIMITS, type Limits } from './platform/limits.ts';
import { createLogger, type Logger } from './platform/log.ts';
import type { JobQueue, ObjectStore } from './platform/ports.ts';
import { advanceSweepOnTrialEnd } from './sweeps/sweep-controller.ts';

export interface Services {
  readonly store: ObjectStore;
  /** Where jobs are queued; absent in a function that may not queue (the lifecycle then refuses to submit). */
  readonly queue?: JobQueue;
  readonly now: () => Date;
  readonly newId: () => string;
  readonly limits: Limits;
  readonly log: Logger;
  /** The one owner of job status changes. */
  readonly lifecycle: JobLifecycle;
}

export type ServiceOverrides = Partial<Omit<Services, 'store' | 'queue' | 'lifecycle'>>;

export function createServices(
  store: ObjectStore,
  queue: JobQueue | undefined,
  overrides: ServiceOverrides = {},
): Services {
  const base = {
    store,
    ...(queue ? { queue } : {}),
    now: () => new Date(),
    newId: () => ulid(),
    limits: DEFAULT_LIMITS,
    log: createLogger({ component: 'services' }),
    ...overrides,
  };
  const lifecycle = new JobLifecycle({ store, ...(queue ? { queue } : {}), now: base.now, log: base.log });
  const services: Services = { ...base, lifecycle };
  lifecycle.subscribe(advanceSweepOnTrialEnd(services));
  return services;
}
