import { getResult, type Services } from '../core/job-service.ts';
import { api, json, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/** GET /jobs/{id}/result → report and presigned artifact URLs of a SUCCEEDED job. */
export const create = (s: Services) =>
  api(async (event) => json(200, await getResult(s, tenantOf(event), pathParam(event, 'id'))));

export const handler = lambda(create);
