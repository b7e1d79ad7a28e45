/**
 * The one route table: the local gateway serves it, and the CDK JobsApi makes one Lambda per entry.
 * `handler` names the file under `functions/` that exports `handler` (Lambda) and `create` (factory).
 */

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface Route {
  readonly method: HttpMethod;
  /** API Gateway path syntax: `{name}` is a path parameter. */
  readonly path: string;
  /** File name under `functions/`, without `.ts`. */
  readonly handler: string;
  /** OAuth scope a caller's token needs; `undefined` = public (no token). */
  readonly scope?: 'descent/read' | 'descent/write';
  readonly summary: string;
  /** The route's Lambda function needs more than the defaults (memory in MiB, timeout in seconds). */
  readonly lambda?: { readonly memorySize?: number; readonly timeoutSeconds?: number };
}

export const routes: readonly Route[] = [
  {
    method: 'POST',
    path: '/datasets',
    handler: 'create-dataset',
    scope: 'descent/write',
    summary: 'Create a dataset and get a presigned upload URL',
  },
  {
    method: 'GET',
    path: '/datasets',
    handler: 'list-datasets',
    scope: 'descent/read',
    summary: 'List datasets, newest first',
  },
  {
    method: 'GET',
    path: '/datasets/{id}',
    handler: 'get-dataset',
    scope: 'descent/read',
    summary: "Get a dataset's name, format, size and upload state",
  },
  {
    method: 'DELETE',
    path: '/datasets/{id}',
    handler: 'delete-dataset',
    scope: 'descent/write',
    summary: 'Delete a dataset no queued or running job uses',
  },
  {
    method: 'POST',
    path: '/jobs',
    handler: 'submit-job',
    scope: 'descent/write',
    summary: 'Submit a training job',
  },
  {
    method: 'GET',
    path: '/jobs',
    handler: 'list-jobs',
    scope: 'descent/read',
    summary: 'List jobs, newest first',
  },
  {
    method: 'GET',
    path: '/jobs/{id}',
    handler: 'get-job',
    scope: 'descent/read',
    summary: 'Get a job record',
  },
  {
    method: 'GET',
    path: '/jobs/{id}/metrics',
    handler: 'get-job-metrics',
    scope: 'descent/read',
    summary: "Get a job's per-epoch metrics",
  },
  {
    method: 'GET',
    path: '/jobs/{id}/events',
    handler: 'get-job-events',
    scope: 'descent/read',
    summary: "Get a job's state changes and warnings",
  },
  {
    method: 'POST',
    path: '/jobs/{id}/cancel',
    handler: 'cancel-job',
    scope: 'descent/write',
    summary: 'Cancel a job',
  },
  {
    method: 'GET',
    path: '/jobs/{id}/result',
    handler: 'get-job-result',
    scope: 'descent/read',
    summary: "Get a finished job's report and artifact URLs",
  },
  {
    method: 'POST',
    path: '/jobs/{id}/predict',
    handler: 'predict-job',
    scope: 'descent/read',
    summary: "Predict raw rows with a SUCCEEDED job's model (up to 1,000), optionally with attributions",
    // TensorFlow.js on the CPU: more memory is more CPU, and a cold start loads the model.
    lambda: { memorySize: 2048, timeoutSeconds: 29 },
  },
  {
    method: 'POST',
    path: '/jobs/{id}/predictions',
    handler: 'submit-predictions',
    scope: 'descent/write',
    summary: "Queue batch predictions of a dataset with a SUCCEEDED job's model",
  },
  {
    method: 'DELETE',
    path: '/jobs/{id}',
    handler: 'delete-job',
    scope: 'descent/write',
    summary: "Purge a finished job's data",
  },
  {
    method: 'POST',
    path: '/sweeps',
    handler: 'submit-sweep',
    scope: 'descent/write',
    summary: 'Submit a hyperparameter sweep: its trials run as jobs, a few at a time',
  },
  {
    method: 'GET',
    path: '/sweeps',
    handler: 'list-sweeps',
    scope: 'descent/read',
    summary: 'List sweeps, newest first',
  },
  {
    method: 'GET',
    path: '/sweeps/{id}',
    handler: 'get-sweep',
    scope: 'descent/read',
    summary: "Get a sweep: its trials, their ranking, the best trial and the report's URLs",
  },
  {
    method: 'POST',
    path: '/sweeps/{id}/cancel',
    handler: 'cancel-sweep',
    scope: 'descent/write',
    summary: "Cancel a sweep's queued and running trials",
  },
  {
    method: 'GET',
    path: '/openapi.json',
    handler: 'get-openapi',
    summary: 'The OpenAPI 3.1 document of this API',
  },
];

/** Matches a concrete path against a route path; returns its path parameters or `undefined`. */
export function matchPath(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i] as string;
    const g = got[i] as string;
    if (w.startsWith('{') && w.endsWith('}')) {
      if (g === '') return undefined;
      try {
        params[w.slice(1, -1)] = decodeURIComponent(g);
      } catch {
        return undefined; // a malformed %-escape names no resource: 404
      }
    } else if (w !== g) {
      return undefined;
    }
  }
  return params;
}
