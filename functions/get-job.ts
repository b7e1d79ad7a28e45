import { getJob } from '../core/jobs/job-service.ts';
import type { Services } from '../core/services.ts';
import { api, json, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** GET /jobs/{id} → the job record. */
export const create = (s: Services) =>
  api(async (event) => json(200, await getJob(s, tenantOf(event), pathParam(event, 'id'))));

export const handler = lambda(create);
