/**
 * The local dashboard in headless Chromium (Debian's `chromium` through playwright-core): a job
 * submitted through the API shows up, reaches SUCCEEDED, and its loss chart and report render.
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
});
