/**
 * The settings every descent process reads once at start (`core/platform/runtime-config.ts`): the
 * quotas and limits, the attempts, the capacity wait. One helper gives the same values to every
 * Lambda function and to the trainer's container, so that the API, the dead-letter and sweep
 * functions and the trainer can never enforce different limits.
 */
import { ENV } from '../core/platform/config.ts';
import type { DescentSettings } from './settings.ts';

export function runtimeEnvironment(settings: DescentSettings): Record<string, string> {
  return {
    [ENV.quotaActiveJobs]: String(settings.quotaActiveJobs),
    [ENV.quotaDatasetBytes]: String(settings.quotaDatasetBytes),
    [ENV.quotaEpochRows]: String(settings.quotaEpochRows),
    [ENV.quotaStorageBytes]: String(settings.quotaStorageBytes),
    [ENV.jobMemoryBytes]: String(settings.jobMemoryBytes),
    [ENV.maxColumns]: String(settings.maxColumns),
    [ENV.maxLineBytes]: String(settings.maxLineBytes),
    [ENV.maxRows]: String(settings.maxRows),
    [ENV.maxRuntimeSeconds]: String(settings.maxRuntimeSeconds),
    [ENV.defaultMaxRuntimeSeconds]: String(settings.defaultMaxRuntimeSeconds),
    [ENV.urlExpirySeconds]: String(settings.urlExpirySeconds),
    [ENV.maxAttempts]: String(settings.maxAttempts),
    [ENV.capacityWaitMinutes]: String(settings.capacityWaitMinutes),
  };
}
