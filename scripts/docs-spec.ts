/**
 * `npm run docs:spec`: rewrites the generated field tables of docs/job-spec.md and docs/sweeps.md from
 * the zod schemas (scripts/spec-tables.ts), then lets Biome format the docs (it pads the tables, as
 * `npm run lint` expects). `--check` changes nothing and exits 1 when a doc is out of date, as
 * test/unit/docs-job-spec.test.ts does.
 */
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  extractRegion,
  GENERATED_DOCS,
  normalizeTables,
  renderTables,
  replaceRegion,
} from './spec-tables.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const check = process.argv.includes('--check');
const stale: string[] = [];
for (const { file, options } of GENERATED_DOCS) {
  const doc = await readFile(`${root}${file}`, 'utf8');
  const tables = renderTables(options);
  if (normalizeTables(extractRegion(doc, options.region)) === normalizeTables(tables)) continue;
  stale.push(file);
  if (check) process.stdout.write(`${file}: the ${options.region} tables are out of date\n`);
  else await writeFile(`${root}${file}`, replaceRegion(doc, options.region, tables));
}

if (check) {
  if (stale.length) {
    process.stdout.write('Run `npm run docs:spec` to update them.\n');
    process.exitCode = 1;
  }
} else if (stale.length) {
  const biome = spawnSync(`${root}node_modules/.bin/biome`, ['format', '--write', ...stale], {
    cwd: root,
    stdio: 'inherit',
  });
  if (biome.status !== 0) {
    process.stderr.write('Biome could not format the docs: run `npm run format`.\n');
    process.exitCode = 1;
  }
  for (const file of stale) process.stdout.write(`${file}: tables rewritten\n`);
} else {
  process.stdout.write('The generated tables are up to date.\n');
}
