import type { ModelRunner } from '../core/predictions/model-runner.ts';
import { predictOnline } from '../core/predictions/predict-service.ts';
import type { Services } from '../core/services.ts';
import { cpuTf } from '../inference/cpu-tf.ts';
import { TfjsModelRunner } from '../inference/runner.ts';
import { api, json, jsonBody, pathParam, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/**
 * POST /jobs/{id}/predict → 200 with one prediction per raw row (up to 1,000), optionally explained.
 * The runner, and so its cache of loaded models, lives as long as the container (or the gateway).
 */
export const create = (s: Services, runner: ModelRunner = new TfjsModelRunner(cpuTf, s.store)) =>
  api(async (event) =>
    json(200, await predictOnline(s, runner, tenantOf(event), pathParam(event, 'id'), jsonBody(event))),
  );

export const handler = lambda((s) => create(s));
