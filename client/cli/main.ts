/**
 * The `descent` command line. `main` parses the arguments, runs one command and returns the exit
 * code: 0 success, 1 the job failed (or was cancelled), 2 usage error, 3 API, auth or network
 * error. Errors print the API's message, never a stack trace (`DESCENT_DEBUG=1` adds it).
 */
import { parseArgs } from 'node:util';
import pkg from '../../package.json' with { type: 'json' };
import { DescentClient } from '../client.ts';
import { type Env, type ResolvedConfig, resolveConfig } from '../config.ts';
import { DescentApiError, DescentError } from '../errors.ts';
import {
  COMMANDS,
  type Command,
  type Context,
  findCommand,
  JobNotSucceeded,
  UsageError,
} from './commands.ts';
import { Output, type Streams } from './output.ts';
import { DATASET_COMMANDS, PREDICT_COMMANDS } from './predict.ts';
import { SWEEP_COMMANDS, SweepNotSucceeded } from './sweep.ts';

export const EXIT = { ok: 0, jobFailed: 1, usage: 2, error: 3 } as const;

/** Every command: the job commands, then the sweep commands. */
const ALL_COMMANDS: readonly Command[] = [
  ...COMMANDS,
  ...DATASET_COMMANDS,
  ...PREDICT_COMMANDS,
  ...SWEEP_COMMANDS,
];

export interface CliIO extends Streams {
  readonly env: Env;
  readonly cwd: string;
  readonly stdin?: NodeJS.ReadableStream;
}

const GLOBAL_OPTIONS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export function helpText(): string {
  const synopsis = (c: Command) => c.synopsis ?? c.usage;
  const width = Math.max(...ALL_COMMANDS.map((c) => synopsis(c).length));
  return `descent — train models on a descent service from the command line

Usage: descent <command> [options]

Commands:
${ALL_COMMANDS.map((c) => `  ${synopsis(c).padEnd(width)}  ${c.summary}`).join('\n')}

Options for every command:
  --json        machine-readable output on stdout (JSON; \`logs\` prints one JSON object per line)
  -h, --help    help for a command (\`descent jobs\`: the commands of a group)
  --version     the version of descent

Endpoint and token: DESCENT_URL and DESCENT_TOKEN, else \`descent config\`'s file, else the local
stack (http://127.0.0.1:\${DESCENT_PORT:-8080} and the token in \${DESCENT_DATA_DIR:-./.descent}/token).

Exit codes: 0 success, 1 job (or sweep) failed or cancelled, 2 usage error, 3 API, auth or network error.
`;
}

function commandHelp(command: Command): string {
  return `Usage: descent ${command.usage}\n\n${command.summary}\n${command.help ? `\n${command.help}\n` : ''}`;
}

/** `descent jobs`: the commands of a group (`jobs list`, `jobs show`…). */
function groupHelp(group: string): string | undefined {
  const members = ALL_COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  if (members.length === 0) return undefined;
  const synopsis = (c: Command) => c.synopsis ?? c.usage;
  const width = Math.max(...members.map((c) => synopsis(c).length));
  return `Usage: descent ${group} <command> [options]

Commands:
${members.map((c) => `  ${synopsis(c).padEnd(width)}  ${c.summary}`).join('\n')}

Help on one: descent ${group} <command> --help
`;
}

export async function main(argv: readonly string[], io: CliIO): Promise<number> {
  const wantsJson = argv.includes('--json');
  const out = new Output(io, { json: wantsJson, env: io.env });
  if (argv[0] === '--version' || argv[0] === '-V' || argv[0] === 'version') {
    io.stdout.write(wantsJson ? `${JSON.stringify({ version: pkg.version })}\n` : `descent ${pkg.version}\n`);
    return EXIT.ok;
  }
  const words = argv.filter((a) => !a.startsWith('-'));
  if (argv.length === 0 || (words.length === 0 && (argv.includes('--help') || argv.includes('-h')))) {
    (argv.length === 0 ? io.stderr : io.stdout).write(helpText());
    return argv.length === 0 ? EXIT.usage : EXIT.ok;
  }
  if (words[0] === 'help') {
    const command = words.length > 1 ? findCommand(words.slice(1), ALL_COMMANDS) : undefined;
    const group = words.length === 2 && !command ? groupHelp(words[1] as string) : undefined;
    io.stdout.write(command ? commandHelp(command.command) : (group ?? helpText()));
    return EXIT.ok;
  }

  const found = findCommand(words, ALL_COMMANDS);
  const group =
    words[0] !== undefined && !found?.command.name.includes(' ') ? groupHelp(words[0]) : undefined;
  if (group && (!found || words.length === 1)) {
    // `descent jobs` (or `descent jobs --help`): the group's commands.
    const sub = words[1];
    if (sub !== undefined) {
      out.note(`descent: no command "${words[0]} ${sub}".`);
      io.stderr.write(group);
      return EXIT.usage;
    }
    io.stdout.write(group);
    return EXIT.ok;
  }
  if (!found) {
    out.note(
      `descent: unknown command "${words.slice(0, 2).join(' ')}"; run \`descent --help\` for the list.`,
    );
    return EXIT.usage;
  }
  const { command } = found;
  // The command's own words are removed; everything else is its options and positionals.
  const rest = [...argv];
  for (const word of command.name.split(' ')) rest.splice(rest.indexOf(word), 1);

  let context: Context | undefined;
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: { ...GLOBAL_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      io.stdout.write(commandHelp(command));
      return EXIT.ok;
    }
    const max = command.required.length + (command.optional?.length ?? 0);
    const missing = command.required[positionals.length];
    if (missing) throw new UsageError(`missing ${missing}`);
    if (positionals.length > max && !command.variadic)
      throw new UsageError(`unexpected argument "${positionals[max]}"`);
    const config = await resolveConfig({ env: io.env, cwd: io.cwd }).catch(
      (error: unknown): ResolvedConfig => {
        // A broken config file must not stop `descent config --reset` from removing it.
        if (command.name === 'config' && (values as { reset?: boolean }).reset) {
          return { url: '', urlSource: 'none', tokenSource: 'none', configFile: '' };
        }
        throw error;
      },
    );
    const client = new DescentClient({
      baseUrl: config.url,
      ...(config.token ? { token: config.token } : {}),
    });
    context = { io, out, config, client };
    return await command.run(context, values as Record<string, string | boolean | undefined>, positionals);
  } catch (error) {
    out.clearLive();
    return report(out, io, error, command, context);
  }
}

function report(out: Output, io: CliIO, error: unknown, command: Command, context?: Context): number {
  const code = (error as { code?: unknown })?.code;
  if (error instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
    out.note(
      `descent ${command.name}: ${(error as Error).message.replace(/\. To specify a positional.*$/s, '')}`,
    );
    out.note(`Usage: descent ${command.usage}  (descent ${command.name} --help)`);
    return EXIT.usage;
  }
  if (error instanceof JobNotSucceeded || error instanceof SweepNotSucceeded) {
    if (out.json) io.stderr.write(`${JSON.stringify({ error: error.toJSON() })}\n`);
    else out.note(out.paintErr(error.message, 'red'));
    return EXIT.jobFailed;
  }
  if (error instanceof DescentError) {
    const hint = hintFor(error, context);
    if (out.json) {
      const body =
        error instanceof DescentApiError ? error.toJSON() : { code: error.code, message: error.message };
      io.stderr.write(`${JSON.stringify({ error: { ...body, ...(hint ? { hint } : {}) } })}\n`);
      return EXIT.error;
    }
    out.note(`${out.paintErr('descent: error:', 'red')} ${error.message} [${error.code}]`);
    const problems = (error as DescentApiError).details as
      | { problems?: { path: string; message: string }[] }
      | undefined;
    for (const p of problems?.problems ?? []) out.note(`  - ${p.path ? `${p.path}: ` : ''}${p.message}`);
    if (error instanceof DescentApiError && error.status >= 500 && error.requestId)
      out.note(`Request id: ${error.requestId}`);
    if (hint) out.note(hint);
    return EXIT.error;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (out.json) io.stderr.write(`${JSON.stringify({ error: { code: 'INTERNAL', message } })}\n`);
  else out.note(`descent: unexpected error: ${message}`);
  if (io.env.DESCENT_DEBUG) out.note(String((error as Error)?.stack ?? error));
  return EXIT.error;
}

/** What to do about the usual first-run errors. */
function hintFor(error: DescentError, context?: Context): string | undefined {
  const config = context?.config;
  if (!config) return undefined;
  if (error.code === 'NETWORK_ERROR' && config.urlSource === 'local stack') {
    return `No descent service at ${config.url}: start one with \`npm start\`, or set DESCENT_URL.`;
  }
  if (error instanceof DescentApiError && error.status === 401) {
    if (config.tokenSource === 'none') {
      return 'No token found: set DESCENT_TOKEN or run `descent config --token TOKEN` (or configure Cognito credentials).';
    }
    return `The token from ${config.tokenSource} was refused; check it with \`descent config\`.`;
  }
  return undefined;
}
