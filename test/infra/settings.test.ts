/** The deployment settings: cdk.json's `descent:*` context, `-c` overrides, and clear errors. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { contextKey, DEFAULT_SETTINGS, readSettings } from '../../infra/settings.ts';
import { cdkJson } from './synth.ts';

const settingsOf = (context: Record<string, unknown>) => readSettings(new App({ context }).node);

describe('readSettings', () => {
  it('gives every default when the context has no descent:* key', () => {
    assert.deepEqual(settingsOf({}), DEFAULT_SETTINGS);
  });

  it("reads cdk.json's settings, which spell out the documented defaults", () => {
    const keys = Object.keys(cdkJson.context).filter((k) => k.startsWith('descent:'));
    assert.deepEqual(
      keys.sort(),
      Object.keys(DEFAULT_SETTINGS)
        .map((k) => contextKey(k as keyof typeof DEFAULT_SETTINGS))
        .sort(),
    );
    assert.deepEqual(settingsOf(cdkJson.context), DEFAULT_SETTINGS);
  });

  it('parses the strings of `cdk deploy -c key=value` overrides', () => {
    const settings = settingsOf({
      'descent:maxWorkers': '8',
      'descent:spot': 'true',
      'descent:instanceTypes': 'g6.xlarge, g5.2xlarge',
      'descent:instancePrices': '{"g6.xlarge": 0.35}',
      'descent:capacityWaitMinutes': '120',
      'descent:tenants': '["acme","globex"]',
      'descent:alarmEmail': 'ops@example.com',
      'descent:logRetentionDays': '90',
      'descent:maxRows': '20000000',
      'descent:maxLineBytes': '16777216',
    });
    assert.equal(settings.maxRows, 20_000_000);
    assert.equal(settings.maxLineBytes, 16 * 1024 ** 2);
    assert.equal(settings.maxWorkers, 8);
    assert.equal(settings.spot, true);
    assert.deepEqual(settings.instanceTypes, ['g6.xlarge', 'g5.2xlarge']);
    assert.deepEqual(settings.instancePrices, { 'g6.xlarge': 0.35 });
    assert.equal(settings.capacityWaitMinutes, 120);
    assert.deepEqual(settings.tenants, ['acme', 'globex']);
    assert.equal(settings.alarmEmail, 'ops@example.com');
    assert.equal(settings.logRetentionDays, 90);
  });

  it('rejects a malformed value with a message that names the key and what it must be', () => {
    const cases: [string, unknown, RegExp][] = [
      ['descent:maxWorkers', '0', /descent:maxWorkers must be an integer from 1/],
      ['descent:maxWorkers', 2.5, /descent:maxWorkers must be an integer/],
      ['descent:spot', 'yes', /descent:spot must be true or false/],
      ['descent:instanceTypes', [], /descent:instanceTypes must be a non-empty list/],
      ['descent:tenants', ['a', 'a'], /descent:tenants must be a non-empty list of distinct names/],
      ['descent:logRetentionDays', 31, /descent:logRetentionDays must be one of 1, 3, 5/],
      ['descent:alarmEmail', 'ops', /descent:alarmEmail must be an email address/],
      ['descent:natGateways', 3, /descent:natGateways must be an integer from 1 to 2/],
      ['descent:maxColumns', '0', /descent:maxColumns must be an integer from 1/],
      [
        'descent:instanceTypes',
        ['p9.huge'],
        /descent:instanceTypes must be GPU instance types descent knows .*unknown: p9.huge/,
      ],
      ['descent:instanceTypes', ['m5.xlarge'], /unknown: m5.xlarge/],
      [
        'descent:instancePrices',
        { 'x1.large': 1 },
        /descent:instancePrices must be an object of known instance types/,
      ],
      ['descent:instancePrices', { 'g5.xlarge': -1 }, /descent:instancePrices must be/],
      ['descent:capacityWaitMinutes', 5, /descent:capacityWaitMinutes must be an integer from 10 to 1440/],
    ];
    for (const [key, value, message] of cases) {
      assert.throws(() => settingsOf({ [key]: value }), message, `${key} = ${JSON.stringify(value)}`);
    }
  });

  it('rejects an unknown descent:* key (a typo would otherwise be ignored)', () => {
    assert.throws(() => settingsOf({ 'descent:maxWorker': 8 }), /Unknown context descent:maxWorker/);
  });
});
