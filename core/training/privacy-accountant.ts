/**
 * The privacy accountant of DP-SGD: Rényi differential privacy (RDP) of the Poisson-subsampled
 * Gaussian mechanism (Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of the Sampled
 * Gaussian Mechanism", §3.3), composed over steps (RDP adds up), converted to (ε, δ), and the
 * search for the smallest noise multiplier that keeps a planned run within a target ε.
 *
 * Adjacency is add/remove one row. One step samples every training row independently with
 * probability q, sums the rows' gradients clipped to L2 norm C and adds N(0, σ²C²) noise: its RDP
 * at order α is log(A_α) / (α − 1), with A_α = E_{z∼μ0}[(μ1(z)/μ0(z))^α], μ0 = N(0, σ²) and
 * μ1 = (1 − q)·N(0, σ²) + q·N(1, σ²). A_α is computed in log space, by the binomial expansion for
 * integer α and by its two-sided series with erfc tails for fractional α.
 *
 * Pure TypeScript, no tensors: the same numbers anywhere.
 */

/** The orders used by default, as TensorFlow Privacy's `dp_accounting` uses them. */
export const DEFAULT_ORDERS: readonly number[] = [
  1.25,
  1.5,
  1.75,
  2,
  2.25,
  2.5,
  3,
  3.5,
  4,
  4.5,
  ...Array.from({ length: 59 }, (_, i) => i + 5),
  128,
  256,
  512,
];

/**
 * How RDP becomes (ε, δ):
 * - `classic`: ε = min_α rdp(α) + log(1/δ)/(α − 1) (Mironov 2017, Prop. 3), what TensorFlow Privacy's
 *   first MNIST tutorial printed;
 * - `ckst2020`: ε = min_α rdp(α) + log((α − 1)/α) − (log δ + log α)/(α − 1) (Canonne, Kamath & Steinke
 *   2020, Prop. 12; the same family as Balle et al. 2020, Thm. 21), always smaller for the same RDP,
 *   and what Opacus and today's TensorFlow Privacy (`dp_accounting`) use. The default.
 */
export type Conversion = 'classic' | 'ckst2020';

/** log(e^a + e^b), exact for −∞. */
export function logAdd(a: number, b: number): number {
  if (a === Number.NEGATIVE_INFINITY) return b;
  if (b === Number.NEGATIVE_INFINITY) return a;
  const hi = Math.max(a, b);
  return hi + Math.log1p(Math.exp(Math.min(a, b) - hi));
}

/** log(e^a − e^b) for a ≥ b. */
export function logSub(a: number, b: number): number {
  if (b === Number.NEGATIVE_INFINITY) return a;
  if (b >= a) return Number.NEGATIVE_INFINITY;
  return a + Math.log1p(-Math.exp(b - a));
}

const LOG_SQRT_PI = 0.5 * Math.log(Math.PI);

/** erf(x) by its Taylor series: accurate to ~1e-15 for |x| < 2.5. */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= -x2 / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/**
 * log of the continued fraction of erfc for x ≥ 2: erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x +
 * (3/2)/(x + …)))), evaluated from the tail (it converges quickly there).
 */
function logErfcTailFactor(x: number): number {
  let f = x;
  for (let k = 120; k >= 1; k--) f = x + k / 2 / f;
  return -Math.log(f);
}

/** log(erfc(x)) for any real x, accurate in relative terms far into the tails (x up to ~1e150). */
export function logErfc(x: number): number {
  if (x >= 2) return -x * x - LOG_SQRT_PI + logErfcTailFactor(x);
  if (x > -2.5) return Math.log(1 - erfSeries(x));
  // erfc(x) = 2 − erfc(−x), with erfc(−x) tiny.
  return Math.log(2) + Math.log1p(-Math.exp(logErfc(-x)) / 2);
}

/** log A_α for an integer α ≥ 2: log Σ_k C(α, k) q^k (1 − q)^{α−k} exp((k² − k)/(2σ²)). */
function logAInteger(q: number, sigma: number, alpha: number): number {
  let logA = Number.NEGATIVE_INFINITY;
  let logBinom = 0; // log C(α, 0)
  const lq = Math.log(q);
  const l1q = Math.log1p(-q);
  for (let k = 0; k <= alpha; k++) {
    if (k > 0) logBinom += Math.log((alpha - k + 1) / k);
    logA = logAdd(logA, logBinom + k * lq + (alpha - k) * l1q + (k * k - k) / (2 * sigma * sigma));
  }
  return logA;
}

/**
 * log A_α for a fractional α > 1 (Mironov, Talwar & Zhang 2019, §3.3): A_α splits at z0 = σ² log(1/q
 * − 1) + 1/2 into two series over k ≥ 0 whose terms carry erfc tails; the generalised binomial
 * coefficient C(α, k) changes sign past α, so each series is summed as positive minus negative
 * parts. Summation stops once both series' terms fall below e^{−30} relative to 1.
 */
function logAFractional(q: number, sigma: number, alpha: number): number {
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const lq = Math.log(q);
  const l1q = Math.log1p(-q);
  const s2 = Math.SQRT2 * sigma;
  let pos0 = Number.NEGATIVE_INFINITY;
  let neg0 = Number.NEGATIVE_INFINITY;
  let pos1 = Number.NEGATIVE_INFINITY;
  let neg1 = Number.NEGATIVE_INFINITY;
  let logBinom = 0;
  let sign = 1;
  for (let k = 0; k < 100_000; k++) {
    if (k > 0) {
      const factor = (alpha - k + 1) / k;
      if (factor < 0) sign = -sign;
      logBinom += Math.log(Math.abs(factor));
    }
    const j = alpha - k;
    const t0 = logBinom + k * lq + j * l1q + (k * k - k) / (2 * sigma * sigma);
    const t1 = logBinom + j * lq + k * l1q + (j * j - j) / (2 * sigma * sigma);
    const s0 = t0 + Math.log(0.5) + logErfc((k - z0) / s2);
    const s1 = t1 + Math.log(0.5) + logErfc((z0 - j) / s2);
    if (sign > 0) {
      pos0 = logAdd(pos0, s0);
      pos1 = logAdd(pos1, s1);
    } else {
      neg0 = logAdd(neg0, s0);
      neg1 = logAdd(neg1, s1);
    }
    if (k > alpha && Math.max(s0, s1) < -30) break;
  }
  return logAdd(logSub(pos0, neg0), logSub(pos1, neg1));
}

/** RDP of one step of the Poisson-subsampled Gaussian mechanism at order α (> 1). */
export function rdpOfStep(q: number, sigma: number, alpha: number): number {
  if (!(alpha > 1)) throw new RangeError(`RDP orders must be above 1, not ${alpha}`);
  if (q === 0) return 0;
  if (sigma === 0) return Number.POSITIVE_INFINITY;
  if (q === 1) return alpha / (2 * sigma * sigma);
  const logA = Number.isInteger(alpha) ? logAInteger(q, sigma, alpha) : logAFractional(q, sigma, alpha);
  return Math.max(0, logA / (alpha - 1));
}

/** RDP of `steps` composed steps at each order. */
export function rdpOfRun(q: number, sigma: number, steps: number, orders: readonly number[]): number[] {
  return orders.map((alpha) => steps * rdpOfStep(q, sigma, alpha));
}

/** The (ε, δ) guarantee of an RDP curve, and the order that gives it. */
export function epsilonFromRdp(
  rdp: readonly number[],
  orders: readonly number[],
  delta: number,
  conversion: Conversion = 'ckst2020',
): { epsilon: number; order: number } {
  let best = { epsilon: Number.POSITIVE_INFINITY, order: Number.NaN };
  orders.forEach((alpha, i) => {
    const r = rdp[i] as number;
    const epsilon =
      conversion === 'classic'
        ? r - Math.log(delta) / (alpha - 1)
        : r + Math.log1p(-1 / alpha) - (Math.log(delta) + Math.log(alpha)) / (alpha - 1);
    if (epsilon < best.epsilon) best = { epsilon: Math.max(0, epsilon), order: alpha };
  });
  return best;
}

export interface RunParameters {
  /** Poisson sampling rate q (expected batch size / training rows). */
  sampleRate: number;
  noiseMultiplier: number;
  steps: number;
  delta: number;
  orders?: readonly number[];
  conversion?: Conversion;
}

/** ε of a whole run (steps × one step, composed). */
export function epsilonOf(run: RunParameters): { epsilon: number; order: number } {
  const orders = run.orders ?? DEFAULT_ORDERS;
  if (run.steps === 0) return { epsilon: 0, order: Number.NaN };
  return epsilonFromRdp(
    rdpOfRun(run.sampleRate, run.noiseMultiplier, run.steps, orders),
    orders,
    run.delta,
    run.conversion,
  );
}

/** Relative precision of the noise search: the σ returned is within this factor of the smallest that meets the target. */
export const NOISE_SEARCH_PRECISION = 1e-4;
/** Above this noise multiplier the search gives up (the target is out of reach for these orders and δ). */
export const MAX_NOISE_MULTIPLIER = 1e4;

/**
 * The smallest noise multiplier σ (to a relative precision of `NOISE_SEARCH_PRECISION`, rounded up)
 * for which `steps` steps at rate q stay within `targetEpsilon`, by bisection on log σ (ε falls as σ
 * grows). `undefined` when even `MAX_NOISE_MULTIPLIER` does not reach the target.
 */
export function noiseForTarget(
  run: Omit<RunParameters, 'noiseMultiplier'> & { targetEpsilon: number },
): number | undefined {
  const eps = (sigma: number) => epsilonOf({ ...run, noiseMultiplier: sigma }).epsilon;
  let hi = 1;
  while (eps(hi) > run.targetEpsilon) {
    if (hi >= MAX_NOISE_MULTIPLIER) return undefined;
    hi = Math.min(hi * 2, MAX_NOISE_MULTIPLIER);
  }
  let lo = hi / 2;
  while (lo > 1e-3 && eps(lo) <= run.targetEpsilon) {
    hi = lo;
    lo /= 2;
  }
  while ((hi - lo) / hi > NOISE_SEARCH_PRECISION) {
    const mid = Math.sqrt(lo * hi);
    if (eps(mid) <= run.targetEpsilon) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** The most steps (≤ `maxSteps`) that stay within `targetEpsilon` at a fixed σ, by bisection (ε grows with steps). */
export function stepsWithin(
  run: Omit<RunParameters, 'steps'> & { targetEpsilon: number },
  maxSteps: number,
): number {
  const within = (steps: number) => epsilonOf({ ...run, steps }).epsilon <= run.targetEpsilon;
  if (within(maxSteps)) return maxSteps;
  let lo = 0;
  let hi = maxSteps;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (within(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}
