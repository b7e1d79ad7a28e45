/**
 * Fault injection for the recovery tests: `DESCENT_FAULT=<point>` makes this process die with SIGKILL
 * at that point (a real crash, not a thrown error), once per `DESCENT_FAULT_ONCE_FILE` when that is
 * set. Never set in production.
 */
import { writeFileSync } from 'node:fs';
import { ENV } from '../core/platform/config.ts';

export function faultPoint(point: string): void {
  if (process.env[ENV.fault] !== point) return;
  const once = process.env.DESCENT_FAULT_ONCE_FILE;
  if (once) {
    try {
      writeFileSync(once, point, { flag: 'wx' }); // only the first process to get here fires
    } catch {
      return;
    }
  }
  process.kill(process.pid, 'SIGKILL');
}
