/**
 * The local dashboard in headless Chromium (Debian's `chromium` through playwright-core): a job
 * submitted through the API shows up, reaches SUCCEEDED, and its loss chart and report render; a
 * sweep's ranked trials and plots show from a `#sweep=` link.
 * Skips, saying why, where /usr/bin/chromium is not installed.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is not installed (apt-get install chromium); .ci/run installs it`;

const irisCsv = await readFile(new URL('../../examples/iris/iris.csv', import.meta.url), 'utf8');

describe('local dashboard in headless Chromium', { skip, timeout: 180_000 }, () => {
  let stack: TestStack;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  before(async () => {
    stack = await startTestStack();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => problems.push(String(error)));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
  });
  after(async () => {
    await browser?.close();
    await stack?.destroy();
  });

  it('serves the page and its assets at / from the gateway, the page with a strict CSP', async () => {
    const home = await fetch(`${stack.url}/`);
    assert.equal(home.status, 200);
    assert.match(home.headers.get('content-type') ?? '', /text\/html/);
    assert.match(home.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    for (const asset of [
      '/dashboard/app.js',
      '/dashboard/uplot.js',
      '/dashboard/uplot.css',
      '/dashboard/style.css',
    ]) {
      const response = await fetch(`${stack.url}${asset}`);
      assert.equal(response.status, 200, asset);
      await response.arrayBuffer();
    }
    assert.equal((await fetch(`${stack.url}/dashboard/nope.js`)).status, 404);
    assert.equal((await fetch(`${stack.url}/dashboard/app.js`, { method: 'POST' })).status, 405);
  });

  it('asks for the token, then shows a submitted job reaching SUCCEEDED with its loss chart and report', async () => {
    const datasetId = await stack.upload(irisCsv);
    const submitted = await stack.call('POST', '/jobs', {
      body: {
        name: 'dash-iris',
        task: 'classification',
        dataset: { id: datasetId, label: 'species' },
        model: { layers: [{ type: 'dense', units: 8 }] },
        training: { optimizer: { type: 'adam', learningRate: 0.05 }, epochs: 12, batchSize: 16, seed: 3 },
      },
    });
    assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
    const jobId: string = submitted.body.id;

    await page.goto(`${stack.url}/`);
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('#token', stack.token);
    await page.click('#login button[type=submit]');
    assert.equal(await page.evaluate(() => localStorage.getItem('descent.token')), stack.token);

    // The list refreshes by itself while a job is active.
    const status = page.locator(`#jobs tr[data-job-id="${jobId}"] .status`);
    await status.filter({ hasText: 'SUCCEEDED' }).waitFor({ timeout: 90_000 });

    await page.click(`#jobs tr[data-job-id="${jobId}"]`);
    const job = (await stack.call('GET', `/jobs/${jobId}`)).body;
    await page.locator(`#chart[data-epochs="${job.progress.epoch}"] canvas`).waitFor();
    await page.locator('#report').waitFor({ state: 'visible' });

    assert.match((await page.textContent('#job-title')) ?? '', /dash-iris\s*SUCCEEDED/);
    const legend = (await page.textContent('#chart')) ?? '';
    assert.match(legend, /training loss/);
    assert.match(legend, /validation loss/);
    // The chart drew something: the plot canvas is not blank.
    const inked = await page.evaluate(() => {
      const canvas = document.querySelector<HTMLCanvasElement>('#chart canvas');
      const context = canvas?.getContext('2d');
      if (!canvas || !context) return 0;
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
      let count = 0;
      for (let i = 3; i < pixels.length; i += 4) if ((pixels[i] as number) > 0) count++;
      return count;
    });
    assert.ok(inked > 1000, `the chart has ink (${inked} pixels)`);

    const metricNames = await page.locator('#metrics-table tr td:first-child').allTextContents();
    assert.ok(metricNames.includes('accuracy'), metricNames.join(','));
    const classes = await page.locator('#confusion tr th:first-child').allTextContents();
    assert.deepEqual(classes.slice(1), ['setosa', 'versicolor', 'virginica']);
    const cells = await page.locator('#confusion td').allTextContents();
    const validationRows = job.resources?.rows?.validation ?? 30;
    assert.equal(
      cells.reduce((sum, n) => sum + Number(n), 0),
      validationRows,
      'the confusion matrix counts the validation rows',
    );
    assert.deepEqual(problems, []);
  });

  it('shows the job from a #token= link and asks again when the token is refused', async () => {
    await page.goto(`${stack.url}/#token=dsc_wrong`);
    await page.locator('#login-error').filter({ hasText: 'refused' }).waitFor();
    assert.doesNotMatch(
      await page.evaluate(() => location.href),
      /token/,
      'the token is taken out of the URL',
    );
    assert.equal(await page.evaluate(() => localStorage.getItem('descent.token')), null);

    await page.goto(`${stack.url}/#token=${stack.token}`);
    await page.locator('#jobs tbody tr').first().waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('descent.token')), stack.token);
  });

  it('shows a sweep from a #sweep= link: its ranked trials, their jobs and its plots', async () => {
    const datasetId = await stack.upload(irisCsv);
    const submitted = await stack.call('POST', '/sweeps', {
      body: {
        name: 'dash-sweep',
        spec: {
          task: 'classification',
          dataset: { id: datasetId, label: 'species' },
          model: { layers: [{ type: 'dense', units: 8 }] },
          training: { optimizer: { type: 'adam', learningRate: 0.05 }, epochs: 5, batchSize: 32, seed: 3 },
        },
        parameters: { 'training.optimizer.learningRate': { type: 'choice', values: [0.02, 0.1] } },
        objective: { metric: 'loss' },
      },
    });
    assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
    const sweepId: string = submitted.body.id;

    // A fresh browser context that already holds the token, opened straight at the sweep.
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.addInitScript((t) => localStorage.setItem('descent.token', t), stack.token);
    const sweepPage = await context.newPage();
    const sweepProblems: string[] = [];
    sweepPage.on('pageerror', (error) => sweepProblems.push(String(error)));
    sweepPage.on('console', (message) => {
      if (message.type() === 'error') sweepProblems.push(message.text());
    });
    try {
      await sweepPage.goto(`${stack.url}/#sweep=${sweepId}`);
      // The table refreshes by itself while the sweep runs.
      await sweepPage.waitForFunction(
        () =>
          Array.from(document.querySelectorAll('#trials tr[data-trial] .status')).filter(
            (s) => s.textContent === 'SUCCEEDED',
          ).length === 2,
        null,
        { timeout: 90_000 },
      );
      await sweepPage.waitForFunction(
        () =>
          Array.from(document.querySelectorAll<HTMLImageElement>('#sweep-plots img')).some(
            (img) => img.complete && img.naturalWidth > 0,
          ),
        null,
        { timeout: 30_000 },
      );
      const sweep = (await stack.call('GET', `/sweeps/${sweepId}`)).body;
      assert.equal(sweep.status, 'SUCCEEDED');
      await sweepPage
        .locator('#sweep-title')
        .filter({ hasText: /dash-sweep\s*SUCCEEDED/ })
        .waitFor();
      const order = await sweepPage
        .locator('#trials tr[data-trial]')
        .evaluateAll((rows) => rows.map((row) => Number((row as HTMLElement).dataset.trial)));
      assert.deepEqual(order, sweep.ranking, 'the trials are in the order of the ranking');
      const captions = await sweepPage.locator('#sweep-plots figcaption').allTextContents();
      assert.deepEqual(captions, ['objective-vs-training.optimizer.learningRate.svg']);

      // The sweep is in the list, with its trial count, and selected.
      const listed = sweepPage.locator(`#sweeps tr.selected[data-sweep-id="${sweepId}"]`);
      await listed.filter({ hasText: '2/2' }).waitFor();

      // The best trial's link opens its job in the job view.
      await sweepPage.locator('#trials tr.best a.job-link').click();
      await sweepPage
        .locator('#job-title')
        .filter({ hasText: `dash-sweep-${sweep.best.trial}` })
        .waitFor();
      await sweepPage.locator('#report').waitFor({ state: 'visible' });
      const hash = new URLSearchParams((await sweepPage.evaluate(() => location.hash)).slice(1));
      assert.equal(hash.get('sweep'), sweepId);
      assert.equal(hash.get('job'), sweep.best.jobId);
      assert.deepEqual(sweepProblems, []);
    } finally {
      await context.close();
    }
  });
});
