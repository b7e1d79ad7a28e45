/**
 * Batch predictions: `POST /jobs/{id}/predictions` makes a job of the second kind (`kind:
 * "predictions"`) that the workers run like any job (queued, retried, cancellable, dead-lettered),
 * reading a dataset and writing a CSV or JSON Lines file of its rows with predictions added.
 */
import { z } from 'zod';
import { IdempotencyKeys, replayEarlier, requestHash, sha256 } from '../api/idempotency.ts';
import { checkDataset, getDatasetMeta } from '../datasets/dataset-service.ts';
import type { JobRecord } from '../jobs/job-record.ts';
import { BadRequestError, ServiceUnavailableError, TooManyRequestsError } from '../platform/errors.ts';
import { ULID_PATTERN } from '../platform/ids.ts';
import { jobKeys } from '../platform/keys.ts';
import { parseOrThrow } from '../platform/validate.ts';
import type { Services } from '../services.ts';
import { predictionModel } from './predict-service.ts';

export const predictionsRequest = z.strictObject({
  /** A CSV or JSON Lines dataset (`POST /datasets`) with the model's input columns. */
  datasetId: z.string().regex(ULID_PATTERN, 'must be a dataset id returned by POST /datasets'),
  /** Output format. @default the dataset's */
  format: z.enum(['csv', 'jsonl']).optional(),
  /** Add `attribution_<column>` columns (integrated gradients). */
  explain: z.boolean().default(false),
  name: z.string().trim().min(1).max(128).optional(),
});

/**
 * `POST /jobs/{id}/predictions`: checks the model, the dataset and the quota; stores and queues the
 * job. An `Idempotency-Key` (shared with `POST /jobs`'s keys) makes a retry return the job made first.
 */
export async function submitPredictions(
  s: Services,
  tenant: string,
  modelJobId: string,
  body: unknown,
  idempotencyKey?: string,
): Promise<{ record: JobRecord; replayed: boolean }> {
  const request = parseOrThrow(predictionsRequest, body, 'predictions request');
  const keys = new IdempotencyKeys(s.store, 'job');
  const bodyHash = requestHash({ predictionsOf: modelJobId, request: body });
  const keyObject = idempotencyKey === undefined ? undefined : keys.objectKey(tenant, idempotencyKey);
  const replay = async (earlier: { id: string; requestHash: string }) => ({
    record: await replayEarlier(
      earlier,
      bodyHash,
      'job',
      async (id) => (await s.lifecycle.jobs.get(tenant, id)).record,
    ),
    replayed: true,
  });
  const before = keyObject && (await keys.earlier(keyObject));
  if (before) return replay(before);
  const model = await predictionModel(s, tenant, modelJobId);
  const meta = await getDatasetMeta(s, tenant, request.datasetId);
  if (meta.format === 'tfjs-model')
    throw new BadRequestError(
      `datasetId: dataset ${meta.id} is a model; give a CSV or JSON Lines dataset.`,
      { path: 'datasetId' },
      'WRONG_DATASET_FORMAT',
    );
  // Uploaded, within the size limit; the columns are checked row by row when the job runs.
  await checkDataset(
    s,
    tenant,
    { dataset: { id: meta.id, label: model.job.spec.dataset.label, features: [] } },
    meta,
    {
      columns: false,
    },
  );
  const id = s.newId();
  if (keyObject) {
    const earlier = await keys.reserve(keyObject, id, bodyHash);
    if (earlier) return replay(earlier);
  }
  const now = s.now().toISOString();
  const record: JobRecord = {
    id,
    name: request.name ?? `${model.job.name}-predictions-${id.slice(-6).toLowerCase()}`,
    kind: 'predictions',
    predictions: {
      modelJobId,
      datasetId: meta.id,
      format: request.format ?? meta.format,
      explain: request.explain,
    },
    status: 'QUEUED',
    createdAt: now,
    updatedAt: now,
    attempt: 0,
    progress: { epoch: 0, epochs: 1 },
    spec: model.job.spec,
    ...(model.job.classes ? { classes: model.job.classes } : {}),
    ...(keyObject && idempotencyKey ? { idempotencyKeySha256: sha256(idempotencyKey) } : {}),
  };
  try {
    await s.lifecycle.submit(tenant, record, {
      by: 'api',
      message: `Predictions with the model of job ${modelJobId} on dataset ${meta.id} queued.`,
      quota: s.limits.maxActiveJobs,
    });
  } catch (error) {
    // Taken back (not queued, or over the quota): a retry with the same key starts over.
    if (keyObject && (error instanceof ServiceUnavailableError || error instanceof TooManyRequestsError))
      await keys.release(keyObject).catch(() => {});
    throw error;
  }
  return { record, replayed: false };
}

/** The result of a SUCCEEDED predictions job: its output file's presigned URL. */
export async function predictionsResult(s: Services, tenant: string, record: JobRecord) {
  const p = record.predictions;
  const expiresInSeconds = s.limits.downloadUrlSeconds;
  const name = p?.output?.name ?? `predictions.${p?.format ?? 'csv'}`;
  const url = await s.store.presignGet(jobKeys(tenant, record.id).predictions(p?.format ?? 'csv'), {
    expiresInSeconds,
  });
  return {
    id: record.id,
    status: record.status,
    kind: 'predictions' as const,
    metrics: {},
    report: {
      modelJobId: p?.modelJobId,
      datasetId: p?.datasetId,
      rows: p?.rows,
      format: p?.format,
      explain: p?.explain,
    },
    artifacts: { [name]: url },
    expiresAt: new Date(s.now().getTime() + expiresInSeconds * 1000).toISOString(),
  };
}
