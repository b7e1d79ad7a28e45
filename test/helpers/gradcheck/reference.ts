/**
 * A float64 reference, in plain JS, of every layer, activation and loss a job spec can ask for:
 * the function the gradient check differentiates by finite differences. Arrays are row-major, as
 * tfjs lays them out; shapes include the batch. Each function mirrors what TensorFlow.js 4.22 and
 * tfjs-layers compute (and Keras documents): gate orders, padding arithmetic, batch statistics.
 */
import type { LossName } from '../../../core/jobs/job-spec.ts';

export interface Arr {
  shape: number[];
  data: Float64Array;
}

export const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
export const arr = (shape: number[], data?: ArrayLike<number>): Arr => ({
  shape,
  data: data ? Float64Array.from(data) : new Float64Array(sizeOf(shape)),
});

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const softplus = (v: number) => (v > 30 ? v : Math.log1p(Math.exp(v)));
const SELU_ALPHA = 1.6732632423543772;
const SELU_SCALE = 1.0507009873554805;

/** Element-wise activations; softmax is over the last axis. */
export function activate(name: string, a: Arr): Arr {
  if (name === 'softmax') {
    const k = a.shape[a.shape.length - 1] as number;
    const out = arr(a.shape);
    for (let row = 0; row < a.data.length; row += k) {
      let max = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < k; j++) max = Math.max(max, a.data[row + j] as number);
      let sum = 0;
      for (let j = 0; j < k; j++) sum += Math.exp((a.data[row + j] as number) - max);
      for (let j = 0; j < k; j++) out.data[row + j] = Math.exp((a.data[row + j] as number) - max) / sum;
    }
    return out;
  }
  const f = ELEMENTWISE[name];
  if (!f) throw new Error(`reference: no activation ${name}`);
  return { shape: a.shape, data: a.data.map(f) };
}

const ELEMENTWISE: Record<string, (v: number) => number> = {
  linear: (v) => v,
  relu: (v) => Math.max(0, v),
  relu6: (v) => Math.min(6, Math.max(0, v)),
  elu: (v) => (v > 0 ? v : Math.expm1(v)),
  selu: (v) => SELU_SCALE * (v > 0 ? v : SELU_ALPHA * Math.expm1(v)),
  sigmoid,
  hardSigmoid: (v) => Math.min(1, Math.max(0, 0.2 * v + 0.5)),
  tanh: Math.tanh,
  softplus,
  softsign: (v) => v / (1 + Math.abs(v)),
  swish: (v) => v * sigmoid(v),
  mish: (v) => v * Math.tanh(softplus(v)),
};
export const REFERENCE_ACTIVATIONS = [...Object.keys(ELEMENTWISE), 'softmax'];

/** x [..., F] · kernel [F, U] + bias [U]. */
export function dense(x: Arr, kernel: Arr, bias: Arr | undefined): Arr {
  const [f, u] = kernel.shape as [number, number];
  const rows = x.data.length / f;
  const out = arr([...x.shape.slice(0, -1), u]);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < u; j++) {
      let s = bias ? (bias.data[j] as number) : 0;
      for (let i = 0; i < f; i++) s += (x.data[r * f + i] as number) * (kernel.data[i * u + j] as number);
      out.data[r * u + j] = s;
    }
  }
  return out;
}

/** Output length and padding in front along one axis, as TensorFlow computes them. */
export function window1d(
  length: number,
  size: number,
  stride: number,
  dilation: number,
  padding: 'valid' | 'same' | [number, number],
): { out: number; before: number } {
  const effective = (size - 1) * dilation + 1;
  if (Array.isArray(padding)) {
    return {
      out: Math.floor((length + padding[0] + padding[1] - effective) / stride) + 1,
      before: padding[0],
    };
  }
  if (padding === 'valid') return { out: Math.ceil((length - effective + 1) / stride), before: 0 };
  const out = Math.ceil(length / stride);
  const total = Math.max((out - 1) * stride + effective - length, 0);
  return { out, before: Math.floor(total / 2) };
}

export interface ConvOptions {
  strides: [number, number];
  dilations: [number, number];
  padding: 'valid' | 'same';
}

/** x [n, H, W, C] ⋆ kernel [kh, kw, C, F] + bias [F] → [n, OH, OW, F] (cross-correlation). */
export function conv2d(x: Arr, kernel: Arr, bias: Arr | undefined, o: ConvOptions): Arr {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const [kh, kw, , f] = kernel.shape as [number, number, number, number];
  const rows = window1d(h, kh, o.strides[0], o.dilations[0], o.padding);
  const cols = window1d(w, kw, o.strides[1], o.dilations[1], o.padding);
  const out = arr([n, rows.out, cols.out, f]);
  let p = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < rows.out; oy++) {
      for (let ox = 0; ox < cols.out; ox++) {
        for (let k = 0; k < f; k++, p++) {
          let s = bias ? (bias.data[k] as number) : 0;
          for (let i = 0; i < kh; i++) {
            const y = oy * o.strides[0] + i * o.dilations[0] - rows.before;
            if (y < 0 || y >= h) continue;
            for (let j = 0; j < kw; j++) {
              const xx = ox * o.strides[1] + j * o.dilations[1] - cols.before;
              if (xx < 0 || xx >= w) continue;
              const xBase = ((b * h + y) * w + xx) * c;
              const kBase = (i * kw + j) * c * f + k;
              for (let ch = 0; ch < c; ch++) {
                s += (x.data[xBase + ch] as number) * (kernel.data[kBase + ch * f] as number);
              }
            }
          }
          out.data[p] = s;
        }
      }
    }
  }
  return out;
}

/** Depthwise: x [n, H, W, C], filter [kh, kw, C, M] → [n, OH, OW, C·M]; explicit pads allowed. */
export function depthwiseConv2d(
  x: Arr,
  filter: Arr,
  o: { strides: [number, number]; dilations: [number, number]; padding: 'valid' | 'same' },
): Arr {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const [kh, kw, , m] = filter.shape as [number, number, number, number];
  const rows = window1d(h, kh, o.strides[0], o.dilations[0], o.padding);
  const cols = window1d(w, kw, o.strides[1], o.dilations[1], o.padding);
  const out = arr([n, rows.out, cols.out, c * m]);
  let p = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < rows.out; oy++) {
      for (let ox = 0; ox < cols.out; ox++) {
        for (let ch = 0; ch < c; ch++) {
          for (let q = 0; q < m; q++, p++) {
            let s = 0;
            for (let i = 0; i < kh; i++) {
              const y = oy * o.strides[0] + i * o.dilations[0] - rows.before;
              if (y < 0 || y >= h) continue;
              for (let j = 0; j < kw; j++) {
                const xx = ox * o.strides[1] + j * o.dilations[1] - cols.before;
                if (xx < 0 || xx >= w) continue;
                s +=
                  (x.data[((b * h + y) * w + xx) * c + ch] as number) *
                  (filter.data[((i * kw + j) * c + ch) * m + q] as number);
              }
            }
            out.data[p] = s;
          }
        }
      }
    }
  }
  return out;
}

/**
 * Max or average pooling, x [n, H, W, C]. Padding (string or explicit [before, after] per axis)
 * never takes part: a max is over the cells inside the input, an average divides by their count
 * (TensorFlow's definition, and what the tfjs forward kernels compute).
 */
export function pool2d(
  x: Arr,
  kind: 'max' | 'avg',
  size: [number, number],
  strides: [number, number],
  padding: 'valid' | 'same' | [[number, number], [number, number]],
): Arr {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const rows = window1d(h, size[0], strides[0], 1, Array.isArray(padding) ? padding[0] : padding);
  const cols = window1d(w, size[1], strides[1], 1, Array.isArray(padding) ? padding[1] : padding);
  const out = arr([n, rows.out, cols.out, c]);
  let p = 0;
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < rows.out; oy++) {
      const y0 = oy * strides[0] - rows.before;
      for (let ox = 0; ox < cols.out; ox++) {
        const x0 = ox * strides[1] - cols.before;
        for (let ch = 0; ch < c; ch++, p++) {
          let acc = kind === 'max' ? Number.NEGATIVE_INFINITY : 0;
          let count = 0;
          for (let y = Math.max(0, y0); y < Math.min(h, y0 + size[0]); y++) {
            for (let xx = Math.max(0, x0); xx < Math.min(w, x0 + size[1]); xx++) {
              const v = x.data[((b * h + y) * w + xx) * c + ch] as number;
              acc = kind === 'max' ? Math.max(acc, v) : acc + v;
              count++;
            }
          }
          out.data[p] = kind === 'max' ? acc : acc / count;
        }
      }
    }
  }
  return out;
}

/** Average pooling in 3-D, x [n, D, H, W, C], dividing by the cells inside the input. */
export function avgPool3d(
  x: Arr,
  size: [number, number, number],
  strides: [number, number, number],
  padding: 'valid' | 'same',
): Arr {
  const [n, d, h, w, c] = x.shape as [number, number, number, number, number];
  const axes = [d, h, w].map((length, a) =>
    window1d(length, size[a] as number, strides[a] as number, 1, padding),
  );
  const [dz, dy, dx] = axes as [
    { out: number; before: number },
    { out: number; before: number },
    { out: number; before: number },
  ];
  const out = arr([n, dz.out, dy.out, dx.out, c]);
  let p = 0;
  for (let b = 0; b < n; b++) {
    for (let oz = 0; oz < dz.out; oz++) {
      for (let oy = 0; oy < dy.out; oy++) {
        for (let ox = 0; ox < dx.out; ox++) {
          for (let ch = 0; ch < c; ch++, p++) {
            const z0 = oz * strides[0] - dz.before;
            const y0 = oy * strides[1] - dy.before;
            const x0 = ox * strides[2] - dx.before;
            let sum = 0;
            let count = 0;
            for (let z = Math.max(0, z0); z < Math.min(d, z0 + size[0]); z++) {
              for (let y = Math.max(0, y0); y < Math.min(h, y0 + size[1]); y++) {
                for (let xx = Math.max(0, x0); xx < Math.min(w, x0 + size[2]); xx++) {
                  sum += x.data[(((b * d + z) * h + y) * w + xx) * c + ch] as number;
                  count++;
                }
              }
            }
            out.data[p] = sum / count;
          }
        }
      }
    }
  }
  return out;
}

/** Batch normalisation in training mode: statistics over every axis but the last (biased variance). */
export function batchNormTraining(x: Arr, gamma: Arr, beta: Arr, epsilon: number): Arr {
  const c = x.shape[x.shape.length - 1] as number;
  const rows = x.data.length / c;
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < c; k++) mean[k] = (mean[k] as number) + (x.data[r * c + k] as number) / rows;
  }
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < c; k++) {
      const dev = (x.data[r * c + k] as number) - (mean[k] as number);
      variance[k] = (variance[k] as number) + (dev * dev) / rows;
    }
  }
  const out = arr(x.shape);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < c; k++) {
      const normed =
        ((x.data[r * c + k] as number) - (mean[k] as number)) / Math.sqrt((variance[k] as number) + epsilon);
      out.data[r * c + k] = (gamma.data[k] as number) * normed + (beta.data[k] as number);
    }
  }
  return out;
}

export const multiply = (a: Arr, mask: Arr): Arr => ({
  shape: a.shape,
  data: a.data.map((v, i) => v * (mask.data[i % mask.data.length] as number)),
});

export interface RecurrentWeights {
  kernel: Arr;
  recurrentKernel: Arr;
  bias: Arr | undefined;
  activation: string;
  recurrentActivation: string;
  returnSequences: boolean;
  /** The input dropout mask [n, F] (already scaled by 1 / (1 − rate)), the same at every step. */
  mask?: Arr;
}

const act1 = (name: string, v: Float64Array) => activate(name, { shape: [v.length], data: v }).data;

/**
 * LSTM (tfjs-layers, implementation 2): z = x·W + h·U + b split into gates i, f, c̃, o;
 * c = f∘c + i∘act(c̃); h = o∘act(c). x [n, T, F] → [n, T, U] or the last h [n, U].
 */
export function lstm(x: Arr, p: RecurrentWeights): Arr {
  const [n, steps, f] = x.shape as [number, number, number];
  const u = (p.recurrentKernel.shape[0] as number) | 0;
  const out = arr(p.returnSequences ? [n, steps, u] : [n, u]);
  for (let b = 0; b < n; b++) {
    let h = new Float64Array(u);
    let c = new Float64Array(u);
    for (let t = 0; t < steps; t++) {
      const xt = stepInput(x, p.mask, b, t, f);
      const z = new Float64Array(4 * u);
      for (let j = 0; j < 4 * u; j++) {
        let s = p.bias ? (p.bias.data[j] as number) : 0;
        for (let i = 0; i < f; i++) s += (xt[i] as number) * (p.kernel.data[i * 4 * u + j] as number);
        for (let i = 0; i < u; i++) s += (h[i] as number) * (p.recurrentKernel.data[i * 4 * u + j] as number);
        z[j] = s;
      }
      const ig = act1(p.recurrentActivation, z.slice(0, u));
      const fg = act1(p.recurrentActivation, z.slice(u, 2 * u));
      const cc = act1(p.activation, z.slice(2 * u, 3 * u));
      const og = act1(p.recurrentActivation, z.slice(3 * u));
      c = c.map((cv, k) => (fg[k] as number) * cv + (ig[k] as number) * (cc[k] as number));
      const ac = act1(p.activation, c);
      h = og.map((ov, k) => ov * (ac[k] as number));
      if (p.returnSequences) out.data.set(h, (b * steps + t) * u);
    }
    if (!p.returnSequences) out.data.set(h, b * u);
  }
  return out;
}

/**
 * GRU (tfjs-layers: Keras's `reset_after = false`): gates z, r from x·W + b + h·U[:, :2U];
 * h̃ = act(x·W_h + b_h + (r∘h)·U_h); h = z∘h + (1 − z)∘h̃.
 */
export function gru(x: Arr, p: RecurrentWeights): Arr {
  const [n, steps, f] = x.shape as [number, number, number];
  const u = p.recurrentKernel.shape[0] as number;
  const out = arr(p.returnSequences ? [n, steps, u] : [n, u]);
  for (let b = 0; b < n; b++) {
    let h = new Float64Array(u);
    for (let t = 0; t < steps; t++) {
      const xt = stepInput(x, p.mask, b, t, f);
      const mx = new Float64Array(3 * u);
      for (let j = 0; j < 3 * u; j++) {
        let s = p.bias ? (p.bias.data[j] as number) : 0;
        for (let i = 0; i < f; i++) s += (xt[i] as number) * (p.kernel.data[i * 3 * u + j] as number);
        mx[j] = s;
      }
      const inner = new Float64Array(2 * u);
      for (let j = 0; j < 2 * u; j++) {
        let s = 0;
        for (let i = 0; i < u; i++) s += (h[i] as number) * (p.recurrentKernel.data[i * 3 * u + j] as number);
        inner[j] = s;
      }
      const z = act1(
        p.recurrentActivation,
        mx.slice(0, u).map((v, k) => v + (inner[k] as number)),
      );
      const r = act1(
        p.recurrentActivation,
        mx.slice(u, 2 * u).map((v, k) => v + (inner[u + k] as number)),
      );
      const rh = h.map((v, k) => v * (r[k] as number));
      const pre = new Float64Array(u);
      for (let j = 0; j < u; j++) {
        let s = mx[2 * u + j] as number;
        for (let i = 0; i < u; i++)
          s += (rh[i] as number) * (p.recurrentKernel.data[i * 3 * u + 2 * u + j] as number);
        pre[j] = s;
      }
      const hh = act1(p.activation, pre);
      h = h.map((v, k) => (z[k] as number) * v + (1 - (z[k] as number)) * (hh[k] as number));
      if (p.returnSequences) out.data.set(h, (b * steps + t) * u);
    }
    if (!p.returnSequences) out.data.set(h, b * u);
  }
  return out;
}

function stepInput(x: Arr, mask: Arr | undefined, b: number, t: number, f: number): Float64Array {
  const steps = x.shape[1] as number;
  const xt = x.data.slice((b * steps + t) * f, (b * steps + t + 1) * f);
  if (mask) for (let i = 0; i < f; i++) xt[i] = (xt[i] as number) * (mask.data[b * f + i] as number);
  return xt;
}

/** ids [n, ...] (integers held as floats) → [n, ..., D] rows of the table [V, D]. */
export function embedding(ids: Arr, table: Arr): Arr {
  const d = table.shape[1] as number;
  const out = arr([...ids.shape, d]);
  ids.data.forEach((id, i) => {
    out.data.set(table.data.subarray(id * d, id * d + d), i * d);
  });
  return out;
}

const EPS = 1e-7;
const clip = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** Per-row losses (trainer/losses.ts): y [n, k]. */
export function rowLosses(name: LossName, yTrue: Arr, yPred: Arr): Float64Array {
  const k = yTrue.shape[1] as number;
  const n = yTrue.shape[0] as number;
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = 0; j < k; j++) {
      const t = yTrue.data[r * k + j] as number;
      const p = yPred.data[r * k + j] as number;
      switch (name) {
        case 'categoricalCrossentropy':
        case 'sparseCategoricalCrossentropy':
          s -= t * Math.log(clip(p, EPS, 1 - EPS));
          break;
        case 'binaryCrossentropy': {
          const q = clip(p, EPS, 1 - EPS);
          s -= (t * Math.log(q) + (1 - t) * Math.log(1 - q)) / k;
          break;
        }
        case 'meanSquaredError':
          s += (t - p) ** 2 / k;
          break;
        case 'meanAbsoluteError':
          s += Math.abs(t - p) / k;
          break;
        case 'huber': {
          const e = Math.abs(t - p);
          const q = Math.min(e, 1);
          s += (0.5 * q * q + (e - q)) / k;
          break;
        }
      }
    }
    out[r] = s;
  }
  return out;
}

/** The mean of the row losses, each times its row weight when given. */
export function meanLoss(name: LossName, yTrue: Arr, yPred: Arr, weights?: Arr): number {
  const rows = rowLosses(name, yTrue, yPred);
  let s = 0;
  rows.forEach((v, i) => {
    s += weights ? v * (weights.data[i] as number) : v;
  });
  return s / rows.length;
}

/** l1·Σ|w| + l2·Σw² (tf.regularizers.l1l2). */
export function penalty(w: Arr, r: { l1?: number | undefined; l2?: number | undefined }): number {
  let s = 0;
  for (const v of w.data) s += (r.l1 ?? 0) * Math.abs(v) + (r.l2 ?? 0) * v * v;
  return s;
}
