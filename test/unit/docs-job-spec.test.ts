/**
 * The field tables of docs/job-spec.md and docs/sweeps.md are what the zod schemas give now: a new
 * field, a changed default or bound, or a field without a description fails here until
 * `npm run docs:spec` rewrites the docs.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { jobSpec, MAX_EPOCHS, trainingSpec } from '../../core/jobs/job-spec.ts';
import { JOB_SPEC_DESCRIPTIONS } from '../../scripts/spec-descriptions.ts';
import {
  beginMarker,
  endMarker,
  extractRegion,
  GENERATED_DOCS,
  normalizeTables,
  renderTables,
  replaceRegion,
} from '../../scripts/spec-tables.ts';

const root = new URL('../../', import.meta.url);
const jobSpecDoc = GENERATED_DOCS.find((d) => d.options.region === 'job-spec');
if (!jobSpecDoc) throw new Error('no job-spec region');

describe('generated spec docs', () => {
  for (const { file, options } of GENERATED_DOCS) {
    it(`${file} holds the ${options.region} tables the schema gives now`, async () => {
      const doc = await readFile(new URL(file, root), 'utf8');

      const generated = renderTables(options);

      // Compared with the table cells trimmed: Biome pads the committed tables' columns.
      assert.equal(
        normalizeTables(extractRegion(doc, options.region)),
        normalizeTables(generated),
        `${file} is out of date with the schema: run \`npm run docs:spec\` and commit the result`,
      );
    });
  }

  it('lists every field path with what it accepts, its default and its description', () => {
    const tables = renderTables(jobSpecDoc.options);

    for (const row of [
      '| `training.epochs` | integer 1–100,000 | `100` |',
      '| `dataset.label` | string (1–256 characters) | **required** |',
      '| `preprocessing.columns.<column>.type` | `numeric` \\| `categorical` \\| `date` | — |',
      '|  | `beta2` | number ≥ 0, < 1 | `0.999` |',
    ]) {
      assert.ok(tables.includes(row), `missing row ${row}`);
    }
  });

  it('changes when a default changes, so a stale doc fails', () => {
    const changed = jobSpec.extend({
      training: trainingSpec.extend({ epochs: z.int().min(1).max(MAX_EPOCHS).default(50) }).prefault({}),
    });

    const tables = renderTables({ ...jobSpecDoc.options, schema: changed });

    assert.ok(tables.includes('| `training.epochs` | integer 1–100,000 | `50` |'));
    assert.notEqual(tables, renderTables(jobSpecDoc.options));
  });

  it('refuses a new field that has no description', () => {
    const grown = jobSpec.extend({ priority: z.int().min(0).max(9).default(5) });

    assert.throws(() => renderTables({ ...jobSpecDoc.options, schema: grown }), /priority: no description/);
  });

  it("takes a field's description from the schema, and refuses a second one in the map", () => {
    const described = jobSpec.extend({ priority: z.int().default(5).describe('Queue order.') });
    const { name: _, ...withoutName } = JOB_SPEC_DESCRIPTIONS;
    const selfDescribed = jobSpec.extend({ name: z.string().optional().describe('Set by the schema.') });

    const tables = renderTables({ ...jobSpecDoc.options, schema: described });

    assert.ok(tables.includes('| `priority` | integer | `5` | Queue order. |'));
    assert.ok(
      renderTables({ ...jobSpecDoc.options, schema: selfDescribed, descriptions: withoutName }).includes(
        'Set by the schema.',
      ),
    );
    assert.throws(
      () => renderTables({ ...jobSpecDoc.options, schema: selfDescribed }),
      /name: the schema describes it/,
    );
  });

  it('refuses a description of a field the schema does not have', () => {
    const descriptions = { ...JOB_SPEC_DESCRIPTIONS, 'training.momentum': 'Gone.' };

    assert.throws(
      () => renderTables({ ...jobSpecDoc.options, descriptions }),
      /training\.momentum: described, but no such field/,
    );
  });

  it('ignores the padding Biome gives table columns, not their content', () => {
    const padded = '| field     | default |\n| --------- | ------: |\n| `epochs`  | `100`   |';

    assert.equal(normalizeTables(padded), '| field | default |\n| --- | --- |\n| `epochs` | `100` |');
    assert.notEqual(
      normalizeTables(padded),
      normalizeTables('| field | default |\n| --- | --- |\n| `epochs` | `50` |'),
    );
  });

  it('replaces only the text between the markers', () => {
    const doc = `# Doc\n\nbefore\n\n${beginMarker('r')}\nold\n${endMarker('r')}\n\nafter\n`;

    const updated = replaceRegion(doc, 'r', 'new');

    assert.equal(updated, `# Doc\n\nbefore\n\n${beginMarker('r')}\n\nnew\n\n${endMarker('r')}\n\nafter\n`);
    assert.equal(extractRegion(updated, 'r'), 'new');
    assert.throws(() => extractRegion('# Doc without markers', 'r'), /no "r" region/);
  });
});
