import type { Services } from '../core/services.ts';
import { cancelSweep } from '../core/sweeps/sweep-service.ts';
import { api, json, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** POST /sweeps/{id}/cancel → no more trials; queued ones cancelled at once, running ones after their epoch. */
export const create = (s: Services) =>
  api(async (event) => json(200, await cancelSweep(s, tenantOf(event), pathParam(event, 'id'))));

export const handler = lambda(create);
