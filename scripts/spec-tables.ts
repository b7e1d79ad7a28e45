/**
 * The field tables of docs/job-spec.md and docs/sweeps.md, generated from the zod schemas that
 * validate `POST /jobs` and `POST /sweeps`, so that the docs cannot drift from the code: every field
 * path, what it accepts, its default and its description. `npm run docs:spec` rewrites the marked
 * regions of the docs; test/unit/docs-job-spec.test.ts fails when a region differs from what the
 * schemas give now, or when a field has no description.
 *
 * The schemas are read through `z.toJSONSchema` (the same conversion the OpenAPI document uses), not
 * through zod internals. A description comes from the schema (`.describe()` / `.meta()`) when it has
 * one, else from scripts/spec-descriptions.ts.
 */
import { z } from 'zod';
import { ACTIVATIONS, INITIALIZERS, jobSpec, LOSSES, MONITORS } from '../core/jobs/job-spec.ts';
import { ULID_PATTERN } from '../core/platform/ids.ts';
import { sweepRequest } from '../core/sweeps/sweep-spec.ts';
import { JOB_SPEC_DESCRIPTIONS, SWEEP_DESCRIPTIONS } from './spec-descriptions.ts';

/** The part of JSON Schema (draft 2020-12) that zod emits for these schemas. */
interface Schema {
  type?: string;
  description?: string;
  default?: unknown;
  const?: unknown;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  propertyNames?: Schema;
  items?: Schema | false;
  prefixItems?: Schema[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
}

/** A named list of values, shown once under "Value sets" instead of in every row that takes it. */
export interface ValueSet {
  readonly name: string;
  readonly values: readonly string[];
}

export interface TableOptions {
  /** The region's name in the doc: `<!-- BEGIN GENERATED name … -->`. */
  readonly region: string;
  readonly schema: z.ZodType;
  /** Descriptions by field key (the keys are explained in scripts/spec-descriptions.ts), for fields whose schema has none. */
  readonly descriptions: Readonly<Record<string, string>>;
  /** Fields shown as one row with this text as their type, not expanded (a whole job spec in a sweep). */
  readonly leaves?: Readonly<Record<string, string>>;
  /** The placeholder of a map's key in a field path: `preprocessing.columns` → `column`. */
  readonly mapKeys?: Readonly<Record<string, string>>;
  readonly valueSets?: readonly ValueSet[];
  /** Heading level of the generated sections (`###`). */
  readonly heading?: string;
}

interface Row {
  readonly field: string;
  readonly accepts: string;
  readonly default: string;
  readonly description: string;
}

interface UnionTable {
  readonly path: string;
  readonly variants: { readonly type: string; readonly rows: Row[] }[];
}

interface Section {
  readonly title: string;
  readonly rows: Row[];
  readonly unions: UnionTable[];
}

const fmtNumber = (n: number): string =>
  Number.isInteger(n) && Math.abs(n) >= 10_000 ? n.toLocaleString('en-US') : String(n);

const code = (s: string) => `\`${s}\``;

/** A literal as the spec would hold it: strings bare (as enum values are shown), anything else as JSON. */
const literal = (v: unknown): string => code(typeof v === 'string' ? v : JSON.stringify(v));

const isObject = (s: Schema): boolean => s.type === 'object';
const alternatives = (s: Schema): Schema[] | undefined => s.oneOf ?? s.anyOf;

/** A union of objects told apart by their `type` constant (a layer, an optimizer, a domain). */
function discriminated(s: Schema): Schema[] | undefined {
  const alts = alternatives(s);
  if (!alts || alts.length < 2) return undefined;
  return alts.every((a) => isObject(a) && a.properties?.type?.const !== undefined) ? alts : undefined;
}

/** A map (`z.record`): an object whose values share one schema. */
const mapValue = (s: Schema): Schema | undefined =>
  isObject(s) && !s.properties && typeof s.additionalProperties === 'object'
    ? s.additionalProperties
    : undefined;

const isLeaf = (s: Schema): boolean =>
  !isObject(s) &&
  !alternatives(s)?.some((a) => !isLeaf(a)) &&
  (s.type !== 'array' || (s.items !== undefined && (s.items === false || isLeaf(s.items))));

/**
 * A small object shown in one cell rather than expanded into rows: not a section of its own, at most
 * three fields, all plain values, none with a default (a regularizer, a gradient-clipping rule).
 */
const isInline = (s: Schema): boolean => {
  const props = Object.values(s.properties ?? {});
  return (
    isObject(s) &&
    s.properties !== undefined &&
    props.length <= 3 &&
    props.every((p) => isLeaf(p) && p.default === undefined)
  );
};

/** `z.int()` bounds itself to the safe integers: that is no bound worth showing. */
const bound = (v: number | undefined) =>
  v === undefined || Math.abs(v) >= Number.MAX_SAFE_INTEGER ? undefined : v;

function bounds(schema: Schema, noun: string): string {
  const s = { ...schema, minimum: bound(schema.minimum), maximum: bound(schema.maximum) };
  const lo =
    s.minimum !== undefined
      ? { v: s.minimum, op: '≥' }
      : s.exclusiveMinimum !== undefined
        ? { v: s.exclusiveMinimum, op: '>' }
        : undefined;
  const hi =
    s.maximum !== undefined
      ? { v: s.maximum, op: '≤' }
      : s.exclusiveMaximum !== undefined
        ? { v: s.exclusiveMaximum, op: '<' }
        : undefined;
  if (lo?.op === '≥' && hi?.op === '≤')
    return lo.v < 0
      ? `${noun} from ${fmtNumber(lo.v)} to ${fmtNumber(hi.v)}`
      : `${noun} ${fmtNumber(lo.v)}–${fmtNumber(hi.v)}`;
  const parts = [lo, hi].filter((b) => b !== undefined).map((b) => `${b.op} ${fmtNumber(b.v)}`);
  return parts.length ? `${noun} ${parts.join(', ')}` : noun;
}

function count(min: number | undefined, max: number | undefined, noun: string): string {
  if (min !== undefined && max !== undefined) return `${fmtNumber(min)}–${fmtNumber(max)} ${noun}`;
  if (max !== undefined) return `≤ ${fmtNumber(max)} ${noun}`;
  if (min !== undefined) return `≥ ${fmtNumber(min)} ${noun}`;
  return '';
}

class Renderer {
  readonly options: TableOptions;
  readonly used = new Set<string>();
  readonly missing: string[] = [];
  readonly usedSets = new Set<string>();

  constructor(options: TableOptions) {
    this.options = options;
  }

  /** The description of a field: the schema's own, else the first of `keys` in the map. */
  describe(s: Schema | undefined, keys: string[]): string {
    for (const key of keys) {
      if (key in this.options.descriptions) {
        this.used.add(key);
        if (s?.description) this.missing.push(`${key}: the schema describes it; remove it from the map`);
        return this.options.descriptions[key] as string;
      }
    }
    if (s?.description) return s.description;
    this.missing.push(`${keys.join(' or ')}: no description`);
    return '';
  }

  /** What a value accepts, in words. */
  accepts(s: Schema): string {
    if (s.const !== undefined) return literal(s.const);
    if (s.enum) {
      const set = this.options.valueSets?.find(
        (v) => v.values.length === s.enum?.length && v.values.every((x, i) => x === s.enum?.[i]),
      );
      if (set) {
        this.usedSets.add(set.name);
        return `${/^[aeiou]/.test(set.name) ? 'an' : 'a'} ${set.name} (see [value sets](#value-sets))`;
      }
      return s.enum.map(literal).join(' \\| ');
    }
    const alts = alternatives(s);
    if (alts) return alts.map((a) => this.accepts(a)).join(', or ');
    switch (s.type) {
      case 'string': {
        if (s.pattern === ULID_PATTERN.source) return 'id (ULID)';
        const length = count(s.minLength, s.maxLength, 'characters');
        const pattern = s.pattern ? ` matching ${code(s.pattern)}` : '';
        return `string${length ? ` (${length})` : ''}${pattern}`;
      }
      case 'integer':
        return bounds(s, 'integer');
      case 'number':
        return bounds(s, 'number');
      case 'boolean':
        return 'boolean';
      case 'array': {
        if (s.prefixItems) return `[${s.prefixItems.map((p) => this.accepts(p)).join(', ')}]`;
        const items = count(s.minItems, s.maxItems, 'items');
        const item = s.items || undefined;
        const of = item ? this.accepts(item) : 'anything';
        const several = item && (alternatives(item)?.length ?? 0) > 1;
        return `array${items ? ` (${items})` : ''} of ${several ? `(${of})` : of}`;
      }
      case 'object': {
        const value = mapValue(s);
        if (value) {
          const key = s.propertyNames ? this.accepts(s.propertyNames) : 'string';
          return `map: ${key} → ${isLeaf(value) ? this.accepts(value) : 'object (fields below)'}`;
        }
        if (isInline(s)) {
          const required = new Set(s.required ?? []);
          const fields = Object.entries(s.properties ?? {}).map(
            ([k, v]) => `${code(`${k}${required.has(k) ? '' : '?'}`)}: ${this.accepts(v)}`,
          );
          return `{${fields.join(', ')}}`;
        }
        return 'object';
      }
      default:
        return 'any JSON value';
    }
  }

  defaultOf(s: Schema, required: boolean): string {
    if (s.default !== undefined) return literal(s.default);
    return required ? '**required**' : '—';
  }

  /**
   * Rows for the fields of object `s`: `prefix` is the shown field path, `key` the description key
   * (the same, or inside a union's variant `path{type}`), `wildcard` the variant-independent key.
   */
  rows(
    s: Schema,
    at: { prefix: string; key: string; wildcard?: string; path: string },
    unions: UnionTable[],
  ): Row[] {
    const out: Row[] = [];
    const required = new Set(s.required ?? []);
    for (const [name, field] of Object.entries(s.properties ?? {})) {
      const join = (base: string) => (base ? `${base}.${name}` : name);
      const shown = join(at.prefix);
      const key = join(at.key);
      const keys = at.wildcard === undefined ? [key] : [key, join(at.wildcard)];
      const path = join(at.path);
      if (at.wildcard !== undefined && name === 'type' && field.const !== undefined) continue;
      const leaf = this.options.leaves?.[path];
      const row = (accepts: string) =>
        out.push({
          field: code(shown),
          accepts,
          default: this.defaultOf(field, required.has(name)),
          description: this.describe(field, keys),
        });
      if (leaf) {
        row(leaf);
        continue;
      }
      const union = discriminated(field);
      const itemUnion = field.type === 'array' && field.items ? discriminated(field.items) : undefined;
      const value = mapValue(field);
      const valueUnion = value ? discriminated(value) : undefined;
      if (union) {
        row(`object by ${code('type')}: ${union.map((a) => literal(a.properties?.type?.const)).join(', ')}`);
        unions.push(this.union(union, path, key));
      } else if (itemUnion && field.type === 'array') {
        row(
          `array${field.maxItems === undefined ? '' : ` (${count(field.minItems, field.maxItems, 'items')})`} of objects by ${code('type')} (table below)`,
        );
        unions.push(this.union(itemUnion, `${path}[]`, `${key}[]`));
      } else if (value && valueUnion) {
        const placeholder = `<${this.options.mapKeys?.[path] ?? 'key'}>`;
        row(
          `map: ${field.propertyNames ? this.accepts(field.propertyNames) : 'string'} → object by ${code('type')} (table below)`,
        );
        unions.push(this.union(valueUnion, `${path}.${placeholder}`, `${key}.${placeholder}`));
      } else if (value && !isLeaf(value) && !isInline(value)) {
        row(this.accepts(field));
        const placeholder = `<${this.options.mapKeys?.[path] ?? 'key'}>`;
        out.push(
          ...this.rows(
            value,
            {
              prefix: `${shown}.${placeholder}`,
              key: `${key}.${placeholder}`,
              ...(at.wildcard === undefined ? {} : { wildcard: `${join(at.wildcard)}.${placeholder}` }),
              path: `${path}.${placeholder}`,
            },
            unions,
          ),
        );
      } else if (isObject(field) && field.properties && !isInline(field)) {
        row('object');
        out.push(
          ...this.rows(
            field,
            {
              prefix: shown,
              key,
              ...(at.wildcard === undefined ? {} : { wildcard: join(at.wildcard) }),
              path,
            },
            unions,
          ),
        );
      } else {
        row(this.accepts(field));
      }
    }
    return out;
  }

  /** The table of a union told apart by `type`: a row per variant, then a row per field of it. */
  union(alts: Schema[], path: string, key: string): UnionTable {
    return {
      path,
      variants: alts.map((variant) => {
        const type = String(variant.properties?.type?.const);
        const nested: UnionTable[] = [];
        const rows = [
          {
            field: '',
            accepts: '',
            default: '',
            description: this.describe(variant, [`${key}{${type}}`]),
          },
          ...this.rows(variant, { prefix: '', key: `${key}{${type}}`, wildcard: `${key}{*}`, path }, nested),
        ];
        if (nested.length) throw new Error(`${path}: a union inside a union's variant is not supported`);
        return { type, rows };
      }),
    };
  }
}

const cell = (s: string) => s.replaceAll('\n', ' ');
const tableRow = (cells: string[]) => `| ${cells.map(cell).join(' | ')} |`;

function renderUnion(u: UnionTable, heading: string): string[] {
  const lines = [
    `${heading}# ${code(u.path)}, by ${code('type')}`,
    '',
    tableRow([code('type'), 'field', 'accepts', 'default', 'description']),
    tableRow(['---', '---', '---', '---', '---']),
  ];
  for (const v of u.variants) {
    for (const [i, r] of v.rows.entries()) {
      lines.push(
        tableRow([i === 0 ? `**${code(v.type)}**` : '', r.field, r.accepts, r.default, r.description]),
      );
    }
  }
  lines.push('');
  return lines;
}

/** The Markdown of one generated region (without its markers). Throws when a description is missing. */
export function renderTables(options: TableOptions): string {
  const heading = options.heading ?? '###';
  const root = z.toJSONSchema(options.schema, {
    io: 'input',
    target: 'draft-2020-12',
    unrepresentable: 'any',
  }) as Schema;
  const r = new Renderer(options);
  const sections: Section[] = [];
  // The top level: one row per field; then each object field's own table.
  const topUnions: UnionTable[] = [];
  const top: Row[] = [];
  const expanded: [string, Schema][] = [];
  const required = new Set(root.required ?? []);
  for (const [name, field] of Object.entries(root.properties ?? {})) {
    const leaf = options.leaves?.[name];
    const isSection = !leaf && isObject(field) && field.properties !== undefined;
    if (isSection) {
      top.push({
        field: code(name),
        accepts: `object (${code(name)} below)`,
        default: r.defaultOf(field, required.has(name)),
        description: r.describe(field, [name]),
      });
      expanded.push([name, field]);
    } else {
      top.push(
        ...r.rows(
          { type: 'object', properties: { [name]: field }, required: required.has(name) ? [name] : [] },
          { prefix: '', key: '', path: '' },
          topUnions,
        ),
      );
    }
  }
  sections.push({ title: 'Top level', rows: top, unions: topUnions });
  for (const [name, field] of expanded) {
    const unions: UnionTable[] = [];
    const rows = r.rows(field, { prefix: name, key: name, path: name }, unions);
    sections.push({ title: code(name), rows, unions });
  }

  const unused = Object.keys(options.descriptions).filter((k) => !r.used.has(k));
  const problems = [...r.missing, ...unused.map((k) => `${k}: described, but no such field in the schema`)];
  if (problems.length) {
    throw new Error(
      `${options.region}: the descriptions do not match the schema (scripts/spec-descriptions.ts):\n  ${problems.join('\n  ')}`,
    );
  }

  const lines: string[] = [];
  for (const section of sections) {
    lines.push(`${heading} ${section.title}`, '');
    lines.push(
      tableRow(['field', 'accepts', 'default', 'description']),
      tableRow(['---', '---', '---', '---']),
    );
    for (const row of section.rows)
      lines.push(tableRow([row.field, row.accepts, row.default, row.description]));
    lines.push('');
    for (const u of section.unions) lines.push(...renderUnion(u, heading));
  }
  const sets = options.valueSets?.filter((v) => r.usedSets.has(v.name)) ?? [];
  if (sets.length) {
    lines.push(`${heading} Value sets`, '');
    for (const set of sets) lines.push(`- **${set.name}**: ${set.values.map(literal).join(', ')}`);
    lines.push('');
  }
  return lines.join('\n').trimEnd();
}

// ── The two generated regions ───────────────────────────────────────────────────────────────────

const VALUE_SETS: ValueSet[] = [
  { name: 'activation', values: ACTIVATIONS },
  { name: 'initializer', values: INITIALIZERS },
  { name: 'monitor', values: MONITORS },
  { name: 'loss', values: LOSSES },
];

export interface GeneratedDoc {
  /** Path of the doc from the repository root. */
  readonly file: string;
  readonly options: TableOptions;
}

export const GENERATED_DOCS: readonly GeneratedDoc[] = [
  {
    file: 'docs/job-spec.md',
    options: {
      region: 'job-spec',
      schema: jobSpec,
      descriptions: JOB_SPEC_DESCRIPTIONS,
      mapKeys: { 'preprocessing.columns': 'column' },
      valueSets: VALUE_SETS,
    },
  },
  {
    file: 'docs/sweeps.md',
    options: {
      region: 'sweep-spec',
      schema: sweepRequest,
      descriptions: SWEEP_DESCRIPTIONS,
      leaves: { spec: 'a job spec ([job-spec.md](job-spec.md))' },
      mapKeys: { parameters: 'path' },
      valueSets: VALUE_SETS,
    },
  },
];

// ── Regions in a doc ────────────────────────────────────────────────────────────────────────────

export const beginMarker = (region: string) =>
  `<!-- BEGIN GENERATED ${region}: npm run docs:spec writes this part from the schema; do not edit it by hand -->`;
export const endMarker = (region: string) => `<!-- END GENERATED ${region} -->`;

/** The text between a region's markers (without the blank lines around it); throws when absent. */
export function extractRegion(doc: string, region: string): string {
  const begin = doc.indexOf(beginMarker(region));
  const end = doc.indexOf(endMarker(region));
  if (begin < 0 || end < begin) throw new Error(`no "${region}" region: the doc needs its two markers`);
  return doc.slice(begin + beginMarker(region).length, end).trim();
}

/**
 * The text with every table row's cells trimmed: Biome formats Markdown (`npm run lint` checks it)
 * and pads table columns, which changes no content. Generated and committed regions are compared so.
 */
export function normalizeTables(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      if (!line.startsWith('|')) return line;
      const cells = line
        .split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((c) => c.trim())
        .map((c) => (/^:?-+:?$/.test(c) ? '---' : c));
      return `| ${cells.join(' | ')} |`;
    })
    .join('\n');
}

/** The doc with the region's content replaced by `content`. */
export function replaceRegion(doc: string, region: string, content: string): string {
  extractRegion(doc, region);
  const begin = doc.indexOf(beginMarker(region)) + beginMarker(region).length;
  const end = doc.indexOf(endMarker(region));
  return `${doc.slice(0, begin)}\n\n${content}\n\n${doc.slice(end)}`;
}
