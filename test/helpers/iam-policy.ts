/**
 * An IAM policy evaluator over the statements synthesized for one role: intrinsics resolved to fixed
 * strings (pseudo parameters to one account and region, `Ref`/`Fn::GetAtt` to `ref:<id>` /
 * `arn:<id>.<attribute>`), actions and resources matched with IAM's wildcards, the condition
 * operators descent uses, explicit denies, and no allow by default. It records which (action,
 * statement resource) pairs were used, so a test can find grants that nothing needed.
 */
import type { CfnResource, PolicyStatement } from '../infra/synth.ts';
import { statementsOfRole } from '../infra/synth.ts';

export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';
const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': REGION,
  'AWS::AccountId': ACCOUNT,
  'AWS::URLSuffix': 'amazonaws.com',
};

/** A template value with its intrinsics resolved (a fixed string per resource). */
export function resolve(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  if (value && typeof value === 'object') {
    const v = value as Record<string, unknown>;
    if (typeof v.Ref === 'string') return PSEUDO[v.Ref] ?? `ref:${v.Ref}`;
    if (Array.isArray(v['Fn::GetAtt'])) return `arn:${(v['Fn::GetAtt'] as string[]).join('.')}`;
    if (Array.isArray(v['Fn::Join'])) {
      const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
      return parts.map(resolve).join(sep);
    }
  }
  throw new Error(`cannot resolve ${JSON.stringify(value)}`);
}

/** IAM's wildcard match: `*` any run of characters, `?` one. */
export function wildcard(pattern: string, value: string, ignoreCase = false): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`, ignoreCase ? 'i' : '').test(value);
}

/** An access S3, SQS, KMS, Batch or EventBridge would refuse. */
export class AccessDenied extends Error {
  readonly $metadata = { httpStatusCode: 403 };
  constructor(message: string) {
    super(message);
    this.name = 'AccessDenied';
  }
}

interface Resolved {
  readonly effect: string;
  readonly actions: string[];
  readonly resources: string[];
  readonly condition?: Record<string, Record<string, unknown>>;
}

/** The resolved statements of one role, evaluated per request; what was used and what was refused. */
export class RolePolicy {
  readonly role: string;
  readonly statements: readonly Resolved[];
  /** `action resource-pattern` pairs that allowed at least one request. */
  readonly used = new Set<string>();
  /** Every refused request, `action resource`. */
  readonly denied: string[] = [];

  constructor(resources: Record<string, CfnResource>, roleId: string) {
    this.role = roleId;
    this.statements = statementsOfRole(resources, roleId).map((s: PolicyStatement) => ({
      effect: s.Effect,
      actions: [s.Action].flat(),
      resources: [s.Resource].flat().map(resolve),
      ...(s.Condition ? { condition: s.Condition as Resolved['condition'] } : {}),
    }));
  }

  /** The (action, resource pattern) pairs granted, but for logging and tracing. */
  granted(): string[] {
    return this.statements
      .filter((s) => s.effect === 'Allow')
      .flatMap((s) => s.actions.flatMap((a) => s.resources.map((r) => `${a} ${r}`)))
      .filter((pair) => !/^(logs|xray):/.test(pair));
  }

  /** Throws `AccessDenied` unless a statement allows `action` on `resource` (and none denies it). */
  check(action: string, resource: string, context: Record<string, string> = {}): void {
    const applies = (s: Resolved) =>
      s.actions.some((a) => wildcard(a, action, true)) &&
      s.resources.some((r) => wildcard(r, resource)) &&
      conditionsHold(s.condition, context);
    if (this.statements.some((s) => s.effect === 'Deny' && applies(s))) this.#deny(action, resource);
    let allowed = false;
    for (const s of this.statements) {
      if (s.effect !== 'Allow' || !applies(s)) continue;
      allowed = true;
      for (const a of s.actions.filter((a) => wildcard(a, action, true)))
        for (const r of s.resources.filter((r) => wildcard(r, resource))) this.used.add(`${a} ${r}`);
    }
    if (!allowed) this.#deny(action, resource);
  }

  #deny(action: string, resource: string): never {
    this.denied.push(`${action} ${resource}`);
    throw new AccessDenied(`${this.role} is not authorized to perform ${action} on ${resource}`);
  }
}

/** The operators descent's statements use; any other makes the statement not apply (fail closed). */
function conditionsHold(
  condition: Record<string, Record<string, unknown>> | undefined,
  context: Record<string, string>,
): boolean {
  if (!condition) return true;
  return Object.entries(condition).every(([operator, keys]) =>
    Object.entries(keys).every(([key, expected]) => {
      const actual = context[key];
      if (actual === undefined) return false;
      const values = [expected].flat().map(resolve);
      if (operator === 'StringEquals') return values.includes(actual);
      if (operator === 'StringLike' || operator === 'ArnLike') return values.some((v) => wildcard(v, actual));
      return false;
    }),
  );
}
