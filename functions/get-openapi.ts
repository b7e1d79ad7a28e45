import { openApiDocument } from '../core/api/openapi.ts';
import { api, json } from './http.ts';

/**
 * GET /openapi.json → the OpenAPI 3.1 document, generated from the request schemas. Public, and it
 * touches nothing: its Lambda function has no AWS permission and no AWS client.
 */
export const create = () => {
  const document = openApiDocument();
  return api(async () => json(200, document, { 'cache-control': 'public, max-age=300' }));
};

export const handler = create();
