import { getMetrics, type Services } from '../core/job-service.ts';
import { api, json, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** GET /jobs/{id}/metrics → per-epoch history. */
export const create = (s: Services) =>
  api(async (event) => json(200, await getMetrics(s, tenantOf(event), pathParam(event, 'id'))));

export const handler = lambda(create);
