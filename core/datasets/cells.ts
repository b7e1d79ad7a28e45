/**
 * How a single raw cell reads: decimal numbers, blanks and ISO-8601 dates. Pure (no imports), so that
 * the CSV parser, training, the predict route and the client's model loader read cells the same way.
 */

const DECIMAL = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** Whether a trimmed string is a decimal number as the CSV parser reads one. */
export const isDecimal = (s: string): boolean => DECIMAL.test(s);

/**
 * A copy of `text` that does not keep alive the (large) string it was sliced from: V8 represents a
 * slice as a view of its parent, so a cell cut from a 1 MiB chunk would hold the whole chunk.
 */
export const detach = (text: string): string => (text.length < 13 ? text : `${text} `.slice(0, -1));

/** A CSV field as a cell: decimal numbers become numbers, empty becomes null, anything else stays text. */
export function csvCell(raw: string): string | number | null {
  const s = raw.trim();
  if (s === '') return null;
  return DECIMAL.test(s) ? Number(s) : detach(s);
}

/** `2024-03-01`, `2024-03-01T12:30`, `2024-03-01 12:30:15.250Z`, `2024-03-01T12:30:00+02:00`. */
const ISO_DATE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * Milliseconds since 1970-01-01 UTC of an ISO-8601 date or date-time, or `undefined` when the text is
 * not one (or names no real day, like 2023-02-30). A time without a zone is read as UTC, so the same
 * text gives the same number on every machine.
 */
export function parseIsoDate(text: string): number | undefined {
  const m = ISO_DATE.exec(text.trim());
  if (!m) return undefined;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const [hour, minute, second] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  const ms = Number(`0.${m[7] ?? '0'}`) * 1000;
  let t = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  const check = new Date(Date.UTC(year, month - 1, day));
  if (check.getUTCDate() !== day || check.getUTCMonth() !== month - 1) return undefined;
  const zone = m[8];
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    t -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
  }
  return t;
}

export const MS_PER_DAY = 86_400_000;

/** The numbers a date becomes, in this order. */
export const DATE_PARTS = ['daysSinceEpoch', 'year', 'month', 'dayOfWeek'] as const;
export type DatePart = (typeof DATE_PARTS)[number];

/** A date (ms since the epoch, UTC) as its features: days since 1970-01-01, year, month 1–12, day of week 0 (Sunday)–6. */
export function dateParts(ms: number): [number, number, number, number] {
  const d = new Date(ms);
  return [ms / MS_PER_DAY, d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDay()];
}

/** One CSV line (RFC 4180): fields with a comma, quote or line break are quoted, quotes doubled. */
export function csvLine(values: readonly unknown[]): string {
  return values
    .map((v) => {
      if (v === null || v === undefined) return '';
      const s = Array.isArray(v) ? JSON.stringify(v) : String(v);
      return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
    })
    .join(',');
}
