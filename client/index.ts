/**
 * The descent client for Node.js and browsers (fetch only): `new DescentClient({ baseUrl, token })`.
 * `client/config.ts` (Node only) finds the endpoint and credentials the way the CLI does.
 */

export { type Prediction, predictionFields, RowError } from '../core/training/transform.ts';
export * from './backoff.ts';
export * from './client.ts';
export * from './cognito.ts';
export * from './errors.ts';
export * from './model.ts';
export * from './report.ts';
export * from './types.ts';
