import { createDataset } from '../core/datasets/dataset-service.ts';
import type { Services } from '../core/services.ts';
import { api, json, jsonBody, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** POST /datasets → 201 with a presigned upload URL. */
export const create = (s: Services) =>
  api(async (event) => json(201, await createDataset(s, tenantOf(event), jsonBody(event))));

export const handler = lambda(create);
