/** Reading reports for people, and the client's promise to browsers: it bundles with no Node imports. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { build } from 'esbuild';
import { confusionMatrixOf, featureImportances, formatNumber, metricRows } from '../../client/report.ts';

describe('featureImportances', () => {
  it('reads a list of {feature, importance, std}, largest first', () => {
    const report = {
      featureImportance: [
        { feature: 'a', importance: 0.1, std: 0.01 },
        { feature: 'b', importance: 0.5 },
      ],
    };
    assert.deepEqual(featureImportances(report), [
      { feature: 'b', importance: 0.5 },
      { feature: 'a', importance: 0.1, std: 0.01 },
    ]);
  });

  it('reads a map of feature to number or to {mean, std}, also under a wrapper', () => {
    assert.deepEqual(featureImportances({ featureImportance: { x: 0.2, y: 0.3 } }), [
      { feature: 'y', importance: 0.3 },
      { feature: 'x', importance: 0.2 },
    ]);
    assert.deepEqual(
      featureImportances({
        featureImportance: { metric: 'accuracy', features: { x: { mean: 0.4, std: 0.1 } } },
      }),
      [{ feature: 'x', importance: 0.4, std: 0.1 }],
    );
  });

  it('gives nothing for a report without importances or with an unknown shape', () => {
    assert.deepEqual(featureImportances({}), []);
    assert.deepEqual(featureImportances(undefined), []);
    assert.deepEqual(featureImportances({ featureImportance: 'n/a' }), []);
  });
});

describe('metricRows and confusionMatrixOf', () => {
  const report = {
    classes: ['no', 'yes'],
    training: {
      rows: 8,
      accuracy: 1,
      loss: 0.1,
      confusionMatrix: [
        [4, 0],
        [0, 4],
      ],
      perClass: [],
    },
    validation: {
      rows: 2,
      accuracy: 0.5,
      loss: 0.7,
      zeta: 3,
      confusionMatrix: [
        [1, 0],
        [1, 0],
      ],
    },
  };

  it('puts the known metrics first, then the others by name, skipping row counts and tables', () => {
    assert.deepEqual(metricRows(report), [
      ['loss', 0.1, 0.7, undefined],
      ['accuracy', 1, 0.5, undefined],
      ['zeta', undefined, 3, undefined],
    ]);
    assert.deepEqual(metricRows({ validation: { r2: 0.9 }, test: { r2: 0.8, rows: 20 } }), [
      ['r2', undefined, 0.9, 0.8],
    ]);
  });

  it("prefers the validation set's confusion matrix, with the class names", () => {
    assert.deepEqual(confusionMatrixOf(report), {
      set: 'validation',
      classes: ['no', 'yes'],
      matrix: [
        [1, 0],
        [1, 0],
      ],
    });
    assert.equal(confusionMatrixOf({ training: { mae: 1 } }), undefined);
  });
});

describe('formatNumber', () => {
  it('shows 4 significant digits, integers as they are, and extremes in exponent form', () => {
    assert.equal(formatNumber(0.123456), '0.1235');
    assert.equal(formatNumber(12), '12');
    assert.equal(formatNumber(0.00001234), '1.234e-5');
    assert.equal(formatNumber(undefined), '–');
    assert.equal(formatNumber(Number.POSITIVE_INFINITY), '∞');
  });
});

describe('browser bundle', () => {
  for (const entry of ['client/index.ts', 'local/dashboard/app.ts']) {
    it(`${entry} bundles for the browser platform, with no Node built-ins`, async () => {
      const result = await build({
        entryPoints: [new URL(`../../${entry}`, import.meta.url).pathname],
        bundle: true,
        platform: 'browser',
        format: 'esm',
        write: false,
        logLevel: 'silent',
      });
      const code = result.outputFiles[0]?.text ?? '';
      assert.ok(code.length > 1000);
      assert.doesNotMatch(code, /from ["']node:|require\(["']node:/);
      assert.doesNotMatch(code, /\bzod\b/, 'core/ is imported as types only');
    });
  }
});

describe('descent result of a private job', () => {
  it('says the (ε, δ) guarantee, σ, clipping, q and steps in one line', async () => {
    const { resultLines } = await import('../../client/cli/summary.ts');
    const { Output } = await import('../../client/cli/output.ts');
    const out = new Output({ stdout: process.stdout, stderr: process.stderr } as never, {
      json: false,
      env: { NO_COLOR: '1' },
    });
    const lines = resultLines(out, undefined, {
      id: 'J1',
      status: 'SUCCEEDED',
      artifacts: {},
      report: {
        epochsRun: 60,
        privacy: {
          epsilon: 2.99994,
          delta: 1e-5,
          noiseMultiplier: 4.4973,
          clipNorm: 1,
          sampleRate: 16 / 120,
          steps: 480,
          targetEpsilon: 3,
          accountant: 'rdp',
        },
      },
    } as never);
    const line = lines.find((l) => l.startsWith('Privacy'));
    assert.match(
      line ?? '',
      /\(ε = 3(\.0+)?, δ = 0\.00001\)-differentially private \(target ε 3\): σ = 4\.497/,
    );
    assert.match(line ?? '', /480 steps \(rdp accountant\)/);
  });
});

describe('descent result of a job whose report was too large for one answer', () => {
  it('names the parts left out and where to get them', async () => {
    const { resultLines } = await import('../../client/cli/summary.ts');
    const { Output } = await import('../../client/cli/output.ts');
    const out = new Output({ stdout: process.stdout, stderr: process.stderr } as never, {
      json: false,
      env: { NO_COLOR: '1' },
    });
    const lines = resultLines(out, undefined, {
      id: 'J2',
      status: 'SUCCEEDED',
      artifacts: {},
      report: { epochsRun: 3 },
      reportOmitted: ['validation.confusionMatrix'],
    } as never);
    assert.ok(
      lines.includes(
        'Not shown  validation.confusionMatrix (too large for one answer; report.json has them: descent download J2)',
      ),
      lines.join('\n'),
    );
  });
});
