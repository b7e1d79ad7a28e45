import type { Services } from '../core/services.ts';
import { submitSweep } from '../core/sweeps/sweep-service.ts';
import { api, header, json, jsonBody, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/**
 * POST /sweeps → 201 with the sweep (its first trials queued); 200 with the same sweep for an
 * `Idempotency-Key` replay.
 */
export const create = (s: Services) =>
  api(async (event) => {
    const { record, replayed } = await submitSweep(
      s,
      tenantOf(event),
      jsonBody(event),
      header(event, 'idempotency-key'),
    );
    return json(replayed ? 200 : 201, record, { location: `/sweeps/${record.id}` });
  });

export const handler = lambda(create);
