/** Runs the CLI in this process: `node client/cli/run.ts <command> …` (the bin shim calls `run`). */
import { main } from './main.ts';

/**
 * A reader that went away (`descent logs JOB | head`) is not an error: stop quietly, as other
 * command-line tools do, instead of printing an EPIPE stack trace.
 */
function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

export async function run(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  quietOnClosedPipe(process.stdout);
  quietOnClosedPipe(process.stderr);
  process.exitCode = await main(argv, {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    stdin: process.stdin,
  });
}

if (import.meta.main) await run();
