import { submitJob, validateJob } from '../core/jobs/job-service.ts';
import { emitMetrics, type MetricsSink, noMetrics, printMetrics } from '../core/platform/emf.ts';
import type { Services } from '../core/services.ts';
import { api, header, json, jsonBody, queryOf, tenantOf } from './http.ts';
import { lambda } from './lambda.ts';

/**
 * POST /jobs → 201 with the queued job (`?dryRun=true`: 200 with the checks made, nothing stored); 200 with the same job for an `Idempotency-Key` replay.
 * A new job counts once in the `jobsSubmitted` metric (Lambda only: the local stack drops metrics).
 */
export const create = (s: Services, metrics: MetricsSink = noMetrics) =>
  api(async (event) => {
    const tenant = tenantOf(event);
    // ?dryRun=true: every check, nothing stored or queued (a client validates before uploading).
    if (queryOf(event).dryRun === 'true') return json(200, await validateJob(s, tenant, jsonBody(event)));
    const { record, replayed } = await submitJob(
      s,
      tenant,
      jsonBody(event),
      header(event, 'idempotency-key'),
    );
    if (!replayed) emitMetrics(metrics, { jobsSubmitted: 1 }, { properties: { tenant, jobId: record.id } });
    return json(replayed ? 200 : 201, record, { location: `/jobs/${record.id}` });
  });

export const handler = lambda((s) => create(s, printMetrics));
