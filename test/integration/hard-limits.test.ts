/**
 * Every job ends once, with its real outcome, on its first attempt: numbers beyond float32 and an
 * embedding fed what are not ids are INVALID_DATA, a shape that only the encoded width shows is
 * INVALID_MODEL, a model over the memory a job may use (known once one-hot encoded) is RESOURCE_LIMIT,
 * a cancel or the maximum runtime during evaluation ends the job then (CANCELLED, TIMEOUT), error
 * messages quoting a huge cell are bounded in the record, its events and the logs; permutation
 * importance is bounded and lets the event loop run; a model with non-finite weights never succeeds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LayersModel } from '@tensorflow/tfjs';
import { createLogger } from '../../core/platform/log.ts';
import { IMPORTANCE_BUDGET, permutationImportance } from '../../trainer/evaluate.ts';
import { buildModel } from '../../trainer/model-builder.ts';
import { checkFiniteWeights, classifyComputeError, computing } from '../../trainer/numeric-checks.ts';
import { PACE_MS } from '../../trainer/training-session.ts';
import { specOf } from '../helpers/specs.ts';
import { TENANT, type TrainerFixture, trainerFixture } from '../helpers/trainer.ts';

const csv = (header: string, rows: string[]) => `${header}\n${rows.join('\n')}\n`;
const rowsOf = (n: number, row: (i: number) => string) => Array.from({ length: n }, (_, i) => row(i));

describe('hard limits in the trainer', () => {
  let fixture: TrainerFixture;
  /** Log lines the trainer wrote. */
  const lines: string[] = [];
  /** Added to the clock the trainer sees (a test moves time past the maximum runtime). */
  let skewMs = 0;
  before(async () => {
    fixture = await trainerFixture({
      deps: {
        log: createLogger({}, (line) => lines.push(line), 'debug'),
        now: () => new Date(Date.now() + skewMs),
        limits: { maxDatasetBytes: 2 ** 30, maxEpochRows: 2e9, jobMemoryBytes: 48 * 1024 ** 2 },
      },
    });
  });
  after(async () => {
    await fixture?.cleanup();
  });

  /** Submits and runs one delivery; returns the record it ended with. */
  const runOnce = async (data: string, spec: Record<string, unknown>, format: 'csv' | 'jsonl' = 'csv') => {
    const id = await fixture.dataset(data, format);
    const job = await fixture.submit({
      ...spec,
      dataset: { id, label: 'label', ...(spec.dataset as object) },
    });
    assert.equal(await fixture.run(job.id), 'done');
    return fixture.record(job.id);
  };

  it('a number beyond float32 fails the job on its first attempt with INVALID_DATA naming row and column', async () => {
    const record = await runOnce(
      csv(
        'x,label',
        rowsOf(20, (i) => `${i === 7 ? '1e39' : i},${i % 2 ? 'a' : 'b'}`),
      ),
      { training: { epochs: 2 } },
    );
    assert.equal(record.status, 'FAILED');
    assert.equal(record.attempt, 1);
    assert.equal(record.error?.code, 'INVALID_DATA');
    assert.match(record.error?.message ?? '', /Row 8, column "x": 1e39 is not a finite 32-bit float/);
  });

  it('an embedding fed values that are not ids fails at once with INVALID_DATA', async () => {
    const record = await runOnce(
      csv(
        'a,b,label',
        rowsOf(20, (i) => `${i % 5},${(i * 3) % 7},${i % 2}`),
      ),
      {
        preprocessing: { scale: 'standardize' },
        model: { layers: [{ type: 'embedding', inputDim: 10, outputDim: 2 }, { type: 'flatten' }] },
        training: { epochs: 2 },
      },
    );
    assert.equal(record.status, 'FAILED');
    assert.equal(record.attempt, 1);
    assert.equal(record.error?.code, 'INVALID_DATA');
    assert.match(
      record.error?.message ?? '',
      /embedding layer looks up integer ids from 0 to 9.*not an integer/,
    );
  });

  it('a reshape that does not fit the encoded width (known only after one-hot encoding) fails at once with INVALID_MODEL', async () => {
    const record = await runOnce(
      csv(
        'colour,label',
        rowsOf(20, (i) => `${['red', 'green', 'blue'][i % 3]},${i % 2}`),
      ),
      {
        model: { layers: [{ type: 'reshape', targetShape: [2, 2] }, { type: 'flatten' }] },
        training: { epochs: 2 },
      },
    );
    assert.equal(record.status, 'FAILED');
    assert.equal(record.attempt, 1);
    assert.equal(record.error?.code, 'INVALID_MODEL');
    assert.match(record.error?.message ?? '', /encoded as \[3\].*cannot reshape \[3\]/);
  });

  it('a model over the memory a job may use once its data is encoded fails at once with RESOURCE_LIMIT', async () => {
    // 3,000 categories one-hot encoded: 3,000 × 1,024 weights, over the 48 MiB this trainer allows.
    const record = await runOnce(
      csv(
        'id,label',
        rowsOf(3000, (i) => `user-${i},${i % 2}`),
      ),
      {
        model: { layers: [{ type: 'dense', units: 1024 }] },
        // Declared categorical: a column unique per row would otherwise be left out as an identifier.
        preprocessing: { columns: { id: { type: 'categorical' } } },
        training: { epochs: 1 },
      },
    );
    assert.equal(record.status, 'FAILED');
    assert.equal(record.attempt, 1);
    assert.equal(record.error?.code, 'RESOURCE_LIMIT');
    assert.match(
      record.error?.message ?? '',
      /input shape \[\d+\].*needs an estimated [\d.]+ MiB, over the 48\.0 MiB a job may use \(setting DESCENT_JOB_MEMORY_BYTES\)/,
    );
  });

  it('fine-tuning that would freeze every layer (the new head included) fails at once with INVALID_SPEC', async () => {
    const data = csv(
      'x1,x2,label',
      rowsOf(40, (i) => `${i % 7},${(i * 3) % 5},${i % 2}`),
    );
    const base = await runOnce(data, { training: { epochs: 2 } });
    assert.equal(base.status, 'SUCCEEDED', JSON.stringify(base.error));
    // The base has no hidden layer: its output is replaced by a new head, which always trains.
    const tuned = await runOnce(data, {
      model: { baseModel: { jobId: base.id }, freeze: 1 },
      training: { epochs: 2 },
    });
    assert.equal(tuned.status, 'FAILED');
    assert.equal(tuned.attempt, 1);
    assert.equal(tuned.error?.code, 'INVALID_SPEC');
    assert.match(tuned.error?.message ?? '', /model\.freeze is 1 but the base model keeps 0 layers/);
  });

  /** A job whose last epoch runs `atLastEpoch` (through a sweep's stopping-rule hook), before evaluation. */
  const withHookAtLastEpoch = async (atLastEpoch: (jobId: string) => Promise<void>) => {
    const id = await fixture.dataset(
      csv(
        'x1,x2,label',
        rowsOf(200, (i) => `${i % 13},${(i * 7) % 11},${i % 2}`),
      ),
    );
    const job = await fixture.submit({ dataset: { id, label: 'label' }, training: { epochs: 3, seed: 4 } });
    const deps = {
      ...fixture.deps,
      stopRule: () => async (history: readonly unknown[]) => {
        if (history.length === 3) await atLastEpoch(job.id);
        return undefined;
      },
    };
    const { runJob } = await import('../../trainer/run-job.ts');
    assert.equal(await runJob(deps, { tenant: TENANT, jobId: job.id }, new AbortController().signal), 'done');
    return fixture.record(job.id);
  };

  it('a cancel during evaluation ends the job CANCELLED then, saying where', async () => {
    const record = await withHookAtLastEpoch(async (jobId) => {
      await fixture.services.lifecycle.cancel(TENANT, jobId, 'api');
      skewMs = PACE_MS; // the evaluation's first pace then looks (whatever the speed of this machine)
    }).finally(() => {
      skewMs = 0;
    });
    assert.equal(record.status, 'CANCELLED');
    assert.equal(record.attempt, 1);
    const events = await fixture.jobs.events(TENANT, record.id);
    assert.match(
      events.at(-1)?.message ?? '',
      /^Cancelled while (evaluating the model|computing feature importance)\.$/,
    );
  });

  it('the maximum runtime passed during evaluation fails the job with TIMEOUT then', async () => {
    const record = await withHookAtLastEpoch(async () => {
      skewMs = 2 * 86_400_000; // past any maxRuntimeSeconds the job has
    }).finally(() => {
      skewMs = 0;
    });
    assert.equal(record.status, 'FAILED');
    assert.equal(record.error?.code, 'TIMEOUT');
    assert.match(
      record.error?.message ?? '',
      /maxRuntimeSeconds .* while (evaluating the model|computing feature importance)/,
    );
  });

  it('an error quoting a 3 MB cell is bounded in the record, its events and the log', async () => {
    const huge = 'z'.repeat(3 * 1024 * 1024);
    const record = await runOnce(
      csv(
        'x,label',
        rowsOf(20, (i) => `${i === 5 ? huge : i},${i % 2}`),
      ),
      { training: { epochs: 1 } },
    );
    assert.equal(record.status, 'FAILED');
    assert.equal(record.error?.code, 'INVALID_DATA');
    assert.ok(
      (record.error?.message.length ?? 0) < 2200,
      `a message of ${record.error?.message.length} characters`,
    );
    assert.match(record.error?.message ?? '', /\[truncated: \d+ more characters\]/);
    const events = JSON.stringify(await fixture.jobs.events(TENANT, record.id));
    assert.ok(events.length < 10_000, `events of ${events.length} characters`);
    const longest = Math.max(...lines.map((l) => l.length));
    assert.ok(longest < 20_000, `a log line of ${longest} characters`);
  });

  it('permutation importance shuffles a bounded sample of features and lets timers run while it works', async () => {
    const { tf } = fixture.deps;
    const width = 300;
    const n = 4000;
    const spec = specOf({ model: { layers: [{ type: 'dense', units: 64 }] } });
    const model = buildModel(tf, spec, [width], { units: 2, activation: 'softmax' }) as LayersModel;
    const fitted = {
      version: 1 as const,
      columns: Array.from({ length: width }, (_, i) => ({
        name: `f${i}`,
        kind: 'numeric' as const,
        scale: 'none' as const,
        offset: 0,
        divisor: 1,
      })),
      inputShape: [width],
    };
    const x = Float32Array.from({ length: n * width }, (_, i) => ((i * 7919) % 101) / 101);
    const before = x.slice();
    let paces = 0;
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    try {
      const result = await permutationImportance(tf, model, fitted, x, n, (raw) => raw[0] as number, 7, {
        slice: 512,
        pace: async () => {
          paces++;
          await new Promise<void>((resolve) => setImmediate(resolve));
        },
      });
      assert.equal(result.featuresEvaluated, IMPORTANCE_BUDGET.maxFeatures);
      assert.equal(result.featuresTotal, width);
      assert.equal(result.features.length, IMPORTANCE_BUDGET.maxFeatures);
      assert.ok(
        result.rows * (1 + result.featuresEvaluated * result.repeats) <= IMPORTANCE_BUDGET.maxPredictions,
      );
      assert.ok(paces > result.featuresEvaluated * result.repeats, `paced ${paces} times`);
      assert.ok(ticks > 0, 'a timer ran during the computation');
      assert.deepEqual(x, before, 'the inputs are put back as they were');
    } finally {
      clearInterval(timer);
      model.dispose();
    }
  });

  it('a model whose weights are not finite never succeeds: DIVERGED', () => {
    const { tf } = fixture.deps;
    const model = buildModel(tf, specOf(), [3], { units: 2, activation: 'softmax' });
    try {
      checkFiniteWeights(tf, model, 0.1);
      model.setWeights(model.getWeights().map((w, i) => (i === 0 ? tf.fill(w.shape, Number.NaN) : w)));
      assert.throws(() => checkFiniteWeights(tf, model, 0.1), {
        code: 'DIVERGED',
        message: /output\/kernel/,
      });
    } finally {
      model.dispose();
    }
  });

  it('a TensorFlow.js error in a computation is INVALID_MODEL (deterministic), memory is RESOURCE_LIMIT, a device fault stays temporary', () => {
    const { tf } = fixture.deps;
    assert.throws(
      () =>
        computing(
          () => 'training step 1 of epoch 1',
          () => tf.tidy(() => tf.reshape(tf.zeros([10]), [3, 3])),
        ),
      { code: 'INVALID_MODEL', message: /at training step 1 of epoch 1: .*size/i },
    );
    assert.equal(
      (classifyComputeError(new RangeError('Array buffer allocation failed'), 'x') as { code?: string }).code,
      'RESOURCE_LIMIT',
    );
    const device = new Error('CUDA_ERROR_LAUNCH_FAILED');
    assert.equal(classifyComputeError(device, 'x'), device);
  });
});
