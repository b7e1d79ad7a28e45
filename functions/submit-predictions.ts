import { submitPredictions } from '../core/predictions/batch-service.ts';
import type { Services } from '../core/services.ts';
import { api, header, json, jsonBody, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/**
 * POST /jobs/{id}/predictions → 201 with the queued predictions job (a job of kind `predictions`); 200
 * with the same job for an `Idempotency-Key` replay.
 */
export const create = (s: Services) =>
  api(async (event) => {
    const { record, replayed } = await submitPredictions(
      s,
      tenantOf(event),
      pathParam(event, 'id'),
      jsonBody(event),
      header(event, 'idempotency-key'),
    );
    return json(replayed ? 200 : 201, record, { location: `/jobs/${record.id}` });
  });

export const handler = lambda(create);
