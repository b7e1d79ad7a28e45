/**
 * The runtime settings every process of descent shares (API functions, trainers, the local stack),
 * read and validated once at start: a malformed setting stops the process with a message that names
 * the variable, instead of failing every request or job later.
 */
import { ENV, intEnv, numberEnv, oneOfEnv } from './config.ts';
import { type Limits, limitsFromEnv } from './limits.ts';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** `DESCENT_ENGINE`: `auto` (compiled training steps wherever they can run) or `eager` (never compiled). */
export const ENGINE_PREFERENCES = ['auto', 'eager'] as const;
export type EnginePreference = (typeof ENGINE_PREFERENCES)[number];

export interface RuntimeConfig {
  readonly limits: Limits;
  /** Deliveries of a job's message before it is dead-lettered (`MAX_ATTEMPTS`). */
  readonly maxAttempts: number;
  /** A trainer's heartbeat: seconds a received job stays invisible; `undefined`: the entry's default. */
  readonly visibilityTimeoutSeconds: number | undefined;
  /** A backend to insist on (checked when the trainer selects it); `undefined`: the best that starts. */
  readonly backend: string | undefined;
  /** Whether a trainer may run training steps compiled (`DESCENT_ENGINE`). */
  readonly engine: EnginePreference;
  /** The price of an hour of a trainer, for cost estimates. */
  readonly hourlyPriceUsd: number;
  readonly logLevel: (typeof LOG_LEVELS)[number] | undefined;
  /** AWS: the tenants whose sweeps the scheduled controller advances. */
  readonly tenants: readonly string[];
}

export function loadRuntimeConfig(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const visibility = env[ENV.visibilityTimeoutSeconds];
  return {
    limits: limitsFromEnv(env),
    maxAttempts: intEnv(ENV.maxAttempts, 3, { min: 1, max: 1000 }, env),
    visibilityTimeoutSeconds:
      visibility === undefined || visibility === ''
        ? undefined
        : intEnv(ENV.visibilityTimeoutSeconds, 0, { min: 1, max: 43_200 }, env),
    backend: env[ENV.backend] || undefined,
    engine: oneOfEnv(ENV.engine, ENGINE_PREFERENCES, env) ?? 'auto',
    hourlyPriceUsd: numberEnv(ENV.hourlyPriceUsd, 0, { min: 0, max: 1_000_000 }, env),
    logLevel: oneOfEnv(ENV.logLevel, LOG_LEVELS, env),
    tenants: (env[ENV.tenants] ?? '').split(',').filter(Boolean),
  };
}
