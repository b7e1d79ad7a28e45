/**
 * A corpus of malformed and hostile requests across every route: broken JSON, wrong types, huge
 * bodies, deep nesting, unicode and control characters, path tricks in ids, wrong content types,
 * missing or forged tokens. Every one gets a 4xx with the error shape — never a 5xx — and nothing
 * is stored or queued.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FsObjectStore } from '../../local/fs-object-store.ts';
import { dataPaths, openJobQueue } from '../../local/layout.ts';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';

const CSV = 'x1,x2,label\n1,2,a\n2,3,b\n3,4,a\n4,5,b\n';
const ID = '01M8JH2TQYPMBNJ50HMGRP3N6M';

interface Case {
  name: string;
  method: string;
  path: string;
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  token?: string | null;
}

function corpus(datasetId: string): Case[] {
  const cases: Case[] = [];
  const valid = {
    task: 'classification',
    dataset: { id: datasetId, label: 'label' },
    training: { epochs: 2 },
  };
  const json = { 'content-type': 'application/json' };
  const brokenJson = [
    '{',
    '{"task":',
    '[1,2',
    'nul',
    '"unterminated',
    '{"task": "classification",}',
    '\u0000',
    'NaN',
    "{'single': 1}",
    '{"a":1}{"b":2}',
    '\uFEFF{',
    '{"a": 1e999999}x',
  ];
  for (const path of ['/datasets', '/jobs']) {
    for (const raw of brokenJson)
      cases.push({
        name: `broken JSON ${JSON.stringify(raw)} to ${path}`,
        method: 'POST',
        path,
        raw,
        headers: json,
      });
    cases.push({
      name: `huge body to ${path}`,
      method: 'POST',
      path,
      raw: JSON.stringify({ name: 'x'.repeat(2_000_000) }),
      headers: json,
    });
    cases.push({
      name: `deep nesting to ${path}`,
      method: 'POST',
      path,
      raw: `${'['.repeat(50_000)}${']'.repeat(50_000)}`,
      headers: json,
    });
    cases.push({
      name: `deep nesting inside a field of ${path}`,
      method: 'POST',
      path,
      raw: `{"name": ${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`,
      headers: json,
    });
    for (const type of [
      'text/plain',
      'application/xml',
      'multipart/form-data; boundary=x',
      'application/x-www-form-urlencoded',
    ]) {
      cases.push({
        name: `content type ${type} to ${path}`,
        method: 'POST',
        path,
        raw: '{}',
        headers: { 'content-type': type },
      });
    }
    for (const body of [null, 1, 'string', [], true])
      cases.push({ name: `JSON ${JSON.stringify(body)} to ${path}`, method: 'POST', path, body });
    cases.push({ name: `empty body to ${path}`, method: 'POST', path, raw: '', headers: json });
  }
  const datasetBodies: unknown[] = [
    {},
    { name: 'x' },
    { format: 'csv' },
    { name: '', format: 'csv' },
    { name: ' ', format: 'csv' },
    { name: 'x'.repeat(200), format: 'csv' },
    { name: 'bad\u0000name', format: 'csv' },
    { name: 'line\nbreak', format: 'csv' },
    { name: 'bidi\u202Eoverride', format: 'csv' },
    { name: 'x', format: 'CSV' },
    { name: 'x', format: 'parquet' },
    { name: 'x', format: 'csv', size: 10 },
    { name: ['x'], format: 'csv' },
    { name: { a: 1 }, format: 'csv' },
  ];
  for (const body of datasetBodies)
    cases.push({
      name: `dataset ${JSON.stringify(body).slice(0, 60)}`,
      method: 'POST',
      path: '/datasets',
      body,
    });
  const jobBodies: [string, unknown][] = [
    ['no task', { dataset: valid.dataset }],
    ['task 5', { ...valid, task: 5 }],
    ['task null', { ...valid, task: null }],
    ['task clustering', { ...valid, task: 'clustering' }],
    ['dataset string', { ...valid, dataset: 'x' }],
    ['dataset null', { ...valid, dataset: null }],
    ['dataset id number', { ...valid, dataset: { id: 1, label: 'label' } }],
    ['dataset id path', { ...valid, dataset: { id: '../../etc/passwd', label: 'label' } }],
    ['dataset id encoded path', { ...valid, dataset: { id: '..%2F..%2Fsecret', label: 'label' } }],
    ['dataset id 25 chars', { ...valid, dataset: { id: ID.slice(1), label: 'label' } }],
    ['dataset id lower case', { ...valid, dataset: { id: ID.toLowerCase(), label: 'label' } }],
    ['dataset id unicode', { ...valid, dataset: { id: 'ÖÄÜ01M8JH2TQYPMBNJ50HMGRP3', label: 'label' } }],
    ['unknown dataset', { ...valid, dataset: { id: ID, label: 'label' } }],
    ['label empty', { ...valid, dataset: { id: datasetId, label: '' } }],
    ['label number', { ...valid, dataset: { id: datasetId, label: 1 } }],
    ['label huge', { ...valid, dataset: { id: datasetId, label: 'l'.repeat(300) } }],
    ['label control char', { ...valid, dataset: { id: datasetId, label: 'la\u0007bel' } }],
    ['label missing from data', { ...valid, dataset: { id: datasetId, label: 'nope' } }],
    ['features empty', { ...valid, dataset: { id: datasetId, label: 'label', features: [] } }],
    ['features repeated', { ...valid, dataset: { id: datasetId, label: 'label', features: ['x1', 'x1'] } }],
    [
      'features with label',
      { ...valid, dataset: { id: datasetId, label: 'label', features: ['x1', 'label'] } },
    ],
    [
      'features huge array',
      {
        ...valid,
        dataset: { id: datasetId, label: 'label', features: Array.from({ length: 5000 }, (_, i) => `c${i}`) },
      },
    ],
    [
      'feature shape zero',
      { ...valid, dataset: { id: datasetId, label: 'label', features: [{ name: 'x1', shape: [0] }] } },
    ],
    ['epochs negative', { ...valid, training: { epochs: -1 } }],
    ['epochs zero', { ...valid, training: { epochs: 0 } }],
    ['epochs fractional', { ...valid, training: { epochs: 1.5 } }],
    ['epochs string', { ...valid, training: { epochs: '10' } }],
    ['epochs huge', { ...valid, training: { epochs: 1e9 } }],
    ['batch size zero', { ...valid, training: { batchSize: 0 } }],
    ['batch size word', { ...valid, training: { batchSize: 'half' } }],
    ['learning rate negative', { ...valid, training: { optimizer: { type: 'adam', learningRate: -1 } } }],
    ['learning rate huge', { ...valid, training: { optimizer: { type: 'adam', learningRate: 1e9 } } }],
    ['optimizer unknown', { ...valid, training: { optimizer: { type: 'lbfgs' } } }],
    ['optimizer field of another', { ...valid, training: { optimizer: { type: 'sgd', beta1: 0.9 } } }],
    ['fraction 1', { ...valid, training: { validation: { type: 'holdout', fraction: 1 } } }],
    ['fraction 0', { ...valid, training: { validation: { type: 'holdout', fraction: 0 } } }],
    ['kfold k 1', { ...valid, training: { validation: { type: 'kfold', k: 1 } } }],
    ['validation unknown', { ...valid, training: { validation: { type: 'bootstrap' } } }],
    ['seed negative', { ...valid, training: { seed: -5 } }],
    ['seed float', { ...valid, training: { seed: 1.5 } }],
    ['loss unknown', { ...valid, training: { loss: 'hinge' } }],
    ['lossThreshold zero', { ...valid, training: { lossThreshold: 0 } }],
    ['lossThreshold metric unknown', { ...valid, training: { lossThreshold: { metric: 'f1', value: 1 } } }],
    ['clipping both', { ...valid, training: { gradientClipping: { clipNorm: 1, clipValue: 1 } } }],
    ['clipping none', { ...valid, training: { gradientClipping: {} } }],
    ['schedule unknown', { ...valid, training: { learningRateSchedule: { type: 'warmup' } } }],
    ['step size zero', { ...valid, training: { learningRateSchedule: { type: 'step', stepSize: 0 } } }],
    ['early stopping patience 0', { ...valid, training: { earlyStopping: { patience: 0 } } }],
    ['class weights negative', { ...valid, training: { classWeights: { a: -1 } } }],
    ['checkpoint every 0 epochs', { ...valid, training: { checkpoint: { everyEpochs: 0 } } }],
    ['layers not an array', { ...valid, model: { layers: {} } }],
    ['layer unknown', { ...valid, model: { layers: [{ type: 'transformer' }] } }],
    ['dense units 0', { ...valid, model: { layers: [{ type: 'dense', units: 0 }] } }],
    ['dense units huge', { ...valid, model: { layers: [{ type: 'dense', units: 1e7 }] } }],
    [
      'dense activation unknown',
      { ...valid, model: { layers: [{ type: 'dense', units: 2, activation: 'gelu2' }] } },
    ],
    ['dropout rate 1', { ...valid, model: { layers: [{ type: 'dropout', rate: 1 }] } }],
    [
      'regularizer empty',
      { ...valid, model: { layers: [{ type: 'dense', units: 2, kernelRegularizer: {} }] } },
    ],
    ['reshape two -1', { ...valid, model: { layers: [{ type: 'reshape', targetShape: [-1, -1] }] } }],
    [
      'too many layers',
      { ...valid, model: { layers: Array.from({ length: 100 }, () => ({ type: 'flatten' })) } },
    ],
    [
      'base model with layers',
      { ...valid, model: { baseModel: { jobId: ID }, layers: [{ type: 'flatten' }] } },
    ],
    ['unknown base model', { ...valid, model: { baseModel: { jobId: ID } } }],
    ['freeze without base', { ...valid, model: { freeze: 1 } }],
    ['preprocessing scale unknown', { ...valid, preprocessing: { scale: 'log' } }],
    ['preprocessing missing unknown', { ...valid, preprocessing: { missing: 'zero' } }],
    ['maxRuntime over the ceiling', { ...valid, resources: { maxRuntimeSeconds: 40 * 86_400 } }],
    ['unknown top-level field', { ...valid, gpu: true }],
    ['unknown nested field', { ...valid, training: { epochs: 2, gpus: 4 } }],
    [
      'prototype pollution key',
      JSON.parse(
        `{"task":"classification","dataset":{"id":"${datasetId}","label":"label"},"__proto__":{"admin":true}}`,
      ),
    ],
    ['name control chars', { ...valid, name: 'job\u0000' }],
    ['name too long', { ...valid, name: 'n'.repeat(500) }],
  ];
  for (const [name, body] of jobBodies)
    cases.push({ name: `job: ${name}`, method: 'POST', path: '/jobs', body });
  cases.push({
    name: 'bad Idempotency-Key',
    method: 'POST',
    path: '/jobs',
    body: valid,
    headers: { 'idempotency-key': '../../x' },
  });
  cases.push({
    name: 'huge Idempotency-Key',
    method: 'POST',
    path: '/jobs',
    body: valid,
    headers: { 'idempotency-key': 'k'.repeat(500) },
  });

  const badIds = [
    '%E0%A4%A',
    '%zz',
    '..%2F..%2Fsecret',
    'a%2e%2e', // (a bare %2e%2e is normalised to .. by the HTTP client itself)
    ID.toLowerCase(),
    `${ID}X`,
    'ÄÖÜ',
    '%00',
    'x'.repeat(300),
    '%2F',
    '01M8JH2TQYPMBNJ50HMGRP3N6%2F',
  ];
  for (const id of badIds) {
    for (const [method, suffix] of [
      ['GET', ''],
      ['GET', '/metrics'],
      ['GET', '/events'],
      ['POST', '/cancel'],
      ['GET', '/result'],
      ['DELETE', ''],
    ] as const) {
      cases.push({
        name: `${method} /jobs/${id.slice(0, 20)}${suffix}`,
        method,
        path: `/jobs/${id}${suffix}`,
      });
    }
  }
  for (const query of [
    'status=DONE',
    'status=queued',
    'limit=0',
    'limit=-1',
    'limit=1e9',
    'limit=abc',
    'cursor=%%%',
    `cursor=${'A'.repeat(2000)}`,
    'extra=1',
    'status=QUEUED&status=RUNNING',
  ]) {
    cases.push({ name: `GET /jobs?${query.slice(0, 30)}`, method: 'GET', path: `/jobs?${query}` });
  }
  for (const [method, path] of [
    ['POST', '/jobs'],
    ['GET', '/jobs'],
    ['POST', '/datasets'],
    ['GET', `/jobs/${ID}`],
  ] as const) {
    cases.push({
      name: `${method} ${path} without a token`,
      method,
      path,
      token: null,
      ...(method === 'POST' ? { body: {} } : {}),
    });
    cases.push({
      name: `${method} ${path} with a forged token`,
      method,
      path,
      token: 'dsc_forged',
      ...(method === 'POST' ? { body: {} } : {}),
    });
    cases.push({
      name: `${method} ${path} with a basic auth header`,
      method,
      path,
      token: null,
      headers: { authorization: 'Basic YTpi' },
    });
    cases.push({
      name: `${method} ${path} with an empty bearer`,
      method,
      path,
      token: null,
      headers: { authorization: 'Bearer ' },
    });
  }
  for (const [method, path] of [
    ['PATCH', '/jobs'],
    ['PUT', '/datasets'],
    ['DELETE', '/jobs'],
    ['GET', '/nope'],
    ['GET', '/jobs/x/y/z'],
    ['POST', '/openapi.json'],
  ] as const) {
    cases.push({ name: `${method} ${path}`, method, path });
  }
  return cases;
}

describe('malformed and hostile requests', () => {
  let stack: TestStack;
  let datasetId: string;
  before(async () => {
    stack = await startTestStack({ workers: 0 });
    datasetId = await stack.upload(CSV);
  });
  after(async () => {
    await stack?.destroy();
  });

  it('every one of 150+ requests gets a 4xx with the error shape, none a 5xx, and nothing is stored or queued', async () => {
    const store = new FsObjectStore({
      root: dataPaths(stack.dataDir).objects,
      secret: 'unused',
      baseUrl: '',
    });
    const queue = openJobQueue(stack.dataDir, 3);
    const objects = async () => (await store.list('tenants/', { limit: 1000 })).objects.map((o) => o.key);
    const storedBefore = await objects();
    const depthBefore = await queue.depth();
    const cases = corpus(datasetId);
    assert.ok(cases.length >= 150, `${cases.length} cases`);
    const failures: string[] = [];
    for (const c of cases) {
      const response = await stack.call(c.method, c.path, {
        ...(c.body !== undefined ? { body: c.body } : {}),
        ...(c.raw !== undefined ? { rawBody: c.raw } : {}),
        ...(c.headers ? { headers: c.headers } : {}),
        ...(c.token !== undefined ? { token: c.token } : {}),
      });
      const shaped =
        typeof response.body?.error?.code === 'string' && typeof response.body?.error?.message === 'string';
      if (response.status < 400 || response.status >= 500 || !shaped)
        failures.push(`${c.name}: ${response.status} ${JSON.stringify(response.body).slice(0, 160)}`);
    }
    assert.deepEqual(failures, []);
    assert.deepEqual(await objects(), storedBefore, 'nothing stored');
    assert.deepEqual(await queue.depth(), depthBefore, 'nothing queued');
    queue.close();
  });
});
