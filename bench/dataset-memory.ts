/**
 * What parsing costs in time and memory (the trainer streams the file; the table keeps 8 bytes per
 * numeric cell):
 *
 *   npx node --expose-gc bench/dataset-memory.ts [ROWS] [COLUMNS]      a numeric CSV (default 1,000,000 × 10)
 *   npx node --expose-gc bench/dataset-memory.ts --long-line MB [csv|jsonl] [MAX_LINE_CHARS]
 *                                                                        one line of MB mebibytes
 *
 * The long-line case raises the line limit to 200 MiB by default so the whole line is parsed (pass
 * 4194304, the default limit, to see it refused after 4 MiB). Peak RSS is sampled every 5 ms.
 */
import { parseTableStream } from '../core/datasets/tabular.ts';

const encoder = new TextEncoder();
const mb = (n: number) => (n / 1024 / 1024).toFixed(0);
let peak = 0;
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss);
}, 5);

async function* numericCsv(rows: number, columns: number, counter: { bytes: number }) {
  yield encoder.encode(`${Array.from({ length: columns }, (_, c) => `x${c}`).join(',')},label\n`);
  const batch = 10_000;
  for (let start = 0; start < rows; start += batch) {
    let text = '';
    for (let r = start; r < Math.min(rows, start + batch); r++) {
      for (let c = 0; c < columns; c++) text += `${((r * 7919 + c * 104729) % 10007) / 100},`;
      text += `${r % 3}\n`;
    }
    const chunk = encoder.encode(text);
    counter.bytes += chunk.byteLength;
    yield chunk;
  }
}

async function* longLine(mebibytes: number, format: 'csv' | 'jsonl') {
  yield encoder.encode(format === 'csv' ? 'a,label\n' : '{"a":"');
  const chunk = encoder.encode('x'.repeat(1024 * 1024));
  for (let i = 0; i < mebibytes; i++) {
    yield chunk;
    await new Promise((resolve) => setImmediate(resolve));
  }
  yield encoder.encode(format === 'csv' ? ',1\n' : '","label":1}\n');
}

global.gc?.();
const before = process.memoryUsage();
const started = performance.now();
if (process.argv[2] === '--long-line') {
  const size = Number(process.argv[3] ?? 50);
  const format = (process.argv[4] ?? 'csv') as 'csv' | 'jsonl';
  const maxLineChars = Number(process.argv[5] ?? 200 * 2 ** 20);
  let outcome: string;
  try {
    const table = await parseTableStream(longLine(size, format), format, { maxLineChars });
    outcome = `parsed ${table.rowCount} row`;
  } catch (error) {
    outcome = `refused: ${(error as Error).message}`;
  }
  global.gc?.();
  clearInterval(sampler);
  const after = process.memoryUsage();
  console.log(`${format}, one line of ${size} MiB (line limit ${maxLineChars} characters): ${outcome}`);
  console.log(
    `peak RSS +${mb(peak - before.rss)} MiB while parsing; +${mb(after.rss - before.rss)} MiB after (the table held)`,
  );
} else {
  const rows = Number(process.argv[2] ?? 1_000_000);
  const columns = Number(process.argv[3] ?? 10);
  const counter = { bytes: 0 };
  const table = await parseTableStream(numericCsv(rows, columns, counter), 'csv');
  const seconds = (performance.now() - started) / 1000;
  global.gc?.();
  clearInterval(sampler);
  const after = process.memoryUsage();
  console.log(
    `${table.rowCount} rows × ${columns + 1} columns, ${mb(counter.bytes)} MiB of CSV: parsed in ${seconds.toFixed(1)} s (${mb(counter.bytes / seconds)} MiB/s)`,
  );
  console.log(
    `heap + buffers held by the table: ${mb(after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers)} MiB; peak RSS +${mb(peak - before.rss)} MiB; RSS now ${mb(after.rss)} MiB`,
  );
  console.log(`encoded float32 matrix for training: ${mb(table.rowCount * columns * 4)} MiB`);
}
