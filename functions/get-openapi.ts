import { openApiDocument } from '../core/api/openapi.ts';
import type { Services } from '../core/services.ts';
import { api, json } from './http.ts';
import { lambda } from './lambda.ts';

/** GET /openapi.json → the OpenAPI 3.1 document, generated from the request schemas. */
export const create = (_s: Services) => {
  const document = openApiDocument();
  return api(async () => json(200, document, { 'cache-control': 'public, max-age=300' }));
};

export const handler = lambda(create);
