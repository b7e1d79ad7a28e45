import { listDatasets } from '../core/datasets/dataset-catalog.ts';
import type { Services } from '../core/services.ts';
import { api, json, queryOf, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** GET /datasets → this tenant's datasets, newest first, a page at a time. */
export const create = (s: Services) =>
  api(async (event) => json(200, await listDatasets(s, tenantOf(event), queryOf(event))));

export const handler = lambda(create);
