import { getMetrics } from '../core/jobs/job-service.ts';
import type { Services } from '../core/services.ts';
import { api, json, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** GET /jobs/{id}/metrics → per-epoch history. */
export const create = (s: Services) =>
  api(async (event) => json(200, await getMetrics(s, tenantOf(event), pathParam(event, 'id'))));

export const handler = lambda(create);
