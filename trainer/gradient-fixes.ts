/**
 * Gradients that TensorFlow.js 4.22 gets wrong or refuses, found by the gradient check
 * (test/gradients/, `npm run gradcheck`) and supplied the way the project supplies missing wasm
 * kernels: registered at backend start, declared in trainer/kernel-registry.ts.
 *
 * - `AvgPoolGrad` (cpu, wasm): the stock kernels divide every window's gradient by the full window
 *   (poolSize cells), while their own forward `AvgPool`, and TensorFlow's, divide by the number of
 *   cells the window covers inside the input. With `padding: 'same'` every border gradient was
 *   too small: for Σ avgPool(x, 2, stride 1, 'same') over a 3×3 x, the last row's gradients are
 *   0.5 / 1 / 1 where finite differences give 0.75 / 1.5 / 2.25. averagePooling1d runs through
 *   the same 2-D op. The replacement divides each window by its own count; when every window lies
 *   wholly inside the input (all of `'valid'`, most of `'same'` with stride = poolSize), the
 *   stock kernel's answer is the same and it is called instead. TensorFlow native divides by the
 *   count (issue 17's cross-backend comparison) and is left alone. `AvgPool3DGrad` has the same
 *   fault and the same fix (no job-spec layer pools in 3-D; a fine-tuned model's may).
 * - The gradient of `Conv2D` with dilations > 1: tfjs-core's refuses ("dilation rates greater
 *   than 1 are not yet supported in gradients"), so a conv1d or conv2d layer with `dilationRate`
 *   could not train on any backend. The registered gradient handles them (stride 1, which the op
 *   requires with dilations): dx is the stride-1 dilated correlation of dy, padded, with the
 *   flipped filter; dW is a convolution of the padded input with dy as the filter, the batch
 *   contracted, stride = dilation. Undilated calls go to the stock gradient.
 * - Dilated conv2d layers: tfjs-layers runs most conv2d layers (linear, tanh, sigmoid, …) through
 *   `tf.fused.conv2d`, whose gradient is written inline in tfjs-core (not in the registry) and
 *   refuses dilations the same way. Conv2D layers with a dilation > 1 compute through the plain
 *   `conv2d` op (+ bias + activation) instead, so that the gradient above applies. Undilated
 *   layers are untouched.
 * - Regularisers of lstm and gru layers: tfjs-layers gives them to the recurrent cell, whose
 *   penalties never reach `model.calculateLosses()` (the RNN layer reports only its own), so a
 *   job's kernel/recurrent/bias regulariser on a recurrent layer silently did nothing. RNN layers
 *   now add their cell's penalties to their own.
 */
import type {
  GradConfig,
  KernelConfig,
  KernelFunc,
  NamedAttrMap,
  Tensor,
  Tensor4D,
  TensorInfo,
} from '@tensorflow/tfjs';
import { forwardWindow, padOrCrop, type TF } from './wasm-kernels.ts';

type Pair = number | [number, number];
type Triple = number | [number, number, number];
type Pad = 'valid' | 'same' | number;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

/** The backends whose stock `AvgPoolGrad` and `AvgPool3DGrad` divide by the full window. */
export const AVG_POOL_GRAD_BACKENDS = ['cpu', 'wasm'] as const;

/** The stock configs replaced, to put back (tests compare stock and fixed). */
const stockKernels = new Map<string, KernelConfig>();
let stockConv2DGradient: GradConfig | undefined;
/** How to undo each layer-method patch, by `layer:ClassName`. */
const layerPatches = new Map<string, () => void>();

/**
 * Registers every fix (idempotent; a backend not registered is skipped). Works before or after a
 * backend is initialised. Returns what this call changed, as `kernel@backend` / `gradient:Name` /
 * `layer:Name`.
 */
export function registerGradientFixes(tf: TF): string[] {
  const changed: string[] = [];
  for (const kernelName of ['AvgPoolGrad', 'AvgPool3DGrad']) {
    for (const backendName of AVG_POOL_GRAD_BACKENDS) {
      const key = `${kernelName}@${backendName}`;
      if (stockKernels.has(key)) continue;
      const original = tf.getKernel(kernelName, backendName);
      if (original == null) continue;
      stockKernels.set(key, original);
      tf.unregisterKernel(kernelName, backendName);
      const kernelFunc = avgPoolGrad(tf, kernelName, backendName, original.kernelFunc);
      tf.registerKernel({ ...original, kernelFunc });
      changed.push(key);
    }
  }
  if (stockConv2DGradient === undefined) {
    stockConv2DGradient = tf.getGradient('Conv2D');
    tf.registerGradient(conv2DGradient(tf, stockConv2DGradient));
    changed.push('gradient:Conv2D');
  }
  if (patchLayerMethod(tf, 'Conv2D', 'call', routeDilatedConv2d(tf))) changed.push('layer:Conv2D');
  if (patchLayerMethod(tf, 'RNN', 'calculateLosses', includeCellLosses)) changed.push('layer:RNN');
  return changed;
}

/**
 * Puts stock kernels, gradients and layer methods back (for tests and benchmarks): those whose
 * key (as `registerGradientFixes` returns them) `only` accepts, or all.
 */
export function restoreStockGradients(tf: TF, only: (key: string) => boolean = () => true): void {
  for (const [key, undo] of layerPatches) {
    if (!only(key)) continue;
    undo();
    layerPatches.delete(key);
  }
  for (const [key, config] of stockKernels) {
    if (!only(key)) continue;
    tf.unregisterKernel(config.kernelName, config.backendName);
    tf.registerKernel(config);
    stockKernels.delete(key);
  }
  if (stockConv2DGradient && only('gradient:Conv2D')) {
    tf.registerGradient(stockConv2DGradient);
    stockConv2DGradient = undefined;
  }
}

/** The parts of the cpu and wasm backends the pooling kernels write their output with. */
interface OutputBackend {
  readSync(dataId: object): unknown;
  makeTensorInfo?(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
  makeOutput?(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap?(info: TensorInfo): Float32Array;
}

/**
 * A pooling window grid along depth, height and width (2-D pooling has depth 1): sizes of the
 * input and output, strides, window sizes and the padding in front.
 */
export interface PoolGrid {
  batch: number;
  channels: number;
  input: [number, number, number];
  output: [number, number, number];
  strides: [number, number, number];
  window: [number, number, number];
  before: [number, number, number];
}

function poolGrid(tf: TF, kernelName: string, inputShape: number[], attrs: PoolAttrs): PoolGrid | undefined {
  const { filterSize, strides, pad, dimRoundingMode } = attrs;
  if (kernelName === 'AvgPoolGrad') {
    const i = tf.backend_util.computePool2DInfo(
      inputShape as [number, number, number, number],
      filterSize as Pair,
      strides as Pair,
      1,
      pad,
      dimRoundingMode,
    );
    if (i.dataFormat !== 'channelsLast') return undefined;
    return {
      batch: i.batchSize,
      channels: i.inChannels,
      input: [1, i.inHeight, i.inWidth],
      output: [1, i.outHeight, i.outWidth],
      strides: [1, i.strideHeight, i.strideWidth],
      window: [1, i.effectiveFilterHeight, i.effectiveFilterWidth],
      before: [0, i.padInfo.top, i.padInfo.left],
    };
  }
  const i = tf.backend_util.computePool3DInfo(
    inputShape as [number, number, number, number, number],
    filterSize as Triple,
    strides as Triple,
    1,
    pad,
    dimRoundingMode,
  );
  if (i.dataFormat !== 'channelsLast') return undefined;
  return {
    batch: i.batchSize,
    channels: i.inChannels,
    input: [i.inDepth, i.inHeight, i.inWidth],
    output: [i.outDepth, i.outHeight, i.outWidth],
    strides: [i.strideDepth, i.strideHeight, i.strideWidth],
    window: [i.effectiveFilterDepth, i.effectiveFilterHeight, i.effectiveFilterWidth],
    before: [i.padInfo.front, i.padInfo.top, i.padInfo.left],
  };
}

interface PoolAttrs {
  filterSize: number | number[];
  strides: number | number[];
  pad: Pad;
  dimRoundingMode?: Rounding;
}

/** `AvgPoolGrad` / `AvgPool3DGrad`: each window's gradient divided by the cells it covers. */
function avgPoolGrad(tf: TF, kernelName: string, backendName: string, stock: KernelFunc): KernelFunc {
  return (args) => {
    const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
    const grid = poolGrid(tf, kernelName, input.shape, args.attrs as unknown as PoolAttrs);
    if (!grid || everyWindowInside(grid)) return stock(args);
    const backend = args.backend as unknown as OutputBackend;
    const dx = avgPoolGradValues(backend.readSync(dy.dataId) as Float32Array, grid);
    if (backendName === 'wasm' && backend.makeOutput && backend.typedArrayFromHeap) {
      const out = backend.makeOutput(input.shape, 'float32');
      backend.typedArrayFromHeap(out).set(dx);
      return out;
    }
    if (!backend.makeTensorInfo) throw new Error(`${kernelName}: no way to make an output on ${backendName}`);
    return backend.makeTensorInfo(input.shape, 'float32', dx);
  };
}

/** No padding reaches into any window: the stock kernels' divisor (the window size) is right. */
function everyWindowInside(g: PoolGrid): boolean {
  return g.input.every(
    (size, a) =>
      g.before[a] === 0 &&
      ((g.output[a] as number) - 1) * (g.strides[a] as number) + (g.window[a] as number) <= size,
  );
}

/**
 * dx[n, z, y, x, c] = Σ over the windows that contain (z, y, x) of dy[n, oz, oy, ox, c] / count,
 * where count is the number of input cells the window covers (what the forward pass divided by).
 * Channels innermost (NHWC / NDHWC).
 */
export function avgPoolGradValues(dy: Float32Array, g: PoolGrid): Float32Array {
  const [inD, inH, inW] = g.input;
  const [outD, outH, outW] = g.output;
  const c = g.channels;
  const dx = new Float32Array(g.batch * inD * inH * inW * c);
  const range = (o: number, a: 0 | 1 | 2) => {
    const start = o * g.strides[a] - g.before[a];
    return [Math.max(0, start), Math.min(g.input[a], start + g.window[a])] as const;
  };
  let at = 0;
  for (let n = 0; n < g.batch; n++) {
    for (let oz = 0; oz < outD; oz++) {
      const [z0, z1] = range(oz, 0);
      for (let oy = 0; oy < outH; oy++) {
        const [y0, y1] = range(oy, 1);
        for (let ox = 0; ox < outW; ox++, at += c) {
          const [x0, x1] = range(ox, 2);
          const count = (z1 - z0) * (y1 - y0) * (x1 - x0);
          if (count <= 0) continue;
          for (let z = z0; z < z1; z++) {
            for (let y = y0; y < y1; y++) {
              for (let x = x0; x < x1; x++) {
                const base = (((n * inD + z) * inH + y) * inW + x) * c;
                for (let k = 0; k < c; k++)
                  dx[base + k] = (dx[base + k] as number) + (dy[at + k] as number) / count;
              }
            }
          }
        }
      }
    }
  }
  return dx;
}

const pairOf = (p: Pair | undefined): [number, number] =>
  p === undefined ? [1, 1] : typeof p === 'number' ? [p, p] : p;

function conv2DGradient(tf: TF, stock: GradConfig): GradConfig {
  return {
    kernelName: 'Conv2D',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      const { strides, pad, dataFormat, dilations, dimRoundingMode } = attrs as unknown as {
        strides: Pair;
        pad: Pad;
        dataFormat?: 'NHWC' | 'NCHW';
        dilations?: Pair;
        dimRoundingMode?: Rounding;
      };
      const [dh, dw] = pairOf(dilations);
      const [sh, sw] = pairOf(strides);
      // Undilated: the stock gradient. Strided and dilated at once: the op refuses it anyway.
      if ((dh === 1 && dw === 1) || sh !== 1 || sw !== 1 || (dataFormat ?? 'NHWC') !== 'NHWC') {
        return stock.gradFunc(dy, saved, attrs);
      }
      const [x, filter] = saved as [Tensor4D, Tensor4D];
      const info = tf.backend_util.computeConv2DInfo(
        x.shape,
        filter.shape,
        1,
        [dh, dw],
        pad,
        dimRoundingMode,
      );
      const g = dy as Tensor4D;
      return {
        x: () => dilatedInputGradient(tf, g, filter, info),
        filter: () => dilatedFilterGradient(tf, x, g, info),
      };
    },
  };
}

/**
 * dx[i] = Σ_k dy[i + p − k·d] · W[k]: dy padded by (k − 1)·d − p in front, correlated (dilation d)
 * with W flipped in space and its channel axes swapped to [kh, kw, F, C].
 */
function dilatedInputGradient(
  tf: TF,
  dy: Tensor4D,
  filter: Tensor4D,
  info: ReturnType<TF['backend_util']['computeConv2DInfo']>,
): Tensor {
  const { inHeight: h, inWidth: w, dilationHeight: dh, dilationWidth: dw, padInfo } = info;
  const { filterHeight: kh, filterWidth: kw } = info;
  const top = (kh - 1) * dh - padInfo.top;
  const left = (kw - 1) * dw - padInfo.left;
  const bottom = h + (kh - 1) * dh - top - dy.shape[1];
  const right = w + (kw - 1) * dw - left - dy.shape[2];
  const padded = padOrCrop(tf, dy, top, bottom, left, right);
  const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as Tensor4D;
  return tf.conv2d(padded, flipped, 1, 'valid', 'NHWC', [dh, dw]);
}

/**
 * dW[k, c, f] = Σ_{n, o} xpad[n, o + k·d, c] · dy[n, o, f]: a convolution of xpad as [C, H, W, N]
 * with dy as the filter [OH, OW, N, F], stride d, giving [C, kh, kw, F].
 */
function dilatedFilterGradient(
  tf: TF,
  x: Tensor4D,
  dy: Tensor4D,
  info: ReturnType<TF['backend_util']['computeConv2DInfo']>,
): Tensor {
  const xT = tf.transpose(forwardWindow(tf, x, info), [3, 1, 2, 0]) as Tensor4D;
  const dyT = tf.transpose(dy, [1, 2, 0, 3]) as Tensor4D;
  const dW = tf.conv2d(xT, dyT, [info.dilationHeight, info.dilationWidth], 'valid');
  return tf.transpose(dW, [1, 2, 0, 3]);
}

/** What the routed call reads of a tfjs-layers Conv2D layer (tfjs-layers 4.22 internals). */
interface ConvLayer {
  dilationRate: number[];
  strides: number[];
  padding: string;
  dataFormat: string;
  kernel: { read(): Tensor };
  bias?: { read(): Tensor } | null;
  activation: { apply(t: Tensor): Tensor };
}
type LayerCall = (this: ConvLayer, inputs: Tensor | Tensor[], kwargs: NamedAttrMap) => Tensor;

/** Dilated Conv2D layers compute through the plain conv2d op, whose gradient is registered above. */
function routeDilatedConv2d(tf: TF) {
  return (inherited: LayerCall): LayerCall =>
    function (inputs, kwargs) {
      const dilated = this.dilationRate.some((d) => d !== 1);
      if (!dilated || this.dataFormat !== 'channelsLast') return inherited.call(this, inputs, kwargs);
      return tf.tidy(() => {
        const x = (Array.isArray(inputs) ? inputs[0] : inputs) as Tensor4D;
        const pad = this.padding === 'same' ? 'same' : 'valid';
        let y: Tensor = tf.conv2d(
          x,
          this.kernel.read() as Tensor4D,
          this.strides as [number, number],
          pad,
          'NHWC',
          this.dilationRate as [number, number],
        );
        if (this.bias) y = tf.add(y, this.bias.read());
        return this.activation.apply(y);
      });
    };
}

/**
 * Replaces `method` on the prototype of the tfjs-layers class registered as `className` (so every
 * subclass and every loaded model gets it) with `make(the method it had)`. Idempotent; returns
 * whether it patched now.
 */
function patchLayerMethod<F>(tf: TF, className: string, method: string, make: (inherited: F) => F): boolean {
  const key = `layer:${className}`;
  if (layerPatches.has(key)) return false;
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  const proto = (entry?.[0] as unknown as { prototype: Record<string, F> } | undefined)?.prototype;
  if (!proto) return false;
  const own = Object.getOwnPropertyDescriptor(proto, method);
  Object.defineProperty(proto, method, {
    value: make(proto[method] as F),
    writable: true,
    configurable: true,
  });
  layerPatches.set(key, () => {
    if (own) Object.defineProperty(proto, method, own);
    else delete proto[method];
  });
  return true;
}

interface RecurrentLayer {
  losses: unknown[];
  cell: { losses: unknown[]; calculateLosses(): Tensor[] };
}
type CalculateLosses = (this: RecurrentLayer) => Tensor[];

/** RNN layers (lstm, gru) add their cell's regularisation penalties to their own. */
function includeCellLosses(own: CalculateLosses): CalculateLosses {
  return function () {
    const mine = own.call(this);
    // A later tfjs-layers that forwards them itself would count them twice: take them once.
    const forwarded = this.cell.losses.every((fn) => this.losses.includes(fn));
    return forwarded ? mine : [...mine, ...this.cell.calculateLosses()];
  };
}
