import { deleteJob } from '../core/jobs/job-service.ts';
import type { Services } from '../core/services.ts';
import { api, json, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** DELETE /jobs/{id} → purges a finished job's objects. */
export const create = (s: Services) =>
  api(async (event) => json(200, await deleteJob(s, tenantOf(event), pathParam(event, 'id'))));

export const handler = lambda(create);
