/**
 * The shape of the code, checked: the domain (core/) imports nothing from the folders around it,
 * benchmarks do not lean on tests, and no function grows past what one reader holds in mind.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The most lines a function of the service may have. */
const MAX_FUNCTION_LINES = 150;

async function filesUnder(top: string): Promise<string[]> {
  const entries = await readdir(join(ROOT, top), { recursive: true });
  return entries.filter((e) => e.endsWith('.ts')).map((e) => join(top, e));
}

/** Relative import specifiers of a file, resolved to paths from the repository root. */
function importsOf(path: string, text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g))
    found.push(relative(ROOT, resolve(ROOT, dirname(path), match[1] as string)));
  return found;
}

/** Every function-like node of a file with its name and length in lines. */
function functionsOf(path: string, text: string): { name: string; lines: number; line: number }[] {
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
  const out: { name: string; lines: number; line: number }[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const named = (node as { name?: ts.Node }).name;
      const parent = node.parent;
      const name = named
        ? named.getText(source)
        : parent && ts.isVariableDeclaration(parent)
          ? parent.name.getText(source)
          : '(anonymous)';
      out.push({ name, lines: end - start + 1, line: start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

describe('architecture', () => {
  it('core/ imports nothing from functions/, trainer/, local/, aws/, client/, infra/, test/ or bench/', async () => {
    const offenders: string[] = [];
    for (const path of await filesUnder('core')) {
      const text = await readFile(join(ROOT, path), 'utf8');
      for (const target of importsOf(path, text))
        if (!target.startsWith('core/') && target !== 'package.json') offenders.push(`${path} → ${target}`);
    }
    assert.deepEqual(offenders, []);
  });

  it('bench/ does not import test/', async () => {
    const offenders: string[] = [];
    for (const path of await filesUnder('bench')) {
      const text = await readFile(join(ROOT, path), 'utf8');
      for (const target of importsOf(path, text))
        if (target.startsWith('test/')) offenders.push(`${path} → ${target}`);
    }
    assert.deepEqual(offenders, []);
  });

  it(`no function of the service is longer than ${MAX_FUNCTION_LINES} lines`, async () => {
    const long: string[] = [];
    for (const top of ['core', 'trainer', 'inference', 'functions', 'aws', 'local']) {
      for (const path of await filesUnder(top)) {
        const text = await readFile(join(ROOT, path), 'utf8');
        for (const f of functionsOf(path, text))
          if (f.lines > MAX_FUNCTION_LINES) long.push(`${path}:${f.line} ${f.name} (${f.lines} lines)`);
      }
    }
    assert.deepEqual(long, []);
  });
});
