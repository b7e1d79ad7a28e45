/**
 * The publish step of a job run: the model in TensorFlow.js layers format, its report, its fitted
 * preprocessing and its loss curve, written under the job's prefix before the job is marked SUCCEEDED.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { EpochMetrics } from '../core/jobs/job-record.ts';
import type { JobSpec } from '../core/jobs/job-spec.ts';
import { toJson } from '../core/platform/json.ts';
import { jobKeys } from '../core/platform/keys.ts';
import type { ObjectStore } from '../core/platform/ports.ts';
import { lossCurveSvg } from '../core/training/loss-curve.ts';
import type { FittedPreprocessing } from '../core/training/preprocess.ts';
import { serializeModel } from './artifacts.ts';
import type { TF } from './backend.ts';

export async function publishArtifacts(
  tf: TF,
  store: ObjectStore,
  tenant: string,
  job: { id: string; spec: JobSpec; classes?: (string | number)[] },
  result: {
    model: LayersModel;
    fitted: FittedPreprocessing;
    report: Record<string, unknown>;
    history: EpochMetrics[];
  },
): Promise<void> {
  const { spec } = job;
  const keys = jobKeys(tenant, job.id);
  const saved = await serializeModel(tf, result.model, {
    descent: {
      jobId: job.id,
      task: spec.task,
      label: spec.dataset.label,
      features: result.fitted.columns.map((c) => c.name),
      ...(job.classes ? { classes: job.classes } : {}),
      inputShape: result.fitted.inputShape,
      preprocessing: result.fitted,
    },
  });
  const json = { contentType: 'application/json' };
  await Promise.all([
    store.put(keys.modelJson, toJson(saved.modelJson), json),
    store.put(keys.weights, saved.weights, { contentType: 'application/octet-stream' }),
    store.put(keys.report, toJson(result.report), json),
    store.put(keys.preprocessing, toJson(result.fitted), json),
    store.put(keys.lossCurve, lossCurveSvg(result.history, `${spec.name}: loss per epoch`), {
      contentType: 'image/svg+xml',
    }),
  ]);
}
