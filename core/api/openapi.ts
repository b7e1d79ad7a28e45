/** The OpenAPI 3.1 document, generated from the route table and the same zod schemas that validate requests. */
import { z } from 'zod';
import { jobRecord } from '../jobs/job-record.ts';
import { createDatasetRequest, jobSpec } from '../jobs/job-spec.ts';
import { predictionsRequest } from '../predictions/batch-service.ts';
import { predictRequest } from '../predictions/predict-service.ts';
import { sweepRecord, sweepView } from '../sweeps/sweep-record.ts';
import { sweepRequest } from '../sweeps/sweep-spec.ts';
import { routes } from './routes.ts';

const errorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});

const schema = (s: z.ZodType, io: 'input' | 'output') =>
  z.toJSONSchema(s, { io, target: 'draft-2020-12', unrepresentable: 'any' });

const REQUEST_BODIES: Record<string, string> = {
  'POST /jobs': 'JobSpec',
  'POST /jobs/{id}/predict': 'PredictRequest',
  'POST /jobs/{id}/predictions': 'PredictionsRequest',
  'POST /datasets': 'CreateDatasetRequest',
  'POST /sweeps': 'SweepRequest',
};
const RESPONSES: Record<string, string> = {
  'POST /jobs': 'JobRecord',
  'GET /jobs/{id}': 'JobRecord',
  'POST /jobs/{id}/cancel': 'JobRecord',
  'POST /jobs/{id}/predictions': 'JobRecord',
  'POST /sweeps': 'SweepRecord',
  'GET /sweeps/{id}': 'Sweep',
  'POST /sweeps/{id}/cancel': 'Sweep',
};

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const key = `${route.method} ${route.path}`;
    const parameters = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    if (key === 'GET /jobs' || key === 'GET /sweeps') {
      parameters.push(
        { name: 'status', in: 'query', required: false, schema: { type: 'string' } },
        { name: 'limit', in: 'query', required: false, schema: { type: 'string' } },
        { name: 'cursor', in: 'query', required: false, schema: { type: 'string' } },
      );
    }
    if (key === 'GET /jobs') {
      for (const name of ['sweepId', 'kind', 'trials', 'count'])
        parameters.push({ name, in: 'query', required: false, schema: { type: 'string' } });
    }
    if (key === 'GET /datasets') {
      for (const name of ['limit', 'cursor'])
        parameters.push({ name, in: 'query', required: false, schema: { type: 'string' } });
    }
    if (key === 'POST /jobs') {
      parameters.push({ name: 'dryRun', in: 'query', required: false, schema: { type: 'string' } });
    }
    if (key === 'POST /jobs' || key === 'POST /sweeps') {
      parameters.push({ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string' } });
    }
    const body = REQUEST_BODIES[key];
    const response = RESPONSES[key];
    const okStatus =
      route.method === 'POST' && !route.path.endsWith('/cancel') && !route.path.endsWith('/predict')
        ? '201'
        : '200';
    paths[route.path] ??= {};
    (paths[route.path] as Record<string, unknown>)[route.method.toLowerCase()] = {
      operationId: route.handler.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()),
      summary: route.summary,
      ...(route.scope ? { security: [{ bearer: [route.scope] }] } : { security: [] }),
      ...(parameters.length ? { parameters } : {}),
      ...(body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: { $ref: `#/components/schemas/${body}` } } },
            },
          }
        : {}),
      responses: {
        [okStatus]: {
          description: 'Success',
          content: {
            'application/json': {
              schema: response ? { $ref: `#/components/schemas/${response}` } : { type: 'object' },
            },
          },
        },
        '4XX': {
          description: 'The request was wrong; the message says what to fix',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'descent',
      version: '0.1.0',
      description: 'Submit TensorFlow.js training jobs, follow them, fetch the trained model.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        JobSpec: schema(jobSpec, 'input'),
        PredictRequest: schema(predictRequest, 'input'),
        PredictionsRequest: schema(predictionsRequest, 'input'),
        CreateDatasetRequest: schema(createDatasetRequest, 'input'),
        JobRecord: schema(jobRecord, 'output'),
        SweepRequest: schema(sweepRequest, 'input'),
        SweepRecord: schema(sweepRecord, 'output'),
        Sweep: schema(sweepView, 'output'),
        Error: schema(errorBody, 'output'),
      },
    },
    paths,
  };
}
