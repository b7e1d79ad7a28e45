/**
 * Quotas per tenant and the limits of presigned URLs: over a quota is a 429 or 413 whose message
 * names the limit; a presigned URL stops working when it expires and names exactly one object.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../helpers/eventually.ts';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';

const CSV = 'x1,label\n1,a\n2,b\n3,a\n4,b\n';

describe('quotas and presigned URLs', () => {
  let stack: TestStack;
  let datasetId: string;
  before(async () => {
    stack = await startTestStack({
      workers: 0,
      limits: { maxActiveJobs: 2, maxEpochRows: 100, maxDatasetBytes: 200, uploadUrlSeconds: 2 },
    });
    datasetId = await stack.upload(CSV);
  });
  after(async () => {
    await stack?.destroy();
  });
  const job = (epochs = 5) => ({
    task: 'classification',
    dataset: { id: datasetId, label: 'label' },
    training: { epochs },
  });

  it('refuses more queued + running jobs than the quota with a 429 naming it, and accepts again after a cancel', async () => {
    const first = await stack.call('POST', '/jobs', { body: job() });
    const second = await stack.call('POST', '/jobs', { body: job() });
    assert.equal(first.status, 201);
    assert.equal(second.status, 201);
    const third = await stack.call('POST', '/jobs', { body: job() });
    assert.equal(third.status, 429);
    assert.equal(third.body.error.code, 'TOO_MANY_REQUESTS');
    assert.match(third.body.error.message, /\(2\)/);
    assert.equal((await stack.call('POST', `/jobs/${first.body.id}/cancel`)).status, 200);
    const fourth = await stack.call('POST', '/jobs', { body: job() });
    assert.equal(fourth.status, 201);
    // Leave the tenant's quota as this test found it.
    for (const id of [second.body.id, fourth.body.id])
      assert.equal((await stack.call('POST', `/jobs/${id}/cancel`)).status, 200);
  });

  it('refuses epochs × rows over the quota with a 413 naming the product and the limit', async () => {
    const other = await stack.tokens.set('big-spender');
    const dataset = await stack.upload(CSV, 'csv', other);
    const r = await stack.call('POST', '/jobs', {
      body: { ...job(30), dataset: { id: dataset, label: 'label' } },
      token: other,
    });
    assert.equal(r.status, 413);
    assert.match(r.body.error.message, /30 × 4 = 120, over the limit of 100/);
  });

  it('counts the rows again when the data is uploaded again after a submit', async () => {
    const other = await stack.tokens.set('re-uploader');
    const created = await stack.call('POST', '/datasets', {
      body: { name: 'grows', format: 'csv' },
      token: other,
    });
    const put = (body: string) =>
      fetch(created.body.uploadUrl, { method: 'PUT', headers: created.body.uploadHeaders, body });
    assert.equal((await put(CSV)).status, 200);
    const spec = {
      task: 'classification',
      dataset: { id: created.body.datasetId, label: 'label' },
      training: { epochs: 20 },
    };
    assert.equal((await stack.call('POST', '/jobs', { body: spec, token: other })).status, 201);
    // The same URL, a bigger file (8 rows): 20 epochs × 8 rows is now over the limit of 100.
    assert.equal((await put(`${CSV}5,a\n6,b\n7,a\n8,b\n`)).status, 200);
    const again = await stack.call('POST', '/jobs', { body: spec, token: other });
    assert.equal(again.status, 413);
    assert.match(again.body.error.message, /20 × 8 = 160/);
  });

  it('refuses an upload larger than the dataset quota with a 413', async () => {
    const created = await stack.call('POST', '/datasets', { body: { name: 'big', format: 'csv' } });
    assert.equal(created.body.maxBytes, 200);
    const put = await fetch(created.body.uploadUrl, {
      method: 'PUT',
      headers: created.body.uploadHeaders,
      body: 'x'.repeat(500),
    });
    assert.equal(put.status, 413);
  });

  it('a presigned URL names one object: the same signature on another key is refused', async () => {
    const created = await stack.call('POST', '/datasets', { body: { name: 'x', format: 'csv' } });
    const url = new URL(created.body.uploadUrl);
    url.pathname = url.pathname.replace(created.body.datasetId, datasetId);
    const put = await fetch(url, { method: 'PUT', headers: created.body.uploadHeaders, body: CSV });
    assert.equal(put.status, 403);
    const other = new URL(created.body.uploadUrl);
    other.pathname = other.pathname.replace('tenants/default/', 'tenants/big-spender/');
    assert.equal(
      (await fetch(other, { method: 'PUT', headers: created.body.uploadHeaders, body: CSV })).status,
      403,
    );
  });

  it('a presigned URL stops working when it expires', async () => {
    const created = await stack.call('POST', '/datasets', { body: { name: 'late', format: 'csv' } });
    const upload = () =>
      fetch(created.body.uploadUrl, { method: 'PUT', headers: created.body.uploadHeaders, body: CSV });
    assert.equal((await upload()).status, 200, 'it works until it expires');
    const put = await eventually(upload, (r) => r.status !== 200, {
      timeoutMs: 15_000,
      intervalMs: 250,
      what: 'the upload URL to expire',
    });
    assert.equal(put.status, 403);
    assert.equal((await put.json()).error.code, 'URL_EXPIRED');
  });

  it("another tenant cannot use this tenant's dataset or job, as data or as a base model", async () => {
    const other = await stack.tokens.set('snoop');
    const asData = await stack.call('POST', '/jobs', { body: job(), token: other });
    assert.equal(asData.status, 400);
    assert.equal(asData.body.error.code, 'UNKNOWN_DATASET');
    const submitted = await stack.call('POST', '/jobs', { body: job() });
    assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
    const mine = submitted.body.id;
    // Ended, so that this job leaves the default tenant's active-jobs quota as it found it.
    assert.equal((await stack.call('POST', `/jobs/${mine}/cancel`)).status, 200);
    const theirData = await stack.upload(CSV, 'csv', other);
    const asBase = await stack.call('POST', '/jobs', {
      body: {
        task: 'classification',
        dataset: { id: theirData, label: 'label' },
        model: { baseModel: { jobId: mine } },
      },
      token: other,
    });
    assert.equal(asBase.status, 400);
    assert.equal(asBase.body.error.code, 'UNKNOWN_BASE_MODEL');
    const asModelDataset = await stack.call('POST', '/jobs', {
      body: {
        task: 'classification',
        dataset: { id: theirData, label: 'label' },
        model: { baseModel: { datasetId } },
      },
      token: other,
    });
    assert.equal(asModelDataset.status, 400);
  });
});
