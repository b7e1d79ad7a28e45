import { submitPredictions } from '../core/predictions/batch-service.ts';
import type { Services } from '../core/services.ts';
import { api, json, jsonBody, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** POST /jobs/{id}/predictions → 201 with the queued predictions job (a job of kind `predictions`). */
export const create = (s: Services) =>
  api(async (event) => {
    const record = await submitPredictions(s, tenantOf(event), pathParam(event, 'id'), jsonBody(event));
    return json(201, record, { location: `/jobs/${record.id}` });
  });

export const handler = lambda(create);
