import type { Services } from '../core/services.ts';
import { getSweep } from '../core/sweeps/sweep-service.ts';
import { api, json, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** GET /sweeps/{id} → status, trials table, ranking, best trial, presigned report and plot URLs. */
export const create = (s: Services) =>
  api(async (event) => json(200, await getSweep(s, tenantOf(event), pathParam(event, 'id'))));

export const handler = lambda(create);
