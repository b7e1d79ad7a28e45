/**
 * The graph addon's fused LSTM ops (trainer/compiled/native/lstm_op.cc) against an LSTM written
 * here in float64, forward and backward, on shapes chosen to reach every path of the kernel: one
 * unit, one step, an empty batch, widths that are and are not multiples of the vector and panel
 * widths, row counts that leave every leftover-row tile, and sums longer than the kernel's k-block.
 */
import { GraphBuilder } from '../../trainer/compiled/graph.ts';
import { DT, type GraphAddon, type Output, type TensorValue } from '../../trainer/compiled/native.ts';

export interface LstmCase {
  batch: number;
  steps: number;
  features: number;
  units: number;
  sequence: boolean;
}

export const LSTM_CASES: LstmCase[] = [
  { batch: 1, steps: 1, features: 1, units: 1, sequence: false },
  { batch: 7, steps: 9, features: 3, units: 5, sequence: true },
  { batch: 13, steps: 4, features: 20, units: 17, sequence: false },
  { batch: 5, steps: 3, features: 33, units: 33, sequence: true },
  { batch: 19, steps: 2, features: 8, units: 40, sequence: false },
  { batch: 32, steps: 6, features: 4, units: 130, sequence: true },
  { batch: 0, steps: 3, features: 2, units: 4, sequence: false },
];

/** What a case's op gives: y, then the gradients of Σ y·dy: dx, dkernel, drecurrent, dbias. */
export type LstmValues = [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array];

/** Deterministic values in [−scale, scale). */
function values(n: number, seed: number, scale: number): Float64Array {
  const out = new Float64Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

/** The inputs of a case, rounded to float32 (what the op sees). */
export function lstmInputs(c: LstmCase) {
  const { batch: B, steps: T, features: F, units: U } = c;
  const f32 = (v: Float64Array) => Float64Array.from(Float32Array.from(v));
  return {
    x: f32(values(B * T * F, 1, 1)),
    kernel: f32(values(F * 4 * U, 2, 1 / Math.sqrt(F))),
    recurrent: f32(values(U * 4 * U, 3, 1 / Math.sqrt(U))),
    bias: f32(values(4 * U, 4, 0.5)),
    dy: f32(values(B * (c.sequence ? T : 1) * U, 5, 1)),
  };
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** tfjs's LSTM cell (gates i, f, g, o; zero initial state) in float64, and its backward pass. */
export function referenceLstm(c: LstmCase): LstmValues {
  const { batch: B, steps: T, features: F, units: U } = c;
  const G = 4 * U;
  const { x, kernel, recurrent, bias, dy } = lstmInputs(c);
  const y = new Float64Array(B * (c.sequence ? T : 1) * U);
  const dx = new Float64Array(B * T * F);
  const dk = new Float64Array(F * G);
  const dr = new Float64Array(U * G);
  const db = new Float64Array(G);
  for (let b = 0; b < B; b++) {
    // Forward, keeping every step's gates, c and h.
    const gates: Float64Array[] = [];
    const cs: Float64Array[] = [];
    const hs: Float64Array[] = [];
    let h = new Float64Array(U);
    let cPrev = new Float64Array(U);
    for (let t = 0; t < T; t++) {
      const z = Float64Array.from(bias);
      for (let j = 0; j < G; j++) {
        for (let f = 0; f < F; f++)
          z[j] = (z[j] as number) + (x[(b * T + t) * F + f] as number) * (kernel[f * G + j] as number);
        for (let u = 0; u < U; u++)
          z[j] = (z[j] as number) + (h[u] as number) * (recurrent[u * G + j] as number);
      }
      const a = new Float64Array(G);
      const cNow = new Float64Array(U);
      const hNow = new Float64Array(U);
      for (let u = 0; u < U; u++) {
        a[u] = sigmoid(z[u] as number);
        a[U + u] = sigmoid(z[U + u] as number);
        a[2 * U + u] = Math.tanh(z[2 * U + u] as number);
        a[3 * U + u] = sigmoid(z[3 * U + u] as number);
        cNow[u] = (a[U + u] as number) * (cPrev[u] as number) + (a[u] as number) * (a[2 * U + u] as number);
        hNow[u] = (a[3 * U + u] as number) * Math.tanh(cNow[u] as number);
      }
      gates.push(a);
      cs.push(cNow);
      hs.push(hNow);
      h = hNow;
      cPrev = cNow;
      if (c.sequence) y.set(hNow, (b * T + t) * U);
    }
    if (!c.sequence) y.set(h, b * U);
    // Backward through time.
    let dhNext = new Float64Array(U);
    let dcNext = new Float64Array(U);
    for (let t = T - 1; t >= 0; t--) {
      const a = gates[t] as Float64Array;
      const cNow = cs[t] as Float64Array;
      const cBefore = t > 0 ? (cs[t - 1] as Float64Array) : new Float64Array(U);
      const hBefore = t > 0 ? (hs[t - 1] as Float64Array) : new Float64Array(U);
      const dz = new Float64Array(G);
      const dcBack = new Float64Array(U);
      for (let u = 0; u < U; u++) {
        const dyHere = c.sequence
          ? (dy[(b * T + t) * U + u] as number)
          : t === T - 1
            ? (dy[b * U + u] as number)
            : 0;
        const dh = (dhNext[u] as number) + dyHere;
        const [i, f, g, o] = [a[u], a[U + u], a[2 * U + u], a[3 * U + u]] as number[] as [
          number,
          number,
          number,
          number,
        ];
        const tc = Math.tanh(cNow[u] as number);
        const dc = (dcNext[u] as number) + dh * o * (1 - tc * tc);
        dz[u] = dc * g * i * (1 - i);
        dz[U + u] = dc * (cBefore[u] as number) * f * (1 - f);
        dz[2 * U + u] = dc * i * (1 - g * g);
        dz[3 * U + u] = dh * tc * o * (1 - o);
        dcBack[u] = dc * f;
      }
      const dhBack = new Float64Array(U);
      for (let j = 0; j < G; j++) {
        const d = dz[j] as number;
        db[j] = (db[j] as number) + d;
        for (let f = 0; f < F; f++) {
          const row = (b * T + t) * F + f;
          dk[f * G + j] = (dk[f * G + j] as number) + (x[row] as number) * d;
          dx[row] = (dx[row] as number) + (kernel[f * G + j] as number) * d;
        }
        for (let u = 0; u < U; u++) {
          dr[u * G + j] = (dr[u * G + j] as number) + (hBefore[u] as number) * d;
          dhBack[u] = (dhBack[u] as number) + (recurrent[u * G + j] as number) * d;
        }
      }
      dhNext = dhBack;
      dcNext = dcBack;
    }
  }
  return [y, dx, dk, dr, db];
}

const tensor = (shape: number[], v: Float64Array): TensorValue => ({
  dtype: DT.float32,
  shape,
  data: Float32Array.from(v),
});

/** The case through DescentLstm(Sequence) and DescentLstmGrad in one session. */
export function fusedLstm(addon: GraphAddon, c: LstmCase): LstmValues {
  const { batch: B, steps: T, features: F, units: U } = c;
  const g = new GraphBuilder(new addon.Graph());
  const ph = (shape: number[]) => g.placeholder(DT.float32, shape);
  const [x, kernel, recurrent, bias] = [ph([B, T, F]), ph([F, 4 * U]), ph([U, 4 * U]), ph([4 * U])];
  const dy = ph(c.sequence ? [B, T, U] : [B, U]);
  const type = c.sequence ? 'DescentLstmSequence' : 'DescentLstm';
  const [y, workspace] = g.ops(type, [x, kernel, recurrent, bias] as Output[], [], 2) as [Output, Output];
  const grads = g.ops('DescentLstmGrad', [x, kernel, recurrent, workspace, dy] as Output[], [], 4);
  const session = new addon.Session(g.graph, { intraOpThreads: 1, interOpThreads: 1, xla: false });
  try {
    const inputs = lstmInputs(c);
    const feeds: [Output, TensorValue][] = [
      [x, tensor([B, T, F], inputs.x)],
      [kernel, tensor([F, 4 * U], inputs.kernel)],
      [recurrent, tensor([U, 4 * U], inputs.recurrent)],
      [bias, tensor([4 * U], inputs.bias)],
      [dy, tensor(c.sequence ? [B, T, U] : [B, U], inputs.dy)],
    ];
    const out = session.run(feeds, [y, ...grads] as Output[], []);
    return out.map((v) => Float64Array.from(v.data as Float32Array)) as LstmValues;
  } finally {
    session.close();
  }
}

/** The largest |ours − reference| over each output, relative to that output's largest |reference|. */
export function lstmErrors(ours: LstmValues, reference: LstmValues): number[] {
  return reference.map((ref, k) => {
    const got = ours[k] as Float64Array;
    if (got.length !== ref.length) return Number.POSITIVE_INFINITY;
    let scale = 1e-12;
    let worst = 0;
    for (let i = 0; i < ref.length; i++) {
      scale = Math.max(scale, Math.abs(ref[i] as number));
      worst = Math.max(worst, Math.abs((got[i] as number) - (ref[i] as number)));
    }
    return ref.length === 0 ? 0 : worst / scale;
  });
}

export const caseName = (c: LstmCase) =>
  `B${c.batch} T${c.steps} F${c.features} U${c.units}${c.sequence ? ' sequence' : ''}`;
