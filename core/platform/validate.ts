import type { z } from 'zod';
import { ValidationError } from './errors.ts';

export interface FieldProblem {
  path: string;
  message: string;
}

const formatPath = (path: readonly PropertyKey[]): string =>
  path.reduce<string>(
    (acc, part) =>
      typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part),
    '',
  );

/** Parses `value` with `schema`, or throws a 400 that lists every problem with its path. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems: FieldProblem[] = result.error.issues.map((issue) => {
    const path = formatPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.map((k) => (path ? `${path}.${k}` : k));
      return { path, message: `unknown field${keys.length > 1 ? 's' : ''} ${keys.join(', ')}` };
    }
    return { path, message: issue.message };
  });
  const first = problems[0];
  const summary = first
    ? first.path && !first.message.includes(first.path)
      ? `${first.path}: ${first.message}`
      : first.message
    : 'invalid';
  const more =
    problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : '';
  throw new ValidationError(`Invalid ${what}: ${summary}${more}`, { problems });
}
