/** Small factories for job specs in tests. */
import { type JobSpec, resolvedJobSpec } from '../../core/jobs/job-spec.ts';

export const DATASET_ID = '01M8JH2TQYPMBNJ50HMGRP3N6M';

/** A resolved spec (defaults filled in), with `overrides` merged at the top level and into `training`. */
export function specOf(
  overrides: Record<string, unknown> & { training?: Record<string, unknown> } = {},
): JobSpec {
  const { training, ...rest } = overrides;
  return resolvedJobSpec.parse({
    name: 'test',
    task: 'classification',
    dataset: { id: DATASET_ID, label: 'label' },
    resources: { maxRuntimeSeconds: 3600 },
    ...rest,
    training: { seed: 1, epochs: 5, ...training },
  });
}
