/**
 * Bounding user-derived text: a cell, a column name or a label can be megabytes long, and whatever
 * quotes it (an error message, an event, a log line, a response's details) would be as long. Every
 * such sink passes its text through `bounded`, which keeps the start and says how much it cut.
 */

/** The most characters of text an error message, an event or a warning keeps. */
export const MAX_MESSAGE_CHARS = 2000;
/** The most characters one string field of a log line keeps (a stack trace fits). */
export const MAX_LOG_FIELD_CHARS = 4000;
/** The most items an array in an error's details or a log field keeps. */
export const MAX_DETAIL_ITEMS = 100;

/** `text` cut to `max` characters with a marker saying how many were cut; unchanged when it fits. */
export function bounded(text: string, max = MAX_MESSAGE_CHARS): string {
  if (text.length <= max) return text;
  let end = max;
  // Never split a surrogate pair: the cut text stays valid UTF-16.
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}… [truncated: ${text.length - end} more characters]`;
}

/**
 * A JSON-like value with every string bounded to `maxChars` and every array to `MAX_DETAIL_ITEMS`
 * items (a marker string stands for the rest), down to a few levels: for error details and log fields.
 */
export function boundedValue(value: unknown, maxChars = MAX_MESSAGE_CHARS, depth = 0): unknown {
  if (typeof value === 'string') return bounded(value, maxChars);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= 6) return '[nested too deep]';
  if (Array.isArray(value)) {
    const kept = value.slice(0, MAX_DETAIL_ITEMS).map((v) => boundedValue(v, maxChars, depth + 1));
    if (value.length > MAX_DETAIL_ITEMS) kept.push(`… [${value.length - MAX_DETAIL_ITEMS} more items]`);
    return kept;
  }
  if (value instanceof Error) return bounded(String(value.stack ?? value), maxChars);
  const entries = Object.entries(value as Record<string, unknown>);
  const out: Record<string, unknown> = {};
  for (const [key, v] of entries.slice(0, MAX_DETAIL_ITEMS))
    out[bounded(key, 200)] = boundedValue(v, maxChars, depth + 1);
  if (entries.length > MAX_DETAIL_ITEMS) out['…'] = `${entries.length - MAX_DETAIL_ITEMS} more fields`;
  return out;
}

/** Bytes of `value` as UTF-8 JSON (for byte budgets of responses). */
export const jsonBytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value) ?? '');

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * A JSON object cut to `budget` bytes by leaving out its largest parts, largest first: a top-level
 * field, or the field of an object field that makes up most of it (a report's confusion matrix
 * rather than the whole evaluation). Returns the paths left out (`validation.confusionMatrix`);
 * the value is unchanged when it fits.
 */
export function withinBytes(
  value: Record<string, unknown>,
  budget: number,
): { value: Record<string, unknown>; omitted: string[] } {
  if (jsonBytes(value) <= budget) return { value, omitted: [] };
  const out = structuredClone(value);
  const omitted: string[] = [];
  while (jsonBytes(out) > budget) {
    let largest: { path: string[]; size: number } | undefined;
    for (const [key, field] of Object.entries(out)) {
      let candidate = { path: [key], size: jsonBytes(field) };
      if (isPlainObject(field)) {
        for (const [sub, part] of Object.entries(field)) {
          const size = jsonBytes(part);
          // The part that makes up most of its field goes alone; many small parts go with the field.
          if (size * 2 >= candidate.size && candidate.path.length === 1)
            candidate = { path: [key, sub], size };
        }
      }
      if (!largest || candidate.size > largest.size) largest = candidate;
    }
    if (!largest) break;
    const [key, sub] = largest.path as [string, string | undefined];
    if (sub === undefined) delete out[key];
    else delete (out[key] as Record<string, unknown>)[sub];
    omitted.push(largest.path.join('.'));
  }
  return { value: out, omitted };
}
