/**
 * Scheduled (EventBridge) safety net of the sweep controller in AWS, the twin of the local loop:
 * sweeps advance when their trials end, and this pass repairs any step a crashed controller left
 * half done (a trial claimed but never queued). Idempotent.
 */
import { log } from '../core/platform/log.ts';
import { loadRuntimeConfig } from '../core/platform/runtime-config.ts';
import { advanceActiveSweeps } from '../core/sweeps/sweep-controller.ts';
import { awsServices } from './lambda.ts';

const config = loadRuntimeConfig();

export const handler = async (): Promise<{ advanced: number }> => {
  const services = await awsServices();
  const advanced = await advanceActiveSweeps(services, config.tenants);
  log.info('sweeps advanced', { tenants: config.tenants.length, advanced });
  return { advanced };
};
