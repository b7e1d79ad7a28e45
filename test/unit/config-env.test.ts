/** The environment readers every setting goes through: fallback when unset, bounds, and messages that name the variable. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ENV, intEnv, numberEnv } from '../../core/platform/config.ts';

describe('numeric environment variables', () => {
  const name = ENV.quotaActiveJobs;
  const bounds = { min: 1, max: 100 };

  it('fall back when unset or empty, and read a value within bounds', () => {
    assert.equal(intEnv(name, 20, bounds, {}), 20);
    assert.equal(intEnv(name, 20, bounds, { [name]: '' }), 20);
    assert.equal(intEnv(name, 20, bounds, { [name]: '7' }), 7);
    assert.equal(numberEnv(name, 2, bounds, { [name]: '2.5' }), 2.5);
  });

  it('refuse a malformed or out-of-range value with a message that names the variable and the range', () => {
    assert.throws(
      () => intEnv(name, 20, bounds, { [name]: '2.5' }),
      new RegExp(`^Error: Environment variable ${name} must be an integer from 1 to 100, got "2\\.5"\\.$`),
    );
    assert.throws(
      () => intEnv(name, 20, bounds, { [name]: '101' }),
      /must be an integer from 1 to 100, got "101"/,
    );
    assert.throws(
      () => numberEnv(name, 2, bounds, { [name]: 'NaN' }),
      /must be a number from 1 to 100, got "NaN"/,
    );
    assert.throws(
      () => numberEnv(name, 2, bounds, { [name]: '0.5' }),
      /must be a number from 1 to 100, got "0\.5"/,
    );
  });
});
