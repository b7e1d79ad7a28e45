/**
 * `npx node bench/dataset-memory.ts [ROWS] [COLUMNS]`: how long parsing a large CSV takes and what
 * it costs in memory (the trainer streams the file; the table keeps 8 bytes per numeric cell).
 */
import { parseTableStream } from '../core/datasets/tabular.ts';

const rows = Number(process.argv[2] ?? 1_000_000);
const columns = Number(process.argv[3] ?? 10);
const header = `${Array.from({ length: columns }, (_, c) => `x${c}`).join(',')},label\n`;
const encoder = new TextEncoder();
let bytes = 0;
async function* csv() {
  yield encoder.encode(header);
  const batch = 10_000;
  for (let start = 0; start < rows; start += batch) {
    let text = '';
    for (let r = start; r < Math.min(rows, start + batch); r++) {
      for (let c = 0; c < columns; c++) text += `${((r * 7919 + c * 104729) % 10007) / 100},`;
      text += `${r % 3}\n`;
    }
    const chunk = encoder.encode(text);
    bytes += chunk.byteLength;
    yield chunk;
  }
}
global.gc?.();
const before = process.memoryUsage();
const started = performance.now();
const table = await parseTableStream(csv(), 'csv');
const seconds = (performance.now() - started) / 1000;
global.gc?.();
const after = process.memoryUsage();
const mb = (n: number) => (n / 1024 / 1024).toFixed(0);
console.log(
  `${table.rowCount} rows × ${columns + 1} columns, ${mb(bytes)} MiB of CSV: parsed in ${seconds.toFixed(1)} s (${mb(bytes / seconds)} MiB/s)`,
);
console.log(
  `heap + buffers held by the table: ${mb(after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers)} MiB; RSS now ${mb(after.rss)} MiB`,
);
console.log(`encoded float32 matrix for training: ${mb(table.rowCount * columns * 4)} MiB`);
