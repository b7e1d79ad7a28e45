/**
 * The predict Lambda as it ships: `functions/predict-job.ts` bundled the way `DescentFunction`
 * bundles it (esbuild, ESM, minified, the require shim, `@aws-sdk/*` left out), loaded from its
 * bundle file, and asked to predict with a small published model whose answer is known: a dense
 * layer of weights [2, −1] and bias 0.5 into a sigmoid, so P(pos) = σ(2a − b + 0.5).
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { build } from 'esbuild';
import { submitJob } from '../../core/jobs/job-service.ts';
import { jobKeys } from '../../core/platform/keys.ts';
import { createServices, type Services } from '../../core/services.ts';
import { serializeModel } from '../../trainer/artifacts.ts';
import { type LocalPorts, localPorts, putDataset } from '../helpers/local-ports.ts';
import { quiet } from '../helpers/trainer.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
/** Inside the repository, so the bundle's `@aws-sdk/*` imports resolve as the Lambda runtime's would. */
const OUT = `${ROOT}node_modules/.cache/descent-predict-bundle-${process.pid}/`;
const T = 'acme';

describe('the predict Lambda bundle', () => {
  let ports: LocalPorts;
  let s: Services;
  let jobId: string;

  before(async () => {
    ports = await localPorts();
    s = createServices(ports.store, ports.queue, { log: quiet });
    const datasetId = await putDataset(ports.store, T, s.newId(), 'a,b,y\n1,2,neg\n2,1,pos\n');
    const job = (
      await submitJob(s, T, {
        task: 'classification',
        dataset: { id: datasetId, label: 'y' },
        training: { loss: 'binaryCrossentropy' },
      })
    ).record;
    jobId = job.id;
    const claim = await s.lifecycle.claim(T, jobId, 'cpu');
    assert.equal(claim.kind, 'running');

    await tf.setBackend('cpu');
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          inputShape: [2],
          units: 1,
          activation: 'sigmoid',
          weights: [tf.tensor2d([[2], [-1]]), tf.tensor1d([0.5])],
        }),
      ],
    });
    const fitted = {
      version: 1,
      source: 'csv',
      inputShape: [2],
      columns: [
        { name: 'a', kind: 'numeric', scale: 'none', offset: 0, divisor: 1, missing: 'error', mean: 1.5 },
        { name: 'b', kind: 'numeric', scale: 'none', offset: 0, divisor: 1, missing: 'error', mean: 1.5 },
      ],
    };
    const saved = await serializeModel(tf, model, {
      descent: { task: 'classification', label: 'y', classes: ['neg', 'pos'], preprocessing: fitted },
    });
    const keys = jobKeys(T, jobId);
    await ports.store.put(keys.modelJson, JSON.stringify(saved.modelJson));
    await ports.store.put(keys.weights, saved.weights);
    await ports.store.put(keys.preprocessing, JSON.stringify(fitted));
    await s.lifecycle.finish(
      T,
      jobId,
      { attempt: 1 },
      {
        status: 'SUCCEEDED',
        patch: { classes: ['neg', 'pos'] },
        message: () => 'published by the test',
      },
    );
    model.dispose();
  });
  after(async () => {
    await rm(OUT, { recursive: true, force: true });
    await ports?.cleanup();
  });

  it('loads from its bundle and predicts a raw row with the published model', async () => {
    const result = await build({
      absWorkingDir: ROOT,
      entryPoints: ['functions/predict-job.ts'],
      write: false,
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node24',
      mainFields: ['module', 'main'],
      external: ['@aws-sdk/*'],
      minify: true,
      keepNames: true,
      banner: {
        js: "import { createRequire as __descentCreateRequire } from 'node:module'; const require = __descentCreateRequire(import.meta.url);",
      },
      logLevel: 'silent',
    });
    await mkdir(OUT, { recursive: true });
    await writeFile(`${OUT}predict-job.mjs`, result.outputFiles[0]?.contents as Uint8Array);
    const bundled = (await import(`${OUT}predict-job.mjs`)) as {
      create: (s: Services) => (e: unknown) => Promise<any>;
    };
    const handler = bundled.create(s);
    const response = await handler({
      version: '2.0',
      routeKey: 'POST /jobs/{id}/predict',
      rawPath: `/jobs/${jobId}/predict`,
      headers: { 'content-type': 'application/json' },
      pathParameters: { id: jobId },
      body: JSON.stringify({
        rows: [
          { a: '1', b: 3 },
          { a: 2, b: '0.5', y: 'ignored' },
        ],
        explain: true,
      }),
      isBase64Encoded: false,
      requestContext: { requestId: 'r1', authorizer: { lambda: { tenant: T } } },
    });
    assert.equal(response.statusCode, 200, response.body);
    const body = JSON.parse(response.body);
    const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
    const expected = [sigmoid(2 * 1 - 3 + 0.5), sigmoid(2 * 2 - 0.5 + 0.5)];
    body.predictions.forEach((p: any, i: number) => {
      assert.ok(Math.abs(p.probabilities.pos - (expected[i] as number)) < 1e-5, JSON.stringify(p));
      assert.equal(p.label, (expected[i] as number) > 0.5 ? 'pos' : 'neg');
      const total = p.attributions.a + p.attributions.b;
      assert.ok(Math.abs(total - (p.explanation.value - p.explanation.baseline)) < 0.01, JSON.stringify(p));
    });
  });
});
