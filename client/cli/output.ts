/** Terminal output for the CLI: colour and progress bars only on a TTY, plain text or JSON elsewhere. */
import type { Writable } from 'node:stream';
import { formatNumber } from '../report.ts';
import type { JobStatus } from '../types.ts';

export interface Streams {
  readonly stdout: Writable & { isTTY?: boolean; columns?: number };
  readonly stderr: Writable & { isTTY?: boolean; columns?: number };
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, cyan: 36, dim: 2, bold: 1 } as const;
export type Colour = keyof typeof CODES;

const STATUS_COLOURS: Record<string, Colour> = {
  SUCCEEDED: 'green',
  FAILED: 'red',
  CANCELLED: 'yellow',
  CANCELLING: 'yellow',
  RUNNING: 'cyan',
  QUEUED: 'dim',
  STOPPED_EARLY: 'yellow',
  PENDING: 'dim',
};

export class Output {
  readonly json: boolean;
  /** Colour on stdout (a TTY, and `NO_COLOR` unset). */
  readonly colour: boolean;
  /** Colour on stderr (a TTY, and `NO_COLOR` unset). */
  readonly colourErr: boolean;
  /** Progress bars and live lines on stderr (a TTY, not `--json`). */
  readonly live: boolean;
  readonly #streams: Streams;
  #liveLine = false;
  /** Lines of the live block on stderr (1 for a live line). */
  #liveLines = 0;

  constructor(streams: Streams, options: { json: boolean; env: Record<string, string | undefined> }) {
    this.#streams = streams;
    this.json = options.json;
    const noColour = options.env.NO_COLOR !== undefined && options.env.NO_COLOR !== '';
    this.colour = !!streams.stdout.isTTY && !noColour && options.env.TERM !== 'dumb';
    this.colourErr = !!streams.stderr.isTTY && !noColour && options.env.TERM !== 'dumb';
    this.live = !!streams.stderr.isTTY && !options.json && options.env.TERM !== 'dumb';
  }

  paint(text: string, colour: Colour): string {
    return this.colour ? `\x1b[${CODES[colour]}m${text}\x1b[0m` : text;
  }

  /** Like `paint`, for text written to stderr. */
  paintErr(text: string, colour: Colour): string {
    return this.colourErr ? `\x1b[${CODES[colour]}m${text}\x1b[0m` : text;
  }

  /** A job status in its colour, for stdout. */
  status(status: JobStatus | string): string {
    const c = STATUS_COLOURS[status];
    return c ? this.paint(status, c) : status;
  }

  /** A job status in its colour, for stderr. */
  statusErr(status: JobStatus | string): string {
    const c = STATUS_COLOURS[status];
    return c ? this.paintErr(status, c) : status;
  }

  /** A line of the command's result on stdout. */
  line(text = ''): void {
    this.clearLive();
    this.#streams.stdout.write(`${text}\n`);
  }

  /** A JSON document on stdout (`--json`). */
  data(value: unknown): void {
    this.#streams.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** One JSON value per line on stdout (`--json` streams). */
  jsonLine(value: unknown): void {
    this.#streams.stdout.write(`${JSON.stringify(value)}\n`);
  }

  /** A message for people on stderr (progress notes, hints, errors). */
  note(text: string): void {
    this.clearLive();
    this.#streams.stderr.write(`${text}\n`);
  }

  /** Rewrites the live line on stderr; does nothing unless stderr is a TTY. */
  setLive(text: string): void {
    if (!this.live) return;
    const width = Math.max(20, (this.#streams.stderr.columns || 80) - 1);
    // Too wide: drop the colour and cut, so that the line never wraps (a wrapped line cannot be redrawn).
    const fitted = visible(text).length > width ? visible(text).slice(0, width) : text;
    if (this.#liveLines > 1) this.clearLive();
    this.#streams.stderr.write(`\r\x1b[2K${fitted}`);
    this.#liveLine = true;
    this.#liveLines = 1;
  }

  /** Redraws a block of live lines on stderr (a live table); does nothing unless stderr is a TTY. */
  setLiveBlock(lines: string[]): void {
    if (!this.live) return;
    const width = Math.max(20, (this.#streams.stderr.columns || 80) - 1);
    const rows = Math.max(3, (this.#streams.stderr as { rows?: number }).rows || 24) - 1;
    const fitted = lines
      .slice(0, rows)
      .map((l) => (visible(l).length > width ? visible(l).slice(0, width) : l));
    this.clearLive();
    this.#streams.stderr.write(fitted.join('\n'));
    this.#liveLine = fitted.length > 0;
    this.#liveLines = fitted.length;
  }

  clearLive(): void {
    if (!this.#liveLine) return;
    // A block: back to its first line, then clear to the end of the screen.
    this.#streams.stderr.write(this.#liveLines > 1 ? `\r\x1b[${this.#liveLines - 1}A\x1b[J` : '\r\x1b[2K');
    this.#liveLine = false;
    this.#liveLines = 0;
  }

  /** Table lines: columns left-aligned, numeric ones (and those in `rightAligned`) right-aligned. */
  table(headers: string[], rows: (string | number | undefined)[][], rightAligned: number[] = []): string[] {
    const cells = rows.map((row) => row.map((v) => (typeof v === 'number' ? formatNumber(v) : (v ?? '–'))));
    const width = (i: number) =>
      Math.max(visible(headers[i] ?? '').length, ...cells.map((row) => visible(row[i] ?? '').length));
    const widths = headers.map((_, i) => width(i));
    const numeric = new Set(rightAligned);
    rows.forEach((row) => {
      row.forEach((v, i) => {
        if (typeof v === 'number') numeric.add(i);
      });
    });
    const pad = (text: string, i: number) => {
      const gap = ' '.repeat(Math.max(0, (widths[i] ?? 0) - visible(text).length));
      return numeric.has(i) ? gap + text : text + gap;
    };
    const render = (row: string[]) =>
      row
        .map((v, i) => pad(v, i))
        .join('  ')
        .trimEnd();
    return [this.paint(render(headers), 'bold'), ...cells.map(render)];
  }
}

/** Text without ANSI colour codes, for measuring. */
const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
const visible = (text: string): string => text.replace(ANSI_COLOUR, '');

/** `█████░░░░░` with `width` cells, `fraction` of them filled. */
export function bar(fraction: number, width = 24): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.floor(f * width);
  return `${'█'.repeat(full)}${'░'.repeat(width - full)}`;
}

/** Seconds as `m:ss` or `h:mm:ss`. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** Bytes for people: `512 B`, `4.5 kB`, `12.3 MB`. */
export function bytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 'B';
  for (const u of units) {
    if (value < 1000) break;
    value /= 1000;
    unit = u;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${unit}`;
}
