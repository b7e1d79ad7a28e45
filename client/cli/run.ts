/** Runs the CLI in this process: `node client/cli/run.ts <command> …` (the bin shim calls `run`). */
import { main } from './main.ts';

export async function run(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  process.exitCode = await main(argv, {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    stdin: process.stdin,
  });
}

if (import.meta.main) await run();
