/** Small tables for tests, built through the real parser. */
import { parseTable, type Table } from '../../core/datasets/tabular.ts';

/** A table from column names and rows (null = missing), via JSON Lines. */
export function tableOf(columns: string[], rows: unknown[][]): Promise<Table> {
  const lines = rows.map((row) =>
    JSON.stringify(Object.fromEntries(columns.map((c, i) => [c, row[i] ?? null]))),
  );
  return parseTable(new TextEncoder().encode(`${lines.join('\n')}\n`), 'jsonl');
}

/** A seeded generator for test data. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Two separable blobs: columns a, b, label ('neg' | 'pos'). */
export function blobs(n = 60, seed = 1): Promise<Table> {
  const r = lcg(seed);
  return tableOf(
    ['a', 'b', 'label'],
    Array.from({ length: n }, (_, i) => {
      const c = i % 2;
      return [c * 2 - 1 + (r() - 0.5) * 0.6, c * 2 - 1 + (r() - 0.5) * 0.6, c ? 'pos' : 'neg'];
    }),
  );
}

/** A seeded synthetic regression dataset: y = 3·a − 2·b + 1 + noise. */
export function regressionCsv(rows = 200, seed = 7): string {
  let s = seed;
  const rnd = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  const lines = ['a,b,y'];
  for (let i = 0; i < rows; i++) {
    const a = +(rnd() * 2 - 1).toFixed(4);
    const b = +(rnd() * 2 - 1).toFixed(4);
    lines.push(`${a},${b},${(3 * a - 2 * b + 1 + (rnd() - 0.5) * 0.1).toFixed(4)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** 24 noiseless sequences of 6 steps (column `s`), alternately rising (`up`) and falling (`down`). */
export function upDownSequences(): Promise<Table> {
  return tableOf(
    ['s', 'label'],
    Array.from({ length: 24 }, (_, i) => [
      Array.from({ length: 6 }, (_, t) => (i % 2 ? t : 5 - t) / 5),
      i % 2 ? 'up' : 'down',
    ]),
  );
}
