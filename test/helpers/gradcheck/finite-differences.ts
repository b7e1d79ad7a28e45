/**
 * Central finite differences in float64, and the comparison of an analytic float32 gradient with
 * them.
 *
 * The step. For parameter p the step is h = H·max(1, |p|) with H = 2^-17 (≈ 7.6e-6). The
 * derivative is the Richardson combination R = (4·D(h) − D(2h)) / 3 of the central differences
 * D(s) = (f(p + s) − f(p − s)) / 2s, and its error is bounded by the observed |D(h) − D(2h)|:
 * that difference is 3× the O(h²) truncation error of D(h) (and R's own is O(h⁴)), plus the
 * float64 rounding of the four evaluations, ≈ 2·ε64·|f|·κ/h with ε64 = 2^-52 — about 1e-9 for
 * |f| ~ 1 and an evaluation condition κ ~ 10, far below anything float32 can show. A step that
 * crosses a kink (relu at 0, a max-pool tie, |e| = 1 in huber) shows up as a large |D(h) − D(2h)|,
 * so such an element is judged by what finite differences can tell, not failed on noise.
 *
 * The tolerance. tfjs computes in float32 (ε32 = 2^-23): every analytic gradient element is a
 * sum of products along at most M paths of at most M operations, so its rounding error is at
 * most about γ_M·Σ|terms| ≈ M·ε32·Σ|terms|. With M ≤ 128 for these small shapes, and Σ|terms|
 * at most 8× the largest gradient element of the same tensor (`scale`), an element passes when
 *
 *     |g_tfjs − g_fd| ≤ 2^10·ε32·scale + |D(h) − D(2h)|        (2^10·ε32 ≈ 1.2e-4)
 *
 * and the error reported is max |g_tfjs − g_fd| / scale per tensor. A wrong kernel is off by a
 * factor somewhere (the stock average-pooling gradient: 0.5 relative); rounding is 1e-7..1e-5.
 */

export const EPS32 = 2 ** -23;
export const FD_STEP = 2 ** -17;
/** Relative tolerance, in units of the tensor's largest gradient element. */
export const TOLERANCE = 2 ** 10 * EPS32;

export interface Estimate {
  /** Richardson-extrapolated central difference per element. */
  grad: Float64Array;
  /** |D(h) − D(2h)| per element: a bound on the estimate's error. */
  error: Float64Array;
}

/** Differentiates `f` (which reads `p`) with respect to every element of `p`, restoring `p`. */
export function centralDifferences(f: () => number, p: Float64Array): Estimate {
  const grad = new Float64Array(p.length);
  const error = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const v = p[i] as number;
    const h = FD_STEP * Math.max(1, Math.abs(v));
    const at = (s: number) => {
      p[i] = v + s;
      return f();
    };
    const d1 = (at(h) - at(-h)) / (2 * h);
    const d2 = (at(2 * h) - at(-2 * h)) / (4 * h);
    p[i] = v;
    grad[i] = (4 * d1 - d2) / 3;
    error[i] = Math.abs(d1 - d2);
  }
  return { grad, error };
}

export interface TensorComparison {
  name: string;
  size: number;
  /** max |analytic − fd| / scale. */
  error: number;
  /** max FD error bound / scale. */
  fdError: number;
  /** The largest |fd| in the tensor, or 1e-3 of the largest in the whole check if larger. */
  scale: number;
  pass: boolean;
  /** Where the worst element is, for messages. */
  worst: { index: number; analytic: number; fd: number };
}

export function compareGradient(
  name: string,
  analytic: ArrayLike<number>,
  estimate: Estimate,
  globalScale: number,
): TensorComparison {
  let own = 0;
  for (const v of estimate.grad) own = Math.max(own, Math.abs(v));
  const scale = Math.max(own, 1e-3 * globalScale, 1e-30);
  let worst = { index: -1, analytic: 0, fd: 0 };
  let maxDiff = -1;
  let fdError = 0;
  let pass = analytic.length === estimate.grad.length;
  for (let i = 0; i < estimate.grad.length; i++) {
    const a = analytic[i] as number;
    const e = estimate.grad[i] as number;
    const diff = Math.abs(a - e);
    if (!(diff <= TOLERANCE * scale + (estimate.error[i] as number))) pass = false;
    if (!(diff <= maxDiff)) {
      maxDiff = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : diff;
      worst = { index: i, analytic: a, fd: e };
    }
    fdError = Math.max(fdError, (estimate.error[i] as number) / scale);
  }
  return {
    name,
    size: estimate.grad.length,
    error: Math.max(0, maxDiff) / scale,
    fdError,
    scale,
    pass,
    worst,
  };
}

/** max |a − b| / max |b| (0 when both are all zero). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number));
    diff = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(diff, d);
    scale = Math.max(scale, Math.abs(b[i] as number));
  }
  return diff === 0 ? 0 : diff / Math.max(scale, 1e-30);
}
