/**
 * Gradient kernels the wasm backend lacks (tfjs-backend-wasm 4.22.0), so that conv1d/conv2d,
 * depthwiseConv2d (and separableConv2d) and embedding layers can train on wasm. Each is written
 * with tfjs ops that wasm runs natively: both filter gradients are recast as one forward
 * (XNNPACK) convolution with the batch as the contracted channel axis, the depthwise input
 * gradient as a depthwise convolution with the flipped filter, and UnsortedSegmentSum is one
 * pass in JS over the data.
 *
 * Tensor ownership: the engine accepts a kernel output that is already a `Tensor` (it checks
 * `rank != null` and uses it as is, the path tfjs-node takes) instead of wrapping a TensorInfo
 * in a new Tensor. So each kernel computes its result inside `tf.tidy`, which disposes every
 * intermediate and hands over the result tracked once in the caller's scope: exactly what a
 * native kernel output looks like (one tensor, backend refCount 1). Ops run inside a kernel are
 * not recorded on the gradient tape (the engine's kernelDepth is > 0 there).
 *
 * Note: the cpu backend's depthwise gradient kernels ignore `dilations` (wrong for > 1; the
 * depthwise gradient refuses dilations > 1 anyway); these honour them.
 */
import type {
  KernelBackend,
  KernelFunc,
  NamedAttrMap,
  NamedTensorInfoMap,
  Tensor,
  Tensor4D,
  TensorInfo,
} from '@tensorflow/tfjs';

export type TF = typeof import('@tensorflow/tfjs');

type Pad =
  | 'valid'
  | 'same'
  | number
  | [[number, number], [number, number], [number, number], [number, number]];
type Pair = number | [number, number];
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

/** The kernels this module provides, in registration order. */
export const WASM_MISSING_KERNELS = [
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'UnsortedSegmentSum',
] as const;

/**
 * Registers the missing kernels for the `wasm` backend, skipping any already registered (so it
 * is idempotent, and a future tfjs version's native kernel wins). Returns the names it
 * registered. Works before or after the wasm backend is initialised.
 */
export function registerMissingWasmKernels(tf: TF): string[] {
  const funcs: Record<(typeof WASM_MISSING_KERNELS)[number], KernelFunc> = {
    Conv2DBackpropFilter: opKernel(tf, (inputs, attrs) => conv2DBackpropFilter(tf, inputs, attrs)),
    DepthwiseConv2dNativeBackpropFilter: opKernel(tf, (inputs, attrs) =>
      depthwiseBackpropFilter(tf, inputs, attrs),
    ),
    DepthwiseConv2dNativeBackpropInput: opKernel(tf, (inputs, attrs) =>
      depthwiseBackpropInput(tf, inputs, attrs),
    ),
    UnsortedSegmentSum: (args) => unsortedSegmentSum(tf, args),
  };
  const registered: string[] = [];
  for (const kernelName of WASM_MISSING_KERNELS) {
    if (tf.getKernel(kernelName, 'wasm') != null) continue;
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: funcs[kernelName] });
    registered.push(kernelName);
  }
  return registered;
}

/**
 * Adapts a function of Tensors to a kernel. Inputs from `runKernel` are Tensors already; a bare
 * TensorInfo (a kernel calling another) is wrapped in a temporary Tensor that holds its own
 * backend reference, released afterwards. The result is returned as a Tensor (see above).
 */
export function opKernel(
  tf: TF,
  body: (inputs: Record<string, Tensor>, attrs: NamedAttrMap) => Tensor,
): KernelFunc {
  return ({ inputs, attrs, backend: b }) => {
    const backend = b as KernelBackend;
    const tensors: Record<string, Tensor> = {};
    const wrappers: Tensor[] = [];
    for (const [name, info] of Object.entries(inputs as NamedTensorInfoMap)) {
      if (info == null) continue;
      if (info instanceof tf.Tensor) {
        tensors[name] = info;
      } else {
        backend.incRef(info.dataId);
        const t = tf.engine().makeTensorFromTensorInfo(info, backend);
        wrappers.push(t);
        tensors[name] = t;
      }
    }
    try {
      return tf.tidy(() => {
        const out = body(tensors, attrs ?? {});
        // The engine would hand the very object to the caller: never one of the inputs.
        return Object.values(tensors).includes(out) ? tf.clone(out) : out;
      });
    } finally {
      for (const t of wrappers) t.dispose();
    }
  };
}

function nhwc(tf: TF, t: Tensor, dataFormat: unknown): Tensor4D {
  return (dataFormat === 'NCHW' ? tf.transpose(t, [0, 2, 3, 1]) : t) as Tensor4D;
}

/**
 * Spreads a strided gradient [n, oh, ow, c] back onto the input grid: each value followed by
 * `sh − 1` zero rows and `sw − 1` zero columns, [n, oh·sh, ow·sw, c]. (The input gradient of a strided
 * convolution is then a stride-1 convolution of this.)
 */
export function spreadByStride(tf: TF, dy: Tensor4D, sh: number, sw: number): Tensor4D {
  if (sh === 1 && sw === 1) return dy;
  const [n, oh, ow, c] = dy.shape;
  const spread = tf.pad(tf.reshape(dy, [n, oh, 1, ow, 1, c]), [
    [0, 0],
    [0, 0],
    [0, sh - 1],
    [0, 0],
    [0, sw - 1],
    [0, 0],
  ]);
  return tf.reshape(spread, [n, oh * sh, ow * sw, c]);
}

/** Zero-pads (or crops, for negative amounts) axes 1 and 2 of an NHWC tensor. */
export function padOrCrop(
  tf: TF,
  x: Tensor4D,
  top: number,
  bottom: number,
  left: number,
  right: number,
): Tensor4D {
  let t = x;
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    const [n, h, w, c] = t.shape;
    const [t0, l0] = [Math.max(0, -top), Math.max(0, -left)];
    const size = [n, h - t0 - Math.max(0, -bottom), w - l0 - Math.max(0, -right), c];
    t = tf.slice(t, [0, t0, l0, 0], size);
  }
  const [pt, pb, pl, pr] = [Math.max(0, top), Math.max(0, bottom), Math.max(0, left), Math.max(0, right)];
  if (pt + pb + pl + pr === 0) return t;
  return tf.pad(t, [
    [0, 0],
    [pt, pb],
    [pl, pr],
    [0, 0],
  ]);
}

type ConvInfo = ReturnType<TF['backend_util']['computeConv2DInfo']>;

/**
 * x as the forward convolution read it: padded as it was, then cut (or zero-extended, for
 * `dimRoundingMode: 'ceil'`) to exactly the rows and columns the outputs reached:
 * (out − 1)·stride + (filter − 1)·dilation + 1.
 */
export function forwardWindow(tf: TF, x: Tensor4D, info: ConvInfo): Tensor4D {
  const { outHeight, outWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const { filterHeight, filterWidth, padInfo } = info;
  const needH = (outHeight - 1) * strideHeight + (filterHeight - 1) * dilationHeight + 1;
  const needW = (outWidth - 1) * strideWidth + (filterWidth - 1) * dilationWidth + 1;
  const [, h, w] = x.shape;
  return padOrCrop(tf, x, padInfo.top, needH - h - padInfo.top, padInfo.left, needW - w - padInfo.left);
}

/**
 * dW[i, j, c, f] = Σ_{n, oh, ow} xpad[n, oh·sh + i, ow·sw + j, c] · dy[n, oh, ow, f] is itself a
 * convolution, with the batch as the contracted channel axis: input xpad as [C, H, W, N],
 * filter dy as [OH, OW, N, F], stride 1, dilation = the forward stride, output [C, KH, KW, F].
 * One native XNNPACK convolution; no per-offset slices (wasm's strided slice is slow).
 */
function conv2DBackpropFilter(tf: TF, inputs: Record<string, Tensor>, attrs: NamedAttrMap): Tensor {
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as {
    strides: Pair;
    pad: Pad;
    dataFormat?: 'NHWC' | 'NCHW';
    dimRoundingMode?: Rounding;
    filterShape: [number, number, number, number];
  };
  const x = nhwc(tf, inputs.x as Tensor, dataFormat);
  const dy = nhwc(tf, inputs.dy as Tensor, dataFormat);
  const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad, dimRoundingMode);
  const xT = tf.transpose(forwardWindow(tf, x, info), [3, 1, 2, 0]);
  const dyT = tf.transpose(dy, [1, 2, 0, 3]);
  const dW = tf.conv2d(xT, dyT, 1, 'valid', 'NHWC', [info.strideHeight, info.strideWidth]);
  return tf.transpose(dW, [1, 2, 0, 3]);
}

/**
 * The depthwise analogue: with batch and channel merged into N·C channels, the filter gradient
 * is a depthwise convolution of xpad [1, H, W, N·C] with dy as the filter [OH, OW, N·C, Q]
 * (stride = forward dilation, dilation = forward stride), summed over N afterwards.
 */
function depthwiseBackpropFilter(tf: TF, inputs: Record<string, Tensor>, attrs: NamedAttrMap): Tensor {
  const { strides, pad, dilations, dimRoundingMode, filterShape } = attrs as unknown as {
    strides: Pair;
    pad: Pad;
    dilations?: Pair;
    dimRoundingMode?: Rounding;
    filterShape: [number, number, number, number];
  };
  const x = inputs.x as Tensor4D;
  const dy = inputs.dy as Tensor4D;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape,
    filterShape,
    strides,
    dilations ?? 1,
    pad,
    dimRoundingMode,
    true,
  );
  const [n, , , c] = x.shape;
  const [kh, kw, , q] = filterShape;
  const win = forwardWindow(tf, x, info);
  const xT = tf.reshape(tf.transpose(win, [1, 2, 0, 3]), [1, win.shape[1], win.shape[2], n * c]);
  const dyT = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [info.outHeight, info.outWidth, n * c, q]);
  // runKernel rather than tf.depthwiseConv2d: the op refuses strides and dilations both > 1,
  // which happens here only when the forward convolution had both (XNNPACK handles it).
  const dW = tf.engine().runKernel(
    'DepthwiseConv2dNative',
    { x: xT, filter: dyT },
    {
      strides: [info.dilationHeight, info.dilationWidth],
      dilations: [info.strideHeight, info.strideWidth],
      pad: 'valid',
      dataFormat: 'NHWC',
    },
  ) as Tensor;
  return n === 1 ? tf.reshape(dW, [kh, kw, c, q]) : tf.sum(tf.reshape(dW, [kh, kw, n, c, q]), 2);
}

/**
 * dx is the adjoint of the strided, dilated depthwise convolution: dy spread out by the stride
 * (zeros in between), padded by (effective filter − 1 − forward pad), then a stride-1 depthwise
 * convolution with the spatially flipped filter (as C·Q channels, multiplier 1) and a sum over
 * the Q outputs of each input channel.
 */
function depthwiseBackpropInput(tf: TF, inputs: Record<string, Tensor>, attrs: NamedAttrMap): Tensor {
  const { strides, pad, dilations, dimRoundingMode, inputShape } = attrs as unknown as {
    strides: Pair;
    pad: Pad;
    dilations?: Pair;
    dimRoundingMode?: Rounding;
    inputShape: [number, number, number, number];
  };
  const dy = inputs.dy as Tensor4D;
  const filter = inputs.filter as Tensor4D;
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape,
    strides,
    dilations ?? 1,
    pad,
    dimRoundingMode,
    true,
  );
  const [n, h, w, c] = inputShape;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const { filterHeight: kh, filterWidth: kw, padInfo } = info;
  const q = filter.shape[3];
  const k = c * q;
  const up = spreadByStride(tf, dy, sh, sw);
  const top = (kh - 1) * dh - padInfo.top;
  const left = (kw - 1) * dw - padInfo.left;
  const bottom = h + (kh - 1) * dh - top - up.shape[1];
  const right = w + (kw - 1) * dw - left - up.shape[2];
  const padded = padOrCrop(tf, up, top, bottom, left, right);
  const flipped = tf.reshape(tf.reverse(filter, [0, 1]), [kh, kw, k, 1]) as Tensor4D;
  const dx = tf.depthwiseConv2d(padded, flipped, 1, 'valid', 'NHWC', [dh, dw]);
  return q === 1 ? dx : tf.sum(tf.reshape(dx, [n, h, w, c, q]), 4);
}

/**
 * out[s, …] = Σ_{i: ids[i] = s} x[i, …] (ids outside [0, numSegments) are dropped), summed on
 * the JS side in one pass: time O(x.size + output), memory O(output) however large numSegments
 * is (a one-hot matMul would need ids × numSegments). Multi-dimensional ids follow TensorFlow:
 * the output is [numSegments, ...x.shape[ids.rank:]].
 */
function unsortedSegmentSum(
  tf: TF,
  { inputs, attrs, backend: b }: Parameters<KernelFunc>[0],
): TensorInfo | TensorInfo[] {
  const backend = b as KernelBackend;
  const x = inputs.x as TensorInfo;
  const ids = inputs.segmentIds as TensorInfo;
  const numSegments = (attrs as { numSegments: number }).numSegments;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum (wasm): unsupported dtype ${x.dtype}`);
  }
  const innerShape = x.shape.slice(ids.shape.length);
  const inner = innerShape.reduce((a, b) => a * b, 1);
  const xv = backend.readSync(x.dataId) as Float32Array | Int32Array;
  const idv = backend.readSync(ids.dataId) as Int32Array | Float32Array;
  const out =
    x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
  for (let r = 0; r < idv.length; r++) {
    const s = idv[r] as number;
    if (!(s >= 0 && s < numSegments)) continue;
    const o = s * inner;
    const xi = r * inner;
    for (let j = 0; j < inner; j++) out[o + j] = (out[o + j] as number) + (xv[xi + j] as number);
  }
  return tf.tensor(out, [numSegments, ...innerShape], x.dtype);
}
