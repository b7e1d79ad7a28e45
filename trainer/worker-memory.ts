/** The memory a trainer process really has: its cgroup limit (a container's), else the machine's. */
import { totalmem } from 'node:os';

export function workerMemoryBytes(): number {
  const constrained = process.constrainedMemory?.() ?? 0;
  // 0, or a huge number, when the process is not constrained.
  return constrained > 0 && constrained < totalmem() ? constrained : totalmem();
}
