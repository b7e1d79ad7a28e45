/** The gradient check's results as markdown tables: case × backend → max relative error. */
import type { BackendAvailability } from '../available-backends.ts';
import { TOLERANCE } from './finite-differences.ts';
import type { CaseResult } from './harness.ts';
import type { OptimizerResult } from './optimizers.ts';

const exp = (v: number) => (Number.isFinite(v) ? v.toExponential(1) : String(v));

function cell(
  backend: BackendAvailability,
  pass: boolean | undefined,
  error: number | undefined,
  failure?: string,
) {
  if (!backend.available) return 'skipped¹';
  if (pass === undefined || error === undefined) return 'n/a'; // the op does not exist there (see its case)
  if (failure) return `**FAIL** (threw: ${failure.replace(/\|/g, '\\|').slice(0, 80)})`;
  return pass ? exp(error) : `**FAIL ${exp(error)}**`;
}

export function gradientTable(results: CaseResult[], backends: BackendAvailability[]): string {
  const header = `| layer | option | ${backends.map((b) => b.name).join(' | ')} | fd bound |`;
  const rule = `| --- | --- | ${backends.map(() => '---:').join(' | ')} | ---: |`;
  const rows = results.map((r) => {
    const slash = r.id.indexOf('/');
    const [layer, option] = slash < 0 ? [r.id, ''] : [r.id.slice(0, slash), r.id.slice(slash + 1)];
    const cells = backends.map((b) => {
      const x = r.results.find((y) => y.backend === b.name);
      return cell(b, x?.pass, x?.error, x?.failure);
    });
    const fd = Math.max(0, ...r.results.map((x) => x.fdError));
    return `| ${layer} | ${option} | ${cells.join(' | ')} | ${exp(fd)} |`;
  });
  return [header, rule, ...rows].join('\n');
}

export function optimizerTable(results: OptimizerResult[], backends: BackendAvailability[]): string {
  const ids = [...new Set(results.map((r) => r.id))];
  const header = `| optimizer | ${backends.map((b) => b.name).join(' | ')} |`;
  const rule = `| --- | ${backends.map(() => '---:').join(' | ')} |`;
  const rows = ids.map((id) => {
    const cells = backends.map((b) => {
      const x = results.find((y) => y.id === id && y.backend === b.name);
      return cell(b, x?.pass, x?.error, x?.nan ? 'NaN weights' : undefined);
    });
    return `| ${id} | ${cells.join(' | ')} |`;
  });
  return [header, rule, ...rows].join('\n');
}

export function footnotes(backends: BackendAvailability[]): string {
  const skipped = backends.filter((b) => !b.available).map((b) => `${b.name}: ${b.reason}`);
  return [
    `Cells: max over the input and every trainable weight of max|g_tfjs − g_fd| / max|g_fd| (optimizers: of the weights after the steps, relative to how far they moved). Pass: every element within ${TOLERANCE.toExponential(2)} (2^10·ε32) of its tensor's scale plus its finite-difference error bound ("fd bound", relative).`,
    ...(skipped.length ? [`¹ Not available on this machine — ${skipped.join('; ')}`] : []),
  ].join('\n\n');
}
