import { type Services, submitJob } from '../core/job-service.ts';
import { api, header, json, jsonBody, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** POST /jobs → 201 with the queued job; 200 with the same job for an `Idempotency-Key` replay. */
export const create = (s: Services) =>
  api(async (event) => {
    const tenant = tenantOf(event);
    const { record, replayed } = await submitJob(
      s,
      tenant,
      jsonBody(event),
      header(event, 'idempotency-key'),
    );
    return json(replayed ? 200 : 201, record, { location: `/jobs/${record.id}` });
  });

export const handler = lambda(create);
