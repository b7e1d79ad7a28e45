/**
 * Faster replacements for five wasm kernels (tfjs-backend-wasm 4.22.0) that training spent most of
 * its time in, found by profiling (`npm run bench:train -- --stock --profile`; per call on the
 * shared 2-core dev machine, stock → replaced):
 *
 * - `BatchMatMul` / `_FusedMatMul` with a transpose flag fall off XNNPACK onto a naive loop (~2–3
 *   GFLOP/s against 20–43 without). A dense layer's backward pass is two such products
 *   (dx = dy·Wᵀ, dW = xᵀ·dy): transposing the operand explicitly first (wasm's Transpose, a copy)
 *   and multiplying untransposed keeps them on XNNPACK: [128,784]ᵀ·[128,256] 17.0 → 1.55 ms. This
 *   also fixes the wrong results stock `_FusedMatMul` gives with a bias and a transpose flag.
 * - `Conv2DBackpropInput` is a naive loop (~2.5 GFLOP/s): recast as the convolution it is (dy
 *   spread by the stride and padded, the filter flipped in space with its input and output channels
 *   swapped), one XNNPACK conv2d: dy [64,11,11,32], filter [3,3,16,32] 18.9 → 2.7 ms.
 * - `MaxPoolGrad`: one pass in JS over the wasm heap, channels innermost, with an unrolled path for
 *   2×2 windows of stride 2; the first maximum of each window gets the gradient, as on the cpu
 *   backend (the stock kernel breaks ties otherwise): [64,26,26,16] 9.0 → 1.9 ms.
 * - `GatherV2` on axis 0 (the engine's batch gather) copied element by element: whole rows are
 *   copied with `TypedArray.set` instead: 128 rows of 784, 2.1 → 0.07 ms.
 *
 * Each is checked against the cpu backend in test/unit/wasm-fast-kernels.test.ts. Results are
 * bitwise deterministic (the same inputs give the same bits on every run); they differ from the
 * stock kernels' in the last bits (another summation order). Cases a replacement does not cover
 * (NCHW, batchDims, other axes and dtypes) go to the stock kernel.
 */
import type { KernelConfig, KernelFunc, NamedAttrMap, Tensor, Tensor4D, TensorInfo } from '@tensorflow/tfjs';
import { opKernel, padOrCrop, spreadByStride, type TF } from './wasm-kernels.ts';

/** The parts of tfjs-backend-wasm's `BackendWasm` these kernels use. */
interface WasmBackend {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  /** A view on the wasm heap (valid until the next allocation). */
  typedArrayFromHeap(info: TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: object): boolean;
}

export const WASM_FAST_KERNELS = [
  'BatchMatMul',
  '_FusedMatMul',
  'GatherV2',
  'Conv2DBackpropInput',
  'MaxPoolGrad',
] as const;
type FastKernel = (typeof WASM_FAST_KERNELS)[number];

/** The stock configs replaced, to put back (`restoreStockWasmKernels`, for A/B benchmarks). */
const stock = new Map<FastKernel, KernelConfig>();

/**
 * Replaces the five kernels for the `wasm` backend (idempotent; a kernel wasm does not register
 * is skipped). Works before or after the backend is initialised: each replacement keeps the stock
 * config's `setupFunc`, and calls the stock kernel for the cases it does not cover. Returns the
 * names replaced by this call.
 */
export function registerFastWasmKernels(tf: TF): string[] {
  const replaced: string[] = [];
  for (const name of WASM_FAST_KERNELS) {
    if (stock.has(name)) continue;
    const original = tf.getKernel(name, 'wasm');
    if (original == null) continue;
    const kernelFunc = makeFast(tf, name, original.kernelFunc);
    stock.set(name, original);
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...original, kernelFunc });
    replaced.push(name);
  }
  return replaced;
}

/** Puts the stock kernels back (benchmarks compare both in one process). */
export function restoreStockWasmKernels(tf: TF): void {
  for (const [name, config] of stock) {
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(config);
  }
  stock.clear();
}

function makeFast(tf: TF, name: FastKernel, original: KernelFunc): KernelFunc {
  switch (name) {
    case 'BatchMatMul':
    case '_FusedMatMul':
      return untransposedMatMul(tf, original);
    case 'GatherV2':
      return rowGather(tf, original);
    case 'Conv2DBackpropInput': {
      const fast = opKernel(tf, (inputs, attrs) => conv2DBackpropInput(tf, inputs, attrs));
      return (args) => ((args.attrs?.dataFormat ?? 'NHWC') === 'NHWC' ? fast(args) : original(args));
    }
    case 'MaxPoolGrad':
      return (args) => maxPoolGrad(tf, args);
  }
}

/** Transposes the last two axes with wasm's own Transpose kernel; the caller disposes the result. */
function swapLastTwo(tf: TF, backend: WasmBackend, t: TensorInfo): TensorInfo {
  const rank = t.shape.length;
  const perm = [...Array(rank - 2).keys(), rank - 1, rank - 2];
  const transpose = tf.getKernel('Transpose', 'wasm')?.kernelFunc;
  if (!transpose) throw new Error('wasm Transpose kernel missing');
  return transpose({ inputs: { x: t }, backend: backend as never, attrs: { perm } }) as TensorInfo;
}

function untransposedMatMul(tf: TF, original: KernelFunc): KernelFunc {
  return (args) => {
    const attrs = (args.attrs ?? {}) as NamedAttrMap & { transposeA?: boolean; transposeB?: boolean };
    if (!attrs.transposeA && !attrs.transposeB) return original(args);
    const backend = args.backend as unknown as WasmBackend;
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const temps: TensorInfo[] = [];
    const swap = (t: TensorInfo) => {
      const out = swapLastTwo(tf, backend, t);
      temps.push(out);
      return out;
    };
    try {
      const aN = attrs.transposeA ? swap(a) : a;
      const bN = attrs.transposeB ? swap(b) : b;
      return original({
        ...args,
        inputs: { ...args.inputs, a: aN, b: bN },
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
}

const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function rowGather(tf: TF, original: KernelFunc): KernelFunc {
  return (args) => {
    const { x, indices } = args.inputs as { x: TensorInfo; indices: TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as { axis: number | number[]; batchDims?: number };
    const parsed = tf.util.parseAxisParam(axis, x.shape)[0];
    if (
      parsed !== 0 ||
      (batchDims ?? 0) !== 0 ||
      indices.dtype !== 'int32' ||
      !['float32', 'int32', 'bool'].includes(x.dtype)
    ) {
      return original(args);
    }
    const backend = args.backend as unknown as WasmBackend;
    const rows = x.shape[0] as number;
    const inner = x.shape.slice(1);
    const width = sizeOf(inner);
    const out = backend.makeOutput([...indices.shape, ...inner], x.dtype);
    const count = sizeOf(indices.shape);
    if (count === 0 || width === 0) return out;
    // Views after the allocation: a growing heap detaches earlier ones.
    const idx = backend.typedArrayFromHeap(indices) as Int32Array;
    const src = backend.typedArrayFromHeap(x);
    const dst = backend.typedArrayFromHeap(out);
    for (let i = 0; i < count; i++) {
      const r = idx[i] as number;
      if (!(r >= 0 && r < rows)) {
        backend.disposeData(out.dataId);
        throw new Error(`GatherV2: the index value ${r} is not in [0, ${rows - 1}]`);
      }
      dst.set(src.subarray(r * width, r * width + width), i * width);
    }
    return out;
  };
}

type Pad =
  | 'valid'
  | 'same'
  | number
  | [[number, number], [number, number], [number, number], [number, number]];
type Pair = number | [number, number];
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

/**
 * dx[n, y, x, c] = Σ dy[n, oy, ox, f] · W[ky, kx, c, f] over oy·s + ky − pad = y: the full
 * correlation of dy (zeros between rows/columns for a stride > 1, padded by filter − 1 − pad)
 * with W flipped in space and transposed to [kh, kw, F, C]. One stride-1 forward convolution.
 */
function conv2DBackpropInput(tf: TF, inputs: Record<string, Tensor>, attrs: NamedAttrMap): Tensor {
  const { strides, pad, dimRoundingMode, inputShape } = attrs as unknown as {
    strides: Pair;
    pad: Pad;
    dimRoundingMode?: Rounding;
    inputShape: [number, number, number, number];
  };
  const dy = inputs.dy as Tensor4D;
  const filter = inputs.filter as Tensor4D;
  const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape, strides, 1, pad, dimRoundingMode);
  const [, h, w] = inputShape;
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, padInfo } = info;
  const up = spreadByStride(tf, dy, sh, sw);
  const top = kh - 1 - padInfo.top;
  const left = kw - 1 - padInfo.left;
  const bottom = h + kh - 1 - top - up.shape[1];
  const right = w + kw - 1 - left - up.shape[2];
  const padded = padOrCrop(tf, up, top, bottom, left, right);
  const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as Tensor4D;
  return tf.conv2d(padded, flipped, 1, 'valid');
}

/**
 * For each output, the first maximum of its window (scanning rows, then columns, as the cpu
 * backend does) receives dy; windows that overlap add up. NHWC, float32.
 */
function maxPoolGrad(tf: TF, { inputs, attrs, backend: b }: Parameters<KernelFunc>[0]): TensorInfo {
  const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as {
    filterSize: Pair;
    strides: Pair;
    pad: Pad;
    dimRoundingMode?: Rounding;
  };
  const backend = b as unknown as WasmBackend;
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad as 'valid',
    dimRoundingMode,
  );
  const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth } = info;
  const { strideHeight, strideWidth, effectiveFilterHeight: fh, effectiveFilterWidth: fw, padInfo } = info;
  const out = backend.makeOutput(input.shape, 'float32');
  const x = backend.typedArrayFromHeap(input) as Float32Array;
  const g = backend.typedArrayFromHeap(dy) as Float32Array;
  const dx = backend.typedArrayFromHeap(out) as Float32Array;
  dx.fill(0);
  const common2x2 =
    fh === 2 &&
    fw === 2 &&
    strideHeight === 2 &&
    strideWidth === 2 &&
    padInfo.top === 0 &&
    padInfo.left === 0 &&
    outHeight * 2 <= inHeight &&
    outWidth * 2 <= inWidth;
  if (common2x2) {
    maxPoolGrad2x2(x, g, dx, batchSize, inHeight, inWidth, c, outHeight, outWidth);
    return out;
  }
  const best = new Float32Array(c);
  const at = new Int32Array(c);
  for (let n = 0; n < batchSize; n++) {
    for (let yR = 0; yR < outHeight; yR++) {
      const r0 = yR * strideHeight - padInfo.top;
      const rMin = Math.max(0, r0);
      const rMax = Math.min(inHeight, r0 + fh);
      for (let yC = 0; yC < outWidth; yC++) {
        const c0 = yC * strideWidth - padInfo.left;
        const cMin = Math.max(0, c0);
        const cMax = Math.min(inWidth, c0 + fw);
        best.fill(Number.NEGATIVE_INFINITY);
        at.fill(-1);
        for (let r = rMin; r < rMax; r++) {
          for (let col = cMin; col < cMax; col++) {
            const base = ((n * inHeight + r) * inWidth + col) * c;
            for (let d = 0; d < c; d++) {
              const v = x[base + d] as number;
              if (v > (best[d] as number)) {
                best[d] = v;
                at[d] = base + d;
              }
            }
          }
        }
        const gBase = ((n * outHeight + yR) * outWidth + yC) * c;
        for (let d = 0; d < c; d++) {
          const p = at[d] as number;
          if (p >= 0) dx[p] = (dx[p] as number) + (g[gBase + d] as number);
        }
      }
    }
  }
  return out;
}

/** The common case (2×2 windows, stride 2, no padding), unrolled: ~25% faster than the general loop. */
function maxPoolGrad2x2(
  x: Float32Array,
  g: Float32Array,
  dx: Float32Array,
  batchSize: number,
  inHeight: number,
  inWidth: number,
  c: number,
  outHeight: number,
  outWidth: number,
): void {
  const row = inWidth * c;
  let gi = 0;
  for (let n = 0; n < batchSize; n++) {
    for (let yR = 0; yR < outHeight; yR++) {
      let p00 = (n * inHeight + 2 * yR) * row;
      for (let yC = 0; yC < outWidth; yC++, p00 += 2 * c) {
        const p01 = p00 + c;
        const p10 = p00 + row;
        const p11 = p10 + c;
        for (let d = 0; d < c; d++, gi++) {
          // Rows, then columns; strictly greater: the first maximum wins, NaN never does (as on cpu).
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          let v = x[p00 + d] as number;
          if (v > best) {
            best = v;
            at = p00 + d;
          }
          v = x[p01 + d] as number;
          if (v > best) {
            best = v;
            at = p01 + d;
          }
          v = x[p10 + d] as number;
          if (v > best) {
            best = v;
            at = p10 + d;
          }
          v = x[p11 + d] as number;
          if (v > best) at = p11 + d;
          if (at >= 0) dx[at] = (dx[at] as number) + (g[gi] as number);
        }
      }
    }
  }
}
