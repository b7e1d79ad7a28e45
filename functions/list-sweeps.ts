import type { Services } from '../core/services.ts';
import { listSweeps } from '../core/sweeps/sweep-service.ts';
import { api, json, queryOf, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** GET /sweeps?status=&limit=&cursor= → newest first. */
export const create = (s: Services) =>
  api(async (event) => json(200, await listSweeps(s, tenantOf(event), queryOf(event))));

export const handler = lambda(create);
