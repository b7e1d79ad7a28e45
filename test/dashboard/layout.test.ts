/**
 * The dashboard people use, in headless Chromium: at 1024, 1280, 1600 and 1920 px wide no two
 * pieces of text overlap, no cell's text runs out of its box and nothing scrolls sideways
 * (screenshots of each width are saved); a job's warnings, test metrics, downloads and diverging
 * importance bars; the log-scale toggle; cancel; a failed job without an empty chart; paging that
 * tells the true count. Skips, saying why, where /usr/bin/chromium is not installed.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { startTestStack, type TestStack } from '../helpers/local-stack.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is not installed (apt-get install chromium); .ci/run installs it`;
const WIDTHS = [1024, 1280, 1600, 1920];
/** Where the screenshots go (DESCENT_SCREENSHOTS, else a folder in the system's temporary folder). */
const SHOTS = process.env.DESCENT_SCREENSHOTS ?? join(tmpdir(), 'descent-dashboard-screenshots');

const churn = new URL('../../examples/churn/', import.meta.url);
const churnCsv = await readFile(new URL('customers.csv', churn), 'utf8');

/** Problems of the layout as the page sees it: overlapping text boxes, clipped text, sideways scroll. */
function layoutProblems(): string[] {
  const problems: string[] = [];
  const visible = (e: Element) => {
    const r = e.getBoundingClientRect();
    const style = getComputedStyle(e);
    return r.width > 0 && r.height > 0 && style.visibility !== 'hidden' && style.display !== 'none';
  };
  const name = (e: Element) =>
    `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}${e.className && typeof e.className === 'string' ? `.${e.className.split(' ').join('.')}` : ''} "${(e.textContent ?? '').trim().slice(0, 30)}"`;
  // Leaves that hold text or controls, outside the chart's own drawing.
  const selector =
    'header h1, header span, header button, h2, h3, p, li, th, td, button, label, .bar-row > span, .bar-track, #downloads a, #chart canvas';
  const leaves = Array.from(document.querySelectorAll(selector)).filter(
    (e) => visible(e) && !e.closest('.u-legend') && !e.closest('[hidden]'),
  );
  for (let i = 0; i < leaves.length; i++) {
    const a = leaves[i] as Element;
    const ra = a.getBoundingClientRect();
    const style = getComputedStyle(a);
    const clips = style.textOverflow === 'ellipsis' || style.overflowX !== 'visible';
    if (!clips && a.scrollWidth > a.clientWidth + 1 && a.tagName !== 'CANVAS' && a.clientWidth > 0)
      problems.push(`text runs out of ${name(a)} (${a.scrollWidth} > ${a.clientWidth})`);
    for (let j = i + 1; j < leaves.length; j++) {
      const b = leaves[j] as Element;
      if (a.contains(b) || b.contains(a)) continue;
      const rb = b.getBoundingClientRect();
      const x = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
      const y = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (x > 1 && y > 1)
        problems.push(`${name(a)} overlaps ${name(b)} by ${x.toFixed(0)}×${y.toFixed(0)} px`);
    }
  }
  const root = document.scrollingElement as Element;
  if (root.scrollWidth > window.innerWidth + 1)
    problems.push(`the page scrolls sideways (${root.scrollWidth} > ${window.innerWidth})`);
  return problems;
}

describe('dashboard layout and controls in headless Chromium', { skip, timeout: 300_000 }, () => {
  let stack: TestStack;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  const open = async (hash = '') => {
    await page.goto(`${stack.url}/#token=${stack.token}${hash ? `&${hash}` : ''}`);
    await page.locator('#jobs tbody tr').first().waitFor();
  };

  before(async () => {
    stack = await startTestStack();
    await mkdir(SHOTS, { recursive: true });
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

  it('shows a job with warnings, test metrics, downloads and importances without overlap at 1024–1920 px', async () => {
    const datasetId = await stack.upload(churnCsv);
    const submitted = await stack.call('POST', '/jobs', {
      body: {
        name: 'a-churn-model-with-a-rather-long-name-that-must-not-run-over-the-next-column',
        task: 'classification',
        dataset: { id: datasetId, label: 'churned' },
        preprocessing: { scale: 'standardize', missing: 'mean' },
        model: { layers: [{ type: 'dense', units: 8 }] },
        training: { optimizer: { type: 'adam', learningRate: 0.02 }, epochs: 12, testFraction: 0.2, seed: 2 },
      },
    });
    assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
    const jobId: string = submitted.body.id;
    const job = await stack.waitFor(jobId, undefined, 120_000);
    assert.equal(job.status, 'SUCCEEDED', JSON.stringify(job.error));

    await open(`job=${jobId}`);
    await page.locator('#report').waitFor({ state: 'visible' });
    assert.match((await page.textContent('#job-warnings')) ?? '', /"customer_id" looks like an identifier/);
    const headers = await page.locator('#metrics-table th').allTextContents();
    assert.deepEqual(headers, ['metric', 'training', 'validation', 'test']);
    const links = await page.locator('#downloads a').allTextContents();
    assert.ok(links.includes('model.json') && links.includes('preprocessing.json'), links.join());
    const href = await page.locator('#downloads a', { hasText: 'model.json' }).getAttribute('href');
    assert.equal((await fetch(href as string)).status, 200);
    assert.match((await page.textContent(`#jobs tr[data-job-id="${jobId}"]`)) ?? '', /acc 0\.\d+/);

    // Each bar lies on its side of the zero line: positive to the right, negative to the left.
    const bars = await page.locator('.bar-row').evaluateAll((rows) =>
      rows.map((row) => {
        const bar = (row.querySelector('.bar') as HTMLElement).getBoundingClientRect();
        const zero = (row.querySelector('.zero') as HTMLElement).getBoundingClientRect();
        const value = Number(
          (row.querySelector('span.num')?.textContent ?? '').split(' ')[0]?.replace('−', '-'),
        );
        return { value, left: bar.left, right: bar.right, zero: zero.left };
      }),
    );
    assert.ok(bars.length >= 5, `${bars.length} importance bars`);
    for (const b of bars) {
      if (b.value > 0) assert.ok(b.left >= b.zero - 1, JSON.stringify(b));
      if (b.value < 0) assert.ok(b.right <= b.zero + 1, JSON.stringify(b));
    }

    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: 1000 });
      await page.waitForFunction(
        (w) =>
          Math.abs(
            (document.querySelector('#chart canvas') as HTMLCanvasElement | null)?.getBoundingClientRect()
              .width ?? 0,
          ) > 0 && window.innerWidth === w,
        width,
      );
      await page.screenshot({ path: join(SHOTS, `job-${width}.png`), fullPage: true });
      assert.deepEqual(await page.evaluate(layoutProblems), [], `at ${width} px`);
    }
    assert.deepEqual(problems, []);
  });

  it('switches the loss chart to a log scale and back', async () => {
    const datasetId = await stack.upload(churnCsv);
    const submitted = await stack.call('POST', '/jobs', {
      body: {
        task: 'classification',
        dataset: { id: datasetId, label: 'churned' },
        preprocessing: { scale: 'standardize', missing: 'mean' },
        training: { epochs: 5, seed: 3 },
      },
    });
    const job = await stack.waitFor(submitted.body.id, undefined, 120_000);
    await open(`job=${job.id}`);
    await page.locator('#chart[data-epochs="5"][data-scale="linear"] canvas').waitFor();
    await page.check('#log-scale');
    await page.locator('#chart[data-scale="log"] canvas').waitFor();
    await page.uncheck('#log-scale');
    await page.locator('#chart[data-scale="linear"] canvas').waitFor();
  });

  it('cancels a running job from its page, and shows a failed job without an empty chart', async () => {
    const datasetId = await stack.upload(churnCsv);
    const long = await stack.call('POST', '/jobs', {
      body: {
        name: 'long',
        task: 'classification',
        dataset: { id: datasetId, label: 'churned' },
        preprocessing: { missing: 'mean' },
        training: { epochs: 5000, seed: 4 },
      },
    });
    await open(`job=${long.body.id}`);
    await page.locator('#cancel-job').waitFor({ state: 'visible' });
    await page.click('#cancel-job');
    await page
      .locator('#job-title .status')
      .filter({ hasText: /CANCELLING|CANCELLED/ })
      .waitFor();
    await stack.waitFor(long.body.id, undefined, 120_000);

    // Blank cells under the default missing rule: the job fails before any epoch.
    const failed = await stack.call('POST', '/jobs', {
      body: { name: 'fails', task: 'classification', dataset: { id: datasetId, label: 'churned' } },
    });
    const job = await stack.waitFor(failed.body.id, undefined, 60_000);
    assert.equal(job.status, 'FAILED');
    await open(`job=${job.id}`);
    await page.locator('#job-error').filter({ hasText: 'INVALID_DATA' }).waitFor();
    await page.locator('#no-epochs').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#chart-block').isVisible(), false);
    assert.equal(await page.locator('#chart canvas').count(), 0);
  });

  it('pages through the jobs with the true count', async () => {
    const datasetId = await stack.upload(churnCsv);
    // Jobs cancelled while queued: cheap, and never more than one active at a time.
    for (let i = 0; i < 27; i++) {
      const r = await stack.call('POST', '/jobs', {
        body: { name: `page-${i}`, task: 'classification', dataset: { id: datasetId, label: 'churned' } },
      });
      await stack.call('POST', `/jobs/${r.body.id}/cancel`);
    }
    const total = (await stack.call('GET', '/jobs?count=true&trials=false&limit=1')).body.total;
    assert.ok(total >= 27);
    await open();
    await page
      .locator('#jobs-count')
      .filter({ hasText: `1–25 of ${total}` })
      .waitFor();
    assert.equal(await page.locator('#jobs tbody tr').count(), 25);
    await page.click('#jobs-next');
    await page
      .locator('#jobs-count')
      .filter({ hasText: `26–${Math.min(50, total)} of ${total}` })
      .waitFor();
    await page.click('#jobs-prev');
    await page
      .locator('#jobs-count')
      .filter({ hasText: `1–25 of ${total}` })
      .waitFor();
  });
});
