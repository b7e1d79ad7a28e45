/**
 * `training.privacy` at submit: a private spec is stored with its defaults; what would break the
 * guarantee (batch normalization, a second clipping) and a spec without noise or target are 400s
 * that say why, for jobs and for every trial of a sweep.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';

const CSV = 'x1,x2,label\n1,2,a\n2,1,b\n3,4,a\n4,3,b\n5,6,a\n6,5,b\n';

describe('private jobs at submit', () => {
  let stack: TestStack;
  let datasetId: string;
  before(async () => {
    stack = await startTestStack({ workers: 0 });
    datasetId = await stack.upload(CSV);
  });
  after(async () => {
    await stack?.destroy();
  });
  const job = (training: object, layers: object[] = [{ type: 'dense', units: 4 }]) => ({
    task: 'classification',
    dataset: { id: datasetId, label: 'label' },
    model: { layers },
    training: { epochs: 2, ...training },
  });

  it('stores a private spec with its defaults', async () => {
    const r = await stack.call('POST', '/jobs', { body: job({ privacy: { targetEpsilon: 2 } }) });
    assert.equal(r.status, 201);
    assert.deepEqual(r.body.spec.training.privacy, { targetEpsilon: 2, clipNorm: 1 });
    assert.equal((await stack.call('POST', `/jobs/${r.body.id}/cancel`)).status, 200);
  });

  it('refuses a batchNormalization layer with a 400 that says why and where', async () => {
    const r = await stack.call('POST', '/jobs', {
      body: job({ privacy: { targetEpsilon: 2 } }, [
        { type: 'dense', units: 4 },
        { type: 'batchNormalization' },
      ]),
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'VALIDATION_ERROR');
    assert.match(
      r.body.error.message,
      /model\.layers\[1\]: batchNormalization cannot be trained with training\.privacy/,
    );
    assert.match(r.body.error.message, /depends on the other rows/);
  });

  it('refuses gradientClipping beside privacy, and privacy with neither a target nor a noise multiplier', async () => {
    const clipped = await stack.call('POST', '/jobs', {
      body: job({ privacy: { noiseMultiplier: 1 }, gradientClipping: { clipNorm: 1 } }),
    });
    assert.equal(clipped.status, 400);
    assert.match(clipped.body.error.message, /training\.gradientClipping.*clipNorm/);
    const empty = await stack.call('POST', '/jobs', { body: job({ privacy: { clipNorm: 1 } }) });
    assert.equal(empty.status, 400);
    assert.match(empty.body.error.message, /targetEpsilon, noiseMultiplier or both/);
  });

  it('refuses a sweep whose trials would train batch normalization privately', async () => {
    const r = await stack.call('POST', '/sweeps', {
      body: {
        spec: {
          ...job({ privacy: { targetEpsilon: 2 } }, [{ type: 'batchNormalization' }]),
          training: { epochs: 2, privacy: { targetEpsilon: 2 }, validation: { type: 'holdout' } },
        },
        objective: { metric: 'accuracy', goal: 'maximize' },
        parameters: { 'training.optimizer.learningRate': { type: 'choice', values: [0.01, 0.1] } },
      },
    });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /batchNormalization cannot be trained with training\.privacy/);
  });
});
