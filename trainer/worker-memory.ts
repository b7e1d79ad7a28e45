/** The memory a trainer process really has: its cgroup limit (a container's), else the machine's. */
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';

/**
 * The most a parsed table may take: the job's budget, but at most 60% of V8's heap limit (text cells
 * live on the JavaScript heap, and a process past that limit is aborted, not given an error).
 */
export const tableBudgetBytes = (jobBytes: number): number =>
  Math.min(jobBytes, Math.floor(0.6 * getHeapStatistics().heap_size_limit));

export function workerMemoryBytes(): number {
  const constrained = process.constrainedMemory?.() ?? 0;
  // 0, or a huge number, when the process is not constrained.
  return constrained > 0 && constrained < totalmem() ? constrained : totalmem();
}
