/**
 * The one route table: the local gateway serves it, and the CDK JobsApi makes one Lambda per entry.
 * `handler` names the file under `functions/` that exports `handler` (Lambda) and `create` (factory);
 * `grants` is what that function may touch on AWS (`core/api/grants.ts`): required, so that a new
 * route gets a deliberate grant, and proven neither too small nor too large by the permissions test.
 */
import { type Grants, NO_GRANTS, ROUTE_GRANTS } from './grants.ts';

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
  /** What the route's function may touch on AWS (IAM statements and environment: `infra/grants.ts`). */
  readonly grants: Grants;
}

export const routes: readonly Route[] = [
  {
    method: 'POST',
    path: '/datasets',
    handler: 'create-dataset',
    scope: 'descent/write',
    summary: 'Create a dataset and get a presigned upload URL',
    grants: ROUTE_GRANTS.createDataset,
  },
  {
    method: 'GET',
    path: '/datasets',
    handler: 'list-datasets',
    scope: 'descent/read',
    summary: 'List datasets, newest first',
    grants: ROUTE_GRANTS.listDatasets,
  },
  {
    method: 'GET',
    path: '/datasets/{id}',
    handler: 'get-dataset',
    scope: 'descent/read',
    summary: "Get a dataset's name, format, size and upload state",
    grants: ROUTE_GRANTS.readDataset,
  },
  {
    method: 'DELETE',
    path: '/datasets/{id}',
    handler: 'delete-dataset',
    scope: 'descent/write',
    summary: 'Delete a dataset no queued or running job uses',
    grants: ROUTE_GRANTS.deleteDataset,
  },
  {
    method: 'POST',
    path: '/jobs',
    handler: 'submit-job',
    scope: 'descent/write',
    summary: 'Submit a training job',
    grants: ROUTE_GRANTS.submitJob,
  },
  {
    method: 'GET',
    path: '/jobs',
    handler: 'list-jobs',
    scope: 'descent/read',
    summary: 'List jobs, newest first',
    grants: ROUTE_GRANTS.listJobs,
  },
  {
    method: 'GET',
    path: '/jobs/{id}',
    handler: 'get-job',
    scope: 'descent/read',
    summary: 'Get a job record',
    grants: ROUTE_GRANTS.readJob,
  },
  {
    method: 'GET',
    path: '/jobs/{id}/metrics',
    handler: 'get-job-metrics',
    scope: 'descent/read',
    summary: "Get a job's per-epoch metrics",
    grants: ROUTE_GRANTS.readJob,
  },
  {
    method: 'GET',
    path: '/jobs/{id}/events',
    handler: 'get-job-events',
    scope: 'descent/read',
    summary: "Get a job's state changes and warnings",
    grants: ROUTE_GRANTS.readJob,
  },
  {
    method: 'POST',
    path: '/jobs/{id}/cancel',
    handler: 'cancel-job',
    scope: 'descent/write',
    summary: 'Cancel a job',
    grants: ROUTE_GRANTS.cancelJob,
  },
  {
    method: 'GET',
    path: '/jobs/{id}/result',
    handler: 'get-job-result',
    scope: 'descent/read',
    summary: "Get a finished job's report and artifact URLs",
    grants: ROUTE_GRANTS.readJob,
  },
  {
    method: 'POST',
    path: '/jobs/{id}/predict',
    handler: 'predict-job',
    scope: 'descent/read',
    summary: "Predict raw rows with a SUCCEEDED job's model (up to 1,000), optionally with attributions",
    // TensorFlow.js on the CPU: more memory is more CPU, and a cold start loads the model.
    lambda: { memorySize: 2048, timeoutSeconds: 29 },
    grants: ROUTE_GRANTS.readJob,
  },
  {
    method: 'POST',
    path: '/jobs/{id}/predictions',
    handler: 'submit-predictions',
    scope: 'descent/write',
    summary: "Queue batch predictions of a dataset with a SUCCEEDED job's model",
    grants: ROUTE_GRANTS.submitPredictions,
  },
  {
    method: 'DELETE',
    path: '/jobs/{id}',
    handler: 'delete-job',
    scope: 'descent/write',
    summary: "Purge a finished job's data",
    grants: ROUTE_GRANTS.deleteJob,
  },
  {
    method: 'POST',
    path: '/sweeps',
    handler: 'submit-sweep',
    scope: 'descent/write',
    summary: 'Submit a hyperparameter sweep: its trials run as jobs, a few at a time',
    grants: ROUTE_GRANTS.submitSweep,
  },
  {
    method: 'GET',
    path: '/sweeps',
    handler: 'list-sweeps',
    scope: 'descent/read',
    summary: 'List sweeps, newest first',
    grants: ROUTE_GRANTS.listSweeps,
  },
  {
    method: 'GET',
    path: '/sweeps/{id}',
    handler: 'get-sweep',
    scope: 'descent/read',
    summary: "Get a sweep: its trials, their ranking, the best trial and the report's URLs",
    grants: ROUTE_GRANTS.readSweep,
  },
  {
    method: 'POST',
    path: '/sweeps/{id}/cancel',
    handler: 'cancel-sweep',
    scope: 'descent/write',
    summary: "Cancel a sweep's queued and running trials",
    grants: ROUTE_GRANTS.cancelSweep,
  },
  {
    method: 'GET',
    path: '/openapi.json',
    handler: 'get-openapi',
    summary: 'The OpenAPI 3.1 document of this API',
    grants: NO_GRANTS,
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
