/**
 * The sweep spec: what a client submits to `POST /sweeps` — a job spec, the parameters to vary (a
 * path in the spec → a domain of values), how to pick the trials (grid or seeded random), the
 * objective, the limits and the optional median stopping rule. `resolveSweep` validates every trial
 * spec through the job spec schema, so a domain that can produce an invalid spec is a 400 naming the
 * parameter, and nothing invalid is stored or queued.
 */
import { z } from 'zod';
import { jobSpec, MAX_EPOCHS, type TASKS } from '../jobs/job-spec.ts';
import { ValidationError } from '../platform/errors.ts';
import { seededRng } from '../platform/random.ts';
import { privacyProblems } from '../training/privacy.ts';

/** Most trials one sweep may run. */
export const MAX_TRIALS = 200;
/** Most trials one sweep may have queued or running at once (and at most the active-jobs quota). */
export const MAX_PARALLEL = 50;
const MAX_PARAMETERS = 20;
/** Most values one choice may list. */
const MAX_CHOICES = 100;

/**
 * A parameter's value: any JSON value (numbers, strings, booleans, objects such as a whole optimizer).
 * Bodies are parsed JSON, so `unknown` is JSON here (and keeps the OpenAPI schema free of `$defs`).
 */
const parameterValue = z.unknown();
export type ParameterValue = unknown;

const number = z.number().refine(Number.isFinite, 'must be a finite number');
const integer = z.int().min(-1e9).max(1e9);

/** A set of values a parameter takes. */
export const domain = z.discriminatedUnion('type', [
  /** Exactly these values (numbers, strings, booleans or JSON objects such as a whole optimizer). */
  z.strictObject({
    type: z.literal('choice'),
    values: z
      .array(parameterValue)
      .min(1)
      .max(MAX_CHOICES)
      .refine((v) => new Set(v.map((x) => JSON.stringify(x))).size === v.length, 'must not repeat a value'),
  }),
  /** A real number drawn evenly from [min, max]. */
  z
    .strictObject({ type: z.literal('uniform'), min: number, max: number })
    .refine((d) => d.min < d.max, { message: 'must be above min', path: ['max'] }),
  /** A positive real number whose logarithm is drawn evenly: as many draws per decade (learning rates). */
  z
    .strictObject({ type: z.literal('logUniform'), min: number.positive(), max: number })
    .refine((d) => d.min < d.max, { message: 'must be above min', path: ['max'] }),
  /** An integer drawn evenly from min to max, both included (layer sizes). */
  z
    .strictObject({ type: z.literal('intUniform'), min: integer, max: integer })
    .refine((d) => d.min < d.max, { message: 'must be above min', path: ['max'] }),
]);
export type Domain = z.infer<typeof domain>;

/** Validation-report metrics a sweep can optimise, by task (`loss` is the validation loss). */
export const OBJECTIVE_METRICS = {
  classification: ['accuracy', 'macroF1', 'weightedF1', 'logLoss', 'rocAuc', 'loss'],
  regression: ['mae', 'mse', 'rmse', 'r2', 'loss'],
} as const;
const MAXIMIZED = new Set(['accuracy', 'macroF1', 'weightedF1', 'rocAuc', 'r2']);
export const GOALS = ['minimize', 'maximize'] as const;
export type Goal = (typeof GOALS)[number];

/** The per-epoch metrics the median stopping rule can watch (validation metrics of `metrics.json`). */
export const STOPPING_MONITORS = ['valLoss', 'valAccuracy', 'valMae'] as const;
export type StoppingMonitor = (typeof STOPPING_MONITORS)[number];

/** A job name's rules, shorter: trial n's job is named `<name>-<n>`. */
const sweepName = jobSpec.shape.name.unwrap().max(100);

export const sweepRequest = z.strictObject({
  name: sweepName.optional(),
  /** The job spec every trial starts from. */
  spec: jobSpec,
  /** A path in the spec (`training.optimizer.learningRate`, `model.layers[0].units`) → its domain. */
  parameters: z.record(z.string().min(1).max(256), domain),
  /** `grid`: every combination of the choices; `random`: `maxTrials` seeded draws. Default: grid when every domain is a choice. */
  strategy: z.enum(['grid', 'random']).optional(),
  /** Seeds the random strategy's draws (chosen and recorded when absent); the trials share the spec's training seed. */
  seed: z
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .optional(),
  /** A metric of the validation report, and whether lower or higher is better (default by metric). */
  objective: z.strictObject({ metric: z.string().min(1).max(64), goal: z.enum(GOALS).optional() }).optional(),
  /** Random: how many trials (default 10). Grid: an upper bound on the number of combinations. */
  maxTrials: z.int().min(1).max(MAX_TRIALS).optional(),
  /** Most trials queued or running at once (default 4, at most the account's active-jobs quota). */
  maxParallel: z.int().min(1).max(MAX_PARALLEL).optional(),
  /**
   * The median stopping rule: after `minEpochs`, a trial whose best `metric` so far is worse than the
   * median of the completed trials' best by the same epoch stops (`STOPPED_EARLY`), once at least
   * `minTrials` trials have completed.
   */
  earlyStopping: z
    .strictObject({
      type: z.literal('median'),
      minEpochs: z.int().min(1).max(MAX_EPOCHS).default(5),
      minTrials: z.int().min(1).max(MAX_TRIALS).default(3),
      metric: z.enum(STOPPING_MONITORS).optional(),
    })
    .optional(),
});
export type SweepRequestInput = z.input<typeof sweepRequest>;

/** The request as stored in the sweep record: every default chosen, the spec with its defaults filled in. */
export const resolvedSweep = z.object({
  name: z.string(),
  spec: z.record(z.string(), z.unknown()),
  parameters: z.record(z.string(), domain),
  strategy: z.enum(['grid', 'random']),
  seed: z.int(),
  objective: z.object({ metric: z.string(), goal: z.enum(GOALS) }),
  maxTrials: z.int(),
  maxParallel: z.int(),
  earlyStopping: z
    .object({
      type: z.literal('median'),
      minEpochs: z.int(),
      minTrials: z.int(),
      metric: z.enum(STOPPING_MONITORS),
    })
    .optional(),
});
export type ResolvedSweep = z.infer<typeof resolvedSweep>;

/** One trial's values, by parameter path. */
export type Assignment = Record<string, ParameterValue>;

// ── Parameter paths ────────────────────────────────────────────────────────────────────────────

const PATH_PATTERN = /^[A-Za-z_$][\w$]*(\[\d{1,4}\])*(\.[A-Za-z_$][\w$]*(\[\d{1,4}\])*)*$/;
const FORBIDDEN_KEYS = new Set(['__proto__', 'prototype', 'constructor']);

/** `model.layers[0].units` → `['model', 'layers', 0, 'units']`; `undefined` when it is not a path. */
export function parsePath(path: string): (string | number)[] | undefined {
  if (!PATH_PATTERN.test(path)) return undefined;
  const segments = [...path.matchAll(/([A-Za-z_$][\w$]*)|\[(\d+)\]/g)].map((m) =>
    m[2] === undefined ? (m[1] as string) : Number(m[2]),
  );
  return segments.some((s) => typeof s === 'string' && FORBIDDEN_KEYS.has(s)) ? undefined : segments;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Sets `value` at `path` in `target` (changed in place). Every container on the way must exist: an
 * array index must be inside the array, an object must be there; only the last key may be new.
 * Returns a message when the path does not fit the spec.
 */
export function setPath(target: Record<string, unknown>, path: string, value: unknown): string | undefined {
  const segments = parsePath(path);
  if (!segments) return 'is not a path in the spec (write it like training.optimizer.learningRate)';
  let node: unknown = target;
  for (const [i, segment] of segments.entries()) {
    const last = i === segments.length - 1;
    const where = formatSegments(segments.slice(0, i + 1));
    if (typeof segment === 'number') {
      if (!Array.isArray(node) || segment >= node.length)
        return `the spec has no ${where}${Array.isArray(node) ? ` (it has ${node.length} item${node.length === 1 ? '' : 's'})` : ''}`;
      if (last) node[segment] = value;
      else node = node[segment];
    } else {
      if (!isObject(node)) return `the spec has no ${where}`;
      if (last) node[segment] = value;
      else {
        if (!(segment in node)) return `the spec has no ${where}: give it in the spec, then sweep inside it`;
        node = node[segment];
      }
    }
  }
  return undefined;
}

const formatSegments = (segments: (string | number)[]) =>
  segments.reduce<string>((acc, s) => (typeof s === 'number' ? `${acc}[${s}]` : acc ? `${acc}.${s}` : s), '');

// ── Trials ─────────────────────────────────────────────────────────────────────────────────────

/** Every combination of the choices, the first parameter varying slowest (nested loops in order). */
export function gridAssignments(parameters: Record<string, Domain>): Assignment[] {
  let combos: Assignment[] = [{}];
  for (const [path, d] of Object.entries(parameters)) {
    if (d.type !== 'choice') throw new Error(`grid needs choice domains (${path} is ${d.type})`);
    combos = combos.flatMap((combo) => d.values.map((value) => ({ ...combo, [path]: value })));
  }
  return combos;
}

/** Size of the grid, without building it. */
export const gridSize = (parameters: Record<string, Domain>): number =>
  Object.values(parameters).reduce((n, d) => n * (d.type === 'choice' ? d.values.length : Infinity), 1);

/** Six significant digits, kept inside [min, max]: readable values that still respect the bounds. */
const round = (v: number, min: number, max: number) => Math.min(max, Math.max(min, Number(v.toPrecision(6))));

/** One value of `d` from a uniform random number `u` in [0, 1). */
export function draw(d: Domain, u: number): ParameterValue {
  switch (d.type) {
    case 'choice':
      return d.values[Math.min(d.values.length - 1, Math.floor(u * d.values.length))] as ParameterValue;
    case 'uniform':
      return round(d.min + u * (d.max - d.min), d.min, d.max);
    case 'logUniform':
      return round(Math.exp(Math.log(d.min) + u * (Math.log(d.max) - Math.log(d.min))), d.min, d.max);
    case 'intUniform':
      return Math.min(d.max, d.min + Math.floor(u * (d.max - d.min + 1)));
  }
}

/** `count` trials drawn from `seed`: the same seed and parameters always give the same trials. */
export function randomAssignments(
  parameters: Record<string, Domain>,
  count: number,
  seed: number,
): Assignment[] {
  const rng = seededRng(seed);
  return Array.from({ length: count }, () =>
    Object.fromEntries(Object.entries(parameters).map(([path, d]) => [path, draw(d, rng())])),
  );
}

/** Values that stand for a whole domain when checking it: every choice, both bounds, and a value inside. */
function probes(d: Domain): ParameterValue[] {
  switch (d.type) {
    case 'choice':
      return d.values;
    case 'intUniform':
      return [d.min, d.max];
    // An interior value with a fraction too, so that a real domain on an integer field is caught.
    case 'uniform':
    case 'logUniform':
      return [d.min, d.max, draw(d, 0.382)];
  }
}

// ── Resolving a request ────────────────────────────────────────────────────────────────────────

export interface SweepPlan {
  readonly sweep: ResolvedSweep;
  readonly assignments: Assignment[];
}

/** The options a deployment sets: how many trials may run at once (the active-jobs quota). */
export interface SweepLimits {
  readonly maxActiveJobs: number;
}

const fail = (parameter: string | undefined, path: string, message: string): never => {
  const where = parameter === undefined ? path : `parameters.${parameter}`;
  throw new ValidationError(`Invalid sweep: ${where}: ${message}`, {
    problems: [{ path: where, message }],
    ...(parameter === undefined ? {} : { parameter }),
  });
};

/** The validation problems of `spec` with `assignment` applied, as `path: message` lines; [] when valid. */
function trialProblems(
  base: Record<string, unknown>,
  assignment: Assignment,
): { path: string; message: string }[] {
  const spec = structuredClone(base);
  for (const [path, value] of Object.entries(assignment)) {
    const problem = setPath(spec, path, structuredClone(value));
    if (problem) return [{ path, message: problem }];
  }
  const result = jobSpec.safeParse(spec);
  if (result.success) return privacyProblems(result.data);
  return result.error.issues.map((issue) => ({
    path: formatSegments(issue.path.filter((p): p is string | number => typeof p !== 'symbol')),
    message: issue.message,
  }));
}

/** The parameter a problem at `problemPath` is about: the parameter path it is inside of, or that is inside it. */
const blame = (parameters: string[], problemPath: string) =>
  parameters.find(
    (p) =>
      problemPath === p ||
      problemPath.startsWith(`${p}.`) ||
      problemPath.startsWith(`${p}[`) ||
      p.startsWith(`${problemPath}.`) ||
      p.startsWith(`${problemPath}[`),
  );

/**
 * Validates a parsed request and picks every trial: each parameter's path must fit the spec, each
 * domain's values (every choice; both bounds and an inside value of a range) must give a valid job
 * spec, and so must every trial. Throws a 400 naming the parameter otherwise.
 */
export function resolveSweep(
  request: z.output<typeof sweepRequest>,
  limits: SweepLimits,
  random: () => number = Math.random,
): SweepPlan {
  const spec = request.spec;
  const task = spec.task as (typeof TASKS)[number];
  const paths = Object.keys(request.parameters);
  if (paths.length === 0) fail(undefined, 'parameters', 'give at least one parameter to vary');
  if (paths.length > MAX_PARAMETERS) fail(undefined, 'parameters', `at most ${MAX_PARAMETERS} parameters`);
  for (const path of paths) {
    if (!parsePath(path))
      fail(
        path,
        path,
        'is not a path in the spec (write it like training.optimizer.learningRate or model.layers[0].units)',
      );
    const overlap = paths.find((other) => other !== path && blame([other], path) !== undefined);
    if (overlap) fail(path, path, `overlaps parameter ${overlap}: sweep one or the other`);
  }

  // The base spec with a training seed chosen once, so that every trial starts from the same weights.
  const base = structuredClone(spec) as Record<string, unknown> & { training: Record<string, unknown> };
  base.training.seed ??= Math.floor(random() * 2 ** 31);

  // Each domain on its own: its probe values must all give a valid spec.
  for (const [path, d] of Object.entries(request.parameters)) {
    const missing = setPath(structuredClone(base), path, probes(d)[0]);
    if (missing) fail(path, path, missing);
    for (const value of probes(d)) {
      const problems = trialProblems(base, { [path]: value });
      const first = problems[0];
      if (first) {
        const detail = first.path && first.path !== path ? `${first.path}: ${first.message}` : first.message;
        fail(path, path, `the value ${JSON.stringify(value)} gives an invalid job spec (${detail})`);
      }
    }
  }

  const allChoices = Object.values(request.parameters).every((d) => d.type === 'choice');
  const strategy = request.strategy ?? (allChoices ? 'grid' : 'random');
  let assignments: Assignment[];
  const seed = request.seed ?? Math.floor(random() * 2 ** 31);
  if (strategy === 'grid') {
    const notChoice = Object.entries(request.parameters).find(([, d]) => d.type !== 'choice');
    if (notChoice)
      fail(
        notChoice[0],
        notChoice[0],
        `the grid strategy takes choice domains only (this one is ${notChoice[1].type}); use strategy "random"`,
      );
    const size = gridSize(request.parameters);
    const cap = request.maxTrials ?? MAX_TRIALS;
    if (size > cap) {
      fail(
        undefined,
        'maxTrials',
        `the grid has ${size} combinations, more than ${request.maxTrials === undefined ? `the limit of ${MAX_TRIALS}` : `maxTrials (${cap})`}: give fewer choices or use strategy "random"`,
      );
    }
    assignments = gridAssignments(request.parameters);
  } else {
    assignments = randomAssignments(request.parameters, request.maxTrials ?? 10, seed);
  }

  // Every trial as it will run.
  for (const [i, assignment] of assignments.entries()) {
    const first = trialProblems(base, assignment)[0];
    if (first) {
      const parameter = blame(paths, first.path);
      const values = Object.entries(assignment)
        .map(([p, v]) => `${p}=${JSON.stringify(v)}`)
        .join(', ');
      fail(
        parameter,
        parameter ?? 'parameters',
        `trial ${i + 1} (${values}) gives an invalid job spec (${first.path ? `${first.path}: ` : ''}${first.message})`,
      );
    }
  }

  // The objective: a validation-report metric of this task; a validation set to report it on.
  const metric = request.objective?.metric ?? (task === 'classification' ? 'accuracy' : 'rmse');
  const known: readonly string[] = OBJECTIVE_METRICS[task];
  if (!known.includes(metric))
    fail(
      undefined,
      'objective.metric',
      `"${metric}" is not a validation metric of ${task}; use one of ${known.join(', ')}`,
    );
  const goal: Goal = request.objective?.goal ?? (MAXIMIZED.has(metric) ? 'maximize' : 'minimize');
  const validation = (base.training.validation as { type: string } | undefined)?.type;
  if (validation === 'none')
    fail(
      undefined,
      'spec.training.validation',
      'a sweep compares trials on their validation report: use holdout or kfold validation',
    );

  let earlyStopping: ResolvedSweep['earlyStopping'];
  if (request.earlyStopping) {
    const monitor =
      request.earlyStopping.metric ??
      (metric === 'accuracy' && task === 'classification'
        ? 'valAccuracy'
        : metric === 'mae'
          ? 'valMae'
          : 'valLoss');
    if (
      (monitor === 'valAccuracy' && task !== 'classification') ||
      (monitor === 'valMae' && task !== 'regression')
    )
      fail(undefined, 'earlyStopping.metric', `${monitor} is not recorded for ${task} jobs`);
    if (validation === 'kfold')
      fail(
        undefined,
        'earlyStopping',
        'the median rule compares per-epoch validation metrics, which a k-fold final model has none of: use holdout validation',
      );
    earlyStopping = { ...request.earlyStopping, metric: monitor };
  }

  const maxParallel = request.maxParallel ?? Math.min(4, assignments.length);
  if (maxParallel > limits.maxActiveJobs)
    fail(
      undefined,
      'maxParallel',
      `${maxParallel} is over this account's limit of ${limits.maxActiveJobs} active jobs`,
    );

  return {
    sweep: {
      name: request.name ?? (spec.name ?? `${task}-sweep`).slice(0, 100).trim(),
      spec: base,
      parameters: request.parameters,
      strategy,
      seed,
      objective: { metric, goal },
      maxTrials: assignments.length,
      maxParallel: Math.min(maxParallel, assignments.length),
      ...(earlyStopping ? { earlyStopping } : {}),
    },
    assignments,
  };
}

/** The job spec of one trial (not yet resolved): the sweep's spec with the trial's values set. */
export function trialSpec(sweep: ResolvedSweep, assignment: Assignment): Record<string, unknown> {
  const spec = structuredClone(sweep.spec);
  for (const [path, value] of Object.entries(assignment)) {
    const problem = setPath(spec, path, structuredClone(value));
    if (problem) throw new Error(`${path}: ${problem}`);
  }
  return spec;
}

/** Whether `a` is better than `b` for `goal`. */
export const better = (goal: Goal, a: number, b: number): boolean => (goal === 'minimize' ? a < b : a > b);
