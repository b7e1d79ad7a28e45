/** Trains a spec on a table with the real pipeline (prepare → fit), for engine tests. */

import type { Table } from '../../core/datasets/tabular.ts';
import type { JobSpec } from '../../core/jobs/job-spec.ts';
import { prepareData } from '../../core/training/dataset-prep.ts';
import type { TF } from '../../trainer/backend.ts';
import type { SelectRunner, TrainHooks } from '../../trainer/engine.ts';
import { disposeSet, type FitResult, fit } from '../../trainer/fit.ts';

export async function trainOn(
  tf: TF,
  table: Table,
  spec: JobSpec,
  hooks?: TrainHooks,
  selectRunner?: SelectRunner,
): Promise<FitResult & { dispose(): void }> {
  const data = prepareData(table, spec);
  const result = await fit(tf, spec, data, {
    trainRows: data.trainRows,
    validationRows: data.validationRows,
    ...(hooks ? { hooks } : {}),
    ...(selectRunner ? { selectRunner } : {}),
  });
  return {
    ...result,
    dispose: () => {
      result.outcome.model.dispose();
      disposeSet(tf, result.train);
      disposeSet(tf, result.validation);
    },
  };
}

export const firstLoss = (r: FitResult) => r.outcome.history[0]?.loss as number;
export const lastLoss = (r: FitResult) => r.outcome.history.at(-1)?.loss as number;
