import { listJobs } from '../core/jobs/job-service.ts';
import type { Services } from '../core/services.ts';
import { api, json, queryOf, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** GET /jobs?status=&limit=&cursor= → newest first. */
export const create = (s: Services) =>
  api(async (event) => json(200, await listJobs(s, tenantOf(event), queryOf(event))));

export const handler = lambda(create);
