/**
 * Scheduled (EventBridge) safety net of the sweep controller in AWS, the twin of the local loop:
 * sweeps advance when their trials end, and this pass repairs any step a crashed controller left
 * half done (a trial claimed but never queued). Idempotent.
 */
import type { AwsContext } from '../aws/services.ts';
import { log } from '../core/platform/log.ts';
import { advanceActiveSweeps } from '../core/sweeps/sweep-controller.ts';
import { lambdaWith } from './lambda.ts';

export const create =
  ({ services, config }: Pick<AwsContext, 'services' | 'config'>) =>
  async (): Promise<{ advanced: number }> => {
    const advanced = await advanceActiveSweeps(services, config.tenants);
    log.info('sweeps advanced', { tenants: config.tenants.length, advanced });
    return { advanced };
  };

export const handler = lambdaWith(create);
