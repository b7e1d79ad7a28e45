/**
 * The gradient check keeps up with the job spec: a layer type, layer option, loss or optimizer
 * (or optimizer option) added to the schema fails here until the check covers it. Read from the
 * zod schemas themselves, not from a list that could drift.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { hiddenLayer, LOSSES, optimizer } from '../../core/jobs/job-spec.ts';
import { GRADIENT_CASES } from '../helpers/gradcheck/cases.ts';
import type { ModelCase } from '../helpers/gradcheck/harness.ts';
import { OPTIMIZER_CASES } from '../helpers/gradcheck/optimizers.ts';

/** Options that do not change the function being differentiated, with why. */
const NOT_GRADIENT_RELEVANT: Record<string, string> = {
  kernelInitializer: 'picks starting values; the check sets every weight itself',
  biasInitializer: 'picks starting values; the check sets every weight itself',
  recurrentInitializer: 'picks starting values; the check sets every weight itself',
  embeddingsInitializer: 'picks starting values; the check sets every weight itself',
};

/** Enum options whose every value need only be checked on one layer type (the same functions apply). */
const ONCE_ACROSS_LAYERS: Record<string, string> = {
  activation: 'every activation is checked on dense; other layers apply the same functions',
  recurrentActivation: 'every activation is checked on dense; lstm/gru apply the same functions',
};

const unwrap = (t: unknown): z.ZodType => {
  let s = t as z.ZodType;
  while (s instanceof z.ZodDefault || s instanceof z.ZodOptional || s instanceof z.ZodPrefault) {
    s = s.unwrap() as z.ZodType;
  }
  return s;
};
const literalOf = (shape: Record<string, unknown>) => (unwrap(shape.type) as z.ZodLiteral<string>).value;

type Entry = { explicit: Record<string, unknown>; parsed: Record<string, unknown> };
const modelCases = GRADIENT_CASES.filter((c): c is ModelCase => c.kind === 'model');
const layersOf = (type: string): Entry[] =>
  modelCases.flatMap((c) =>
    c.layers
      .filter((l) => l.type === type)
      .map((l) => ({
        explicit: l as Record<string, unknown>,
        parsed: hiddenLayer.parse(l) as Record<string, unknown>,
      })),
  );

describe('the gradient check covers everything the job spec allows', () => {
  const variants = hiddenLayer.options.map((o) => o.shape as Record<string, unknown>);

  it('every layer type of the schema has gradient-check cases', () => {
    const missing = variants.map(literalOf).filter((type) => layersOf(type).length === 0);
    assert.deepEqual(missing, [], 'layer types with no gradient-check case');
  });

  it('every option of every layer type is set by some case (or is declared not gradient-relevant)', () => {
    const missing: string[] = [];
    for (const shape of variants) {
      const type = literalOf(shape);
      const entries = layersOf(type);
      for (const [key, schema] of Object.entries(shape)) {
        if (key === 'type' || key in NOT_GRADIENT_RELEVANT) continue;
        if (!entries.some((e) => key in e.explicit)) missing.push(`${type}.${key}`);
        const s = unwrap(schema);
        const values = entries.map((e) => e.parsed[key]);
        if (s instanceof z.ZodBoolean && !(values.includes(true) && values.includes(false))) {
          missing.push(`${type}.${key}: both true and false`);
        }
        if (s instanceof z.ZodUnion) {
          const forms = new Set(
            values.filter((v) => v !== undefined).map((v) => (Array.isArray(v) ? 'pair' : 'number')),
          );
          if (forms.size < 2) missing.push(`${type}.${key}: both a number and a [h, w] pair`);
        }
        if (s instanceof z.ZodEnum && !(key in ONCE_ACROSS_LAYERS)) {
          for (const v of s.options) if (!values.includes(v)) missing.push(`${type}.${key} = ${String(v)}`);
        }
      }
    }
    assert.deepEqual(missing, [], 'options the gradient check does not exercise');
  });

  it('every activation function is checked on some layer (activation and recurrentActivation share them)', () => {
    const keys = Object.keys(ONCE_ACROSS_LAYERS);
    const seen = new Set<unknown>();
    const options = new Set<unknown>();
    for (const s of variants) {
      for (const key of keys.filter((k) => k in s)) {
        for (const v of (unwrap(s[key]) as z.ZodEnum).options) options.add(v);
        for (const e of layersOf(literalOf(s))) seen.add(e.parsed[key]);
      }
    }
    assert.deepEqual(
      [...options].filter((v) => !seen.has(v)),
      [],
      'activations never checked',
    );
  });

  it('every loss is checked', () => {
    const seen = new Set(modelCases.map((c) => c.loss ?? 'meanSquaredError'));
    assert.deepEqual(
      LOSSES.filter((l) => !seen.has(l)),
      [],
      'losses with no gradient-check case',
    );
  });

  it('every optimizer, and each of its options, is checked against the reference', () => {
    const missing: string[] = [];
    for (const o of optimizer.options) {
      const shape = o.shape as Record<string, unknown>;
      const type = literalOf(shape);
      const cases = OPTIMIZER_CASES.filter((c) => c.spec.type === type);
      if (cases.length === 0) missing.push(type);
      for (const [key, schema] of Object.entries(shape)) {
        if (key === 'type') continue;
        if (!cases.some((c) => key in c.spec)) missing.push(`${type}.${key}`);
        if (unwrap(schema) instanceof z.ZodBoolean) {
          const values = cases.map((c) => (optimizer.parse(c.spec) as Record<string, unknown>)[key]);
          if (!(values.includes(true) && values.includes(false))) missing.push(`${type}.${key}: both values`);
        }
      }
    }
    assert.deepEqual(missing, [], 'optimizers or options with no reference check');
  });
});
