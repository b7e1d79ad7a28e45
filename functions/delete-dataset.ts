import { deleteDataset } from '../core/datasets/dataset-catalog.ts';
import type { Services } from '../core/services.ts';
import { api, json, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** DELETE /datasets/{id} → its objects are gone; a 409 while a queued or running job uses it. */
export const create = (s: Services) =>
  api(async (event) => json(200, await deleteDataset(s, tenantOf(event), pathParam(event, 'id'))));

export const handler = lambda(create);
