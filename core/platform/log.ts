/**
 * Structured JSON logs, one line per entry, with context keys (job id, tenant) appended. The same
 * lines are CloudWatch Logs entries in AWS and the worker's output locally.
 */
import { bounded, boundedValue, MAX_LOG_FIELD_CHARS } from './text.ts';

type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(
  base: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  minLevel: Level = (process.env.DESCENT_LOG_LEVEL as Level | undefined) ?? 'info',
): Logger {
  const emit = (level: Level, message: string, fields?: Record<string, unknown>) => {
    if ((ORDER[level] ?? 20) < (ORDER[minLevel] ?? 20)) return;
    // Fields quote user input (a cell in an error, a request body): each string is bounded.
    const bounds = (v: unknown) => boundedValue(v, MAX_LOG_FIELD_CHARS);
    const extra = fields ? (bounds(fields) as Record<string, unknown>) : {};
    write(
      JSON.stringify({
        time: new Date().toISOString(),
        level,
        message: bounded(message, MAX_LOG_FIELD_CHARS),
        ...base,
        ...extra,
      }),
    );
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ ...base, ...fields }, write, minLevel),
  };
}

export const log = createLogger();
