import { getDataset } from '../core/datasets/dataset-catalog.ts';
import type { Services } from '../core/services.ts';
import { api, json, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** GET /datasets/{id} → name, format, size, whether it is uploaded. */
export const create = (s: Services) =>
  api(async (event) => json(200, await getDataset(s, tenantOf(event), pathParam(event, 'id'))));

export const handler = lambda(create);
