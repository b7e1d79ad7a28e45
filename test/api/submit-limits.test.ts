/**
 * What `POST /jobs` and `POST /sweeps` refuse before anything is stored: a model whose estimated
 * memory is over the limit (413 naming the estimate, the limit and the setting), shapes that can never
 * work and convolution options TensorFlow refuses (400 INVALID_MODEL / VALIDATION_ERROR), too many
 * columns or a header line too long (413), a spec too large for a record; sweeps make the same
 * checks, fine-tuning ones included. Lists stay within their byte budget, and a deleted job frees its
 * Idempotency-Key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LIST_RESPONSE_BYTES, MAX_SPEC_BYTES } from '../../core/platform/limits.ts';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';

const CSV = 'x1,x2,label\n1,2,a\n2,3,b\n3,4,a\n4,5,b\n5,6,a\n6,7,b\n';
/** JSON Lines rows with a 4 × 3 array feature. */
const JSONL = Array.from(
  { length: 6 },
  (_, i) => `${JSON.stringify({ seq: Array.from({ length: 12 }, (_, j) => (i + j) % 5), label: i % 2 })}\n`,
).join('');

describe('limits at submit', () => {
  let stack: TestStack;
  let csv: string;
  let jsonl: string;
  before(async () => {
    stack = await startTestStack({
      workers: 0,
      limits: { maxActiveJobs: 100, jobMemoryBytes: 256 * 1024 ** 2, maxColumns: 50, maxLineBytes: 4096 },
    });
    csv = await stack.upload(CSV);
    jsonl = await stack.upload(JSONL, 'jsonl');
  });
  after(async () => {
    await stack?.destroy();
  });
  const job = (extra: Record<string, unknown> = {}) => ({
    task: 'classification',
    dataset: { id: csv, label: 'label' },
    training: { epochs: 1 },
    ...extra,
  });
  const sequenceJob = (layers: unknown[]) => ({
    task: 'classification',
    dataset: { id: jsonl, label: 'label', features: [{ name: 'seq', shape: [4, 3] }] },
    model: { layers },
    training: { epochs: 1 },
  });

  it('refuses a model whose estimated memory is over the limit with a 413 naming the estimate, the limit and the setting', async () => {
    const r = await stack.call('POST', '/jobs', {
      body: job({ model: { layers: Array.from({ length: 3 }, () => ({ type: 'dense', units: 8192 })) } }),
    });
    assert.equal(r.status, 413);
    assert.equal(r.body.error.code, 'RESOURCE_LIMIT');
    assert.match(
      r.body.error.message,
      /needs an estimated [\d.]+ GiB of memory, over the 256\.0 MiB a job may use/,
    );
    assert.match(r.body.error.message, /DESCENT_JOB_MEMORY_BYTES/);
    assert.match(r.body.error.message, /134,275,074 parameters/);
    assert.equal(r.body.error.details.limitBytes, 256 * 1024 ** 2);
    assert.ok(r.body.error.details.estimateBytes.total > 256 * 1024 ** 2);
    // Deep stacks of recurrent layers are counted too.
    const deep = await stack.call('POST', '/jobs', {
      body: sequenceJob(
        Array.from({ length: 12 }, () => ({ type: 'lstm', units: 2048, returnSequences: true })),
      ),
    });
    assert.equal(deep.status, 413);
    assert.equal(deep.body.error.code, 'RESOURCE_LIMIT');
  });

  it('accepts a model within the limit', async () => {
    const r = await stack.call('POST', '/jobs', {
      body: job({ model: { layers: [{ type: 'dense', units: 64 }] } }),
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  });

  it('refuses shapes that can never work with a 400 INVALID_MODEL naming the layer', async () => {
    const reshape = await stack.call('POST', '/jobs', {
      body: sequenceJob([{ type: 'reshape', targetShape: [5, 3] }]),
    });
    assert.equal(reshape.status, 400);
    assert.equal(reshape.body.error.code, 'INVALID_MODEL');
    assert.match(reshape.body.error.message, /layer 1 \(reshape\): cannot reshape \[4, 3\]/);
    const kernel = await stack.call('POST', '/jobs', {
      body: sequenceJob([{ type: 'conv1d', filters: 2, kernelSize: 9 }]),
    });
    assert.equal(kernel.status, 400);
    assert.match(kernel.body.error.message, /kernel \[9\].*spans more than its input/);
    const flat = await stack.call('POST', '/jobs', {
      body: job({ model: { layers: [{ type: 'lstm', units: 4 }] } }),
    });
    assert.equal(flat.status, 400);
    assert.match(flat.body.error.message, /layer 1 \(lstm\) needs \[steps, features\]/);
  });

  it('refuses strides above 1 with a dilation above 1, and an embedding that is not first, as invalid specs', async () => {
    const conv = await stack.call('POST', '/jobs', {
      body: sequenceJob([{ type: 'conv1d', filters: 2, kernelSize: 2, strides: 2, dilationRate: 2 }]),
    });
    assert.equal(conv.status, 400);
    assert.match(
      conv.body.error.message,
      /model\.layers\[0\]\.dilationRate: strides above 1 cannot be combined/,
    );
    const conv2d = await stack.call('POST', '/jobs', {
      body: sequenceJob([
        { type: 'reshape', targetShape: [4, 3, 1] },
        { type: 'conv2d', filters: 2, kernelSize: 2, strides: [1, 2], dilationRate: [2, 1] },
      ]),
    });
    assert.equal(conv2d.status, 400);
    const embedding = await stack.call('POST', '/jobs', {
      body: job({
        model: {
          layers: [
            { type: 'dense', units: 4 },
            { type: 'embedding', inputDim: 10, outputDim: 2 },
          ],
        },
      }),
    });
    assert.equal(embedding.status, 400);
    assert.match(embedding.body.error.message, /embedding layer .* must come first/);
  });

  it('refuses a dataset with more columns than the limit, or a header line longer than the longest allowed', async () => {
    const wide = await stack.upload(`${Array.from({ length: 60 }, (_, i) => `c${i}`).join(',')},label\n`);
    const r = await stack.call('POST', '/jobs', { body: job({ dataset: { id: wide, label: 'label' } }) });
    assert.equal(r.status, 413);
    assert.equal(r.body.error.code, 'TOO_MANY_COLUMNS');
    assert.match(
      r.body.error.message,
      /61 columns; the most a dataset may have is 50 \(setting DESCENT_MAX_COLUMNS\)/,
    );
    const long = await stack.upload(`${'x'.repeat(5000)},label\n1,a\n`);
    const l = await stack.call('POST', '/jobs', { body: job({ dataset: { id: long, label: 'label' } }) });
    assert.equal(l.status, 413);
    assert.equal(l.body.error.code, 'LINE_TOO_LONG');
  });

  it('refuses a spec larger than a record may hold with a 413', async () => {
    const columns = Object.fromEntries(
      Array.from({ length: 3000 }, (_, i) => [
        `column-with-a-long-name-${i}-${'y'.repeat(60)}`,
        { scale: 'minMax' },
      ]),
    );
    const r = await stack.call('POST', '/jobs', { body: job({ preprocessing: { columns } }) });
    assert.equal(r.status, 413);
    assert.equal(r.body.error.code, 'SPEC_TOO_LARGE');
    assert.match(r.body.error.message, new RegExp(`the most is ${MAX_SPEC_BYTES}`));
  });

  it('a sweep makes the same checks as POST /jobs: fine-tuning from a missing base job, and the memory estimate', async () => {
    const base = await stack.call('POST', '/sweeps', {
      body: {
        spec: job({ model: { baseModel: { jobId: '01M8JH2TQYPMBNJ50HMGRP3N6M' } } }),
        parameters: { 'training.optimizer.learningRate': { type: 'choice', values: [0.01, 0.1] } },
      },
    });
    assert.equal(base.status, 400, JSON.stringify(base.body));
    assert.equal(base.body.error.code, 'UNKNOWN_BASE_MODEL');
    const big = await stack.call('POST', '/sweeps', {
      body: {
        spec: job({
          model: {
            layers: [
              { type: 'dense', units: 64 },
              { type: 'dense', units: 64 },
            ],
          },
        }),
        parameters: { 'model.layers[1].units': { type: 'choice', values: [64, 8192] } },
      },
    });
    // One trial's model fits; the other's does not (8192 × 64 plus 8192 × 8192 would not; 64 × 8192 does).
    assert.equal(big.status, 201, JSON.stringify(big.body));
    const huge = await stack.call('POST', '/sweeps', {
      body: {
        spec: job({
          model: {
            layers: [
              { type: 'dense', units: 8192 },
              { type: 'dense', units: 64 },
            ],
          },
        }),
        parameters: { 'model.layers[1].units': { type: 'choice', values: [64, 8192] } },
      },
    });
    assert.equal(huge.status, 413);
    assert.equal(huge.body.error.code, 'RESOURCE_LIMIT');
    await stack.call('POST', `/sweeps/${big.body.id}/cancel`);
  });

  it('a list response stays within its byte budget, and its pages give every job once', async () => {
    const token = await stack.tokens.set('lister');
    const dataset = await stack.upload(CSV, 'csv', token);
    // Jobs whose specs are ~100 KB each: 20 of them would be ~2 MB in one page.
    const columns = Object.fromEntries(
      Array.from({ length: 900 }, (_, i) => [`c${i}-${'z'.repeat(80)}`, { scale: 'standardize' }]),
    );
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await stack.call('POST', '/jobs', {
        body: { ...job({ preprocessing: { columns } }), dataset: { id: dataset, label: 'label' } },
        token,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body).slice(0, 300));
      ids.push(r.body.id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await stack.call('GET', `/jobs?limit=100${cursor ? `&cursor=${cursor}` : ''}`, { token });
      assert.equal(r.status, 200);
      const bytes = Buffer.byteLength(JSON.stringify(r.body));
      assert.ok(bytes <= LIST_RESPONSE_BYTES + 4096, `a page of ${bytes} bytes`);
      assert.ok(r.body.jobs.length > 0);
      seen.push(...r.body.jobs.map((j: { id: string }) => j.id));
      cursor = r.body.nextCursor;
      pages++;
    } while (cursor);
    assert.ok(pages > 1);
    assert.deepEqual(seen, [...ids].reverse());
  });

  it('a deleted job frees its Idempotency-Key: the same key then makes a new job', async () => {
    const headers = { 'idempotency-key': 'delete-then-reuse' };
    const first = await stack.call('POST', '/jobs', { body: job(), headers });
    assert.equal(first.status, 201);
    assert.equal((await stack.call('POST', `/jobs/${first.body.id}/cancel`)).status, 200);
    assert.equal((await stack.call('DELETE', `/jobs/${first.body.id}`)).status, 200);
    const again = await stack.call('POST', '/jobs', { body: job(), headers });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.notEqual(again.body.id, first.body.id);
  });
});
