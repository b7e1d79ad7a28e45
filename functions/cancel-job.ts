import { cancelJob } from '../core/jobs/job-service.ts';
import type { Services } from '../core/services.ts';
import { api, json, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** POST /jobs/{id}/cancel → QUEUED becomes CANCELLED, RUNNING becomes CANCELLING. */
export const create = (s: Services) =>
  api(async (event) => json(200, await cancelJob(s, tenantOf(event), pathParam(event, 'id'))));

export const handler = lambda(create);
