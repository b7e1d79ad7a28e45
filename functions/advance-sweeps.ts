/**
 * Scheduled (EventBridge) safety net of the sweep controller in AWS, the twin of the local loop:
 * sweeps advance when their trials end, and this pass repairs any step a crashed controller left
 * half done (a trial claimed but never queued). Idempotent.
 */
import { ENV } from '../core/platform/config.ts';
import { log } from '../core/platform/log.ts';
import { advanceActiveSweeps } from '../core/sweeps/sweep-controller.ts';
import { awsServices } from './lambda.ts';

export const handler = async (): Promise<{ advanced: number }> => {
  const services = await awsServices();
  const tenants = (process.env[ENV.tenants] ?? '').split(',').filter(Boolean);
  const advanced = await advanceActiveSweeps({ ...services, log }, tenants);
  log.info('sweeps advanced', { tenants: tenants.length, advanced });
  return { advanced };
};
