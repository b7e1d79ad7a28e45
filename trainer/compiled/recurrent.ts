/**
 * lstm and gru layers as graph ops, with tfjs-layers' cells (gate order i, f, c, o for the LSTM;
 * z, r, h and reset_after = false for the GRU), zero initial states and the fixed sequence length
 * of the model's input. Input dropout draws one mask per batch, shared by every time step, as the
 * tfjs cells do.
 *
 * An LSTM with the default tanh / sigmoid activations runs as one `DescentLstm` op over the whole
 * sequence (the graph addon's own CPU kernel, native/lstm_kernel.h: the input projection of every
 * step as one matrix product, then per step only h·Wh and the cell; backward, per step only
 * dz·Whᵀ and the weights' gradients as single products over all steps) with `DescentLstmGrad` as
 * its explicit backward pass. Unrolled it would be ~12 ops per time step forward and ~30 backward.
 * On a GPU (`ctx.lstmKernel === 'tensorflow'`) it runs as TensorFlow's `BlockLSTMV2`, which has a
 * GPU kernel (descent's op has only a CPU one), with `BlockLSTMGradV2` as its backward pass; on
 * the CPU that kernel is slower (its products in Eigen, one step at a time). Other LSTMs and GRUs
 * are unrolled, with the input projection of every time step done as one matrix product before the
 * recurrence.
 */
import {
  activate,
  type Build,
  dropoutMask,
  type ForwardContext,
  type LayerInfo,
  need,
  type WeightRef,
} from './forward-context.ts';
import type { GraphBuilder } from './graph.ts';
import { DT, type Output } from './native.ts';

interface Cell {
  units: number;
  steps: number;
  features: number;
  activation: string;
  recurrentActivation: string;
  returnSequences: boolean;
  kernel: WeightRef;
  recurrent: WeightRef;
  bias: WeightRef | undefined;
}

function cellOf(ctx: ForwardContext, info: LayerInfo, inShape: number[]): Cell {
  const c = info.config;
  const [steps, features] = inShape as [number, number];
  return {
    units: Number(c.units),
    steps,
    features,
    activation: String(c.activation),
    recurrentActivation: String(c.recurrentActivation),
    returnSequences: c.returnSequences === true,
    kernel: need(ctx, info, 'kernel'),
    recurrent: need(ctx, info, 'recurrent_kernel'),
    bias: c.useBias === false ? undefined : need(ctx, info, 'bias'),
  };
}

/**
 * [batch, steps, …] ↔ [steps, batch, …] as an unstack of the `steps` slices and a stack: two plain
 * copies, where oneDNN's Transpose of these small 3-D tensors took 0.1–1.6 ms of a 4 ms step.
 */
const toTimeMajor = (g: GraphBuilder, x: Output, steps: number) => g.stack(g.unstack(x, steps, 1), 0);
const toBatchMajor = (g: GraphBuilder, x: Output, steps: number) => g.stack(g.unstack(x, steps, 0), 1);

/** Zeros of [batch of `like`, units]. */
function zeroState(g: GraphBuilder, like: Output, batchAxis: number, units: number): Output {
  const batch = g.op(
    'StridedSlice',
    [g.shapeOf(like), g.ints([batchAxis]), g.ints([batchAxis + 1]), g.ints([1])],
    [
      ['begin_mask', 'int', 0],
      ['end_mask', 'int', 0],
      ['ellipsis_mask', 'int', 0],
      ['new_axis_mask', 'int', 0],
      ['shrink_axis_mask', 'int', 1],
    ],
  );
  return g.op('Fill', [g.stack([batch, g.scalar(units, DT.int32)], 0), g.scalar(0)]);
}

/** The input with the layer's dropout applied (one [batch, features] mask for every step). */
function droppedInput(ctx: ForwardContext, info: LayerInfo, site: number, x: Output): Output {
  const rate = Number(info.config.dropout ?? 0);
  if (!(rate > 0 && rate < 1)) return x;
  const { g } = ctx;
  const first = g.squeeze(g.slice(x, [0, 0, 0], [-1, 1, -1]), [1]);
  const mask = dropoutMask(ctx, site, first, rate);
  ctx.masks.set(info.name, mask);
  return g.mul(x, g.expandDims(mask, 1));
}

/**
 * The whole-sequence fused LSTM as TensorFlow's `BlockLSTMV2` (CPU and GPU kernels), with
 * `BlockLSTMGradV2` as its explicit backward pass registered in `ctx.custom`.
 */
function blockLstm(ctx: ForwardContext, cell: Cell, x: Output): Output {
  const { g } = ctx;
  const { units: u, steps } = cell;
  // BlockLSTMV2's gates are i, f, c, o like tfjs's (BlockLSTM's were i, c, f, o), without a forget
  // bias; its weight is the kernel stacked on the recurrent kernel ([x, h] · w).
  const kernel = ctx.read(cell.kernel, false);
  const recurrentKernel = ctx.read(cell.recurrent, false);
  const biasRead = cell.bias ? ctx.read(cell.bias, false) : undefined;
  const w = g.concat([kernel, recurrentKernel], 0);
  const b = biasRead ?? g.floats(new Float32Array(4 * u));
  const xs = toTimeMajor(g, x, steps);
  const zeros = zeroState(g, x, 0, u);
  const peephole = g.floats(new Float32Array(u));
  const seqLen = g.scalar(steps, DT.int64);
  const fwd = g.ops(
    'BlockLSTMV2',
    [seqLen, xs, zeros, zeros, w, peephole, peephole, peephole, b],
    [
      ['cell_clip', 'float', 0],
      ['use_peephole', 'bool', false],
      ['T', 'type', DT.float32],
    ],
    7,
  );
  const h = fwd[6] as Output;
  ctx.custom.push({
    input: xs,
    output: h,
    backward: (dh) => {
      const grads = g.ops(
        'BlockLSTMGradV2',
        [
          seqLen,
          xs,
          zeros,
          zeros,
          w,
          peephole,
          peephole,
          peephole,
          b,
          ...fwd,
          g.zerosLike(fwd[1] as Output),
          dh,
        ],
        [
          ['use_peephole', 'bool', false],
          ['T', 'type', DT.float32],
        ],
        8,
      );
      const reads: [WeightRef, Output][] = [
        [cell.kernel, kernel],
        [cell.recurrent, recurrentKernel],
        ...(cell.bias && biasRead ? [[cell.bias, biasRead] as [WeightRef, Output]] : []),
      ];
      const ys = biasRead ? [w, b] : [w];
      const dys = biasRead ? [grads[3] as Output, grads[7] as Output] : [grads[3] as Output];
      const dReads = g.graph.addGradients(
        ys,
        reads.map(([, r]) => r),
        dys,
      );
      return {
        dInput: grads[0] as Output,
        reads: reads.map(([ref], i) => [ref, dReads[i] as Output]),
      };
    },
  });
  if (cell.returnSequences) return toBatchMajor(g, h, steps);
  return g.squeeze(g.slice(h, [steps - 1, 0, 0], [1, -1, -1]), [0]);
}

/**
 * The whole-sequence fused LSTM (descent's own op, native/lstm_op.cc), with its explicit backward
 * pass registered in `ctx.custom`. It reads the batch-major input and the weights in tfjs's layouts
 * as they are, and gives the layer's output directly (every step's h, or the last).
 */
function fusedLstmOp(ctx: ForwardContext, cell: Cell, x: Output): Output {
  const { g } = ctx;
  const kernel = ctx.read(cell.kernel, false);
  const recurrentKernel = ctx.read(cell.recurrent, false);
  const biasRead = cell.bias ? ctx.read(cell.bias, false) : undefined;
  const bias = biasRead ?? g.floats(new Float32Array(4 * cell.units));
  const type = cell.returnSequences ? 'DescentLstmSequence' : 'DescentLstm';
  const [y, workspace] = g.ops(type, [x, kernel, recurrentKernel, bias], [], 2) as [Output, Output];
  ctx.custom.push({
    input: x,
    output: y,
    backward: (dy) => {
      const [dx, dKernel, dRecurrent, dBias] = g.ops(
        'DescentLstmGrad',
        [x, kernel, recurrentKernel, workspace, dy],
        [],
        4,
      ) as [Output, Output, Output, Output];
      const reads: [WeightRef, Output][] = [
        [cell.kernel, dKernel],
        [cell.recurrent, dRecurrent],
      ];
      if (cell.bias) reads.push([cell.bias, dBias]);
      return { dInput: dx, reads };
    },
  });
  return y;
}

/** x·kernel + bias for every time step at once, as `steps` tensors of [batch, gates·units]. */
function projectInputs(ctx: ForwardContext, cell: Cell, x: Output, gates: number): Output[] {
  const { g } = ctx;
  let proj = g.matMul(g.reshape(x, [-1, cell.features]), ctx.read(cell.kernel));
  if (cell.bias) proj = g.biasAdd(proj, ctx.read(cell.bias));
  const width = gates * cell.units;
  return g.unstack(g.reshape(proj, [-1, cell.steps, width]), cell.steps, 1);
}

function unrolledLstm(ctx: ForwardContext, cell: Cell, x: Output): Output[] {
  const { g } = ctx;
  const act = (v: Output) => activate(g, cell.activation, v);
  const gate = (v: Output) => activate(g, cell.recurrentActivation, v);
  const inputs = projectInputs(ctx, cell, x, 4);
  const recurrentKernel = ctx.read(cell.recurrent);
  let h = zeroState(g, x, 0, cell.units);
  let c = h;
  const outputs: Output[] = [];
  for (const xt of inputs) {
    const z = g.add2(xt, g.matMul(h, recurrentKernel));
    const [z0, z1, z2, z3] = g.split(z, 4, 1) as [Output, Output, Output, Output];
    const i = gate(z0);
    const f = gate(z1);
    c = g.add2(g.mul(f, c), g.mul(i, act(z2)));
    h = g.mul(gate(z3), act(c));
    outputs.push(h);
  }
  return outputs;
}

function unrolledGru(ctx: ForwardContext, cell: Cell, x: Output): Output[] {
  const { g } = ctx;
  const u = cell.units;
  const act = (v: Output) => activate(g, cell.activation, v);
  const gate = (v: Output) => activate(g, cell.recurrentActivation, v);
  const inputs = projectInputs(ctx, cell, x, 3);
  const recurrentKernel = ctx.read(cell.recurrent);
  const rk1 = g.slice(recurrentKernel, [0, 0], [u, 2 * u]);
  const rk2 = g.slice(recurrentKernel, [0, 2 * u], [u, u]);
  const one = g.scalar(1);
  let h = zeroState(g, x, 0, u);
  const outputs: Output[] = [];
  for (const mx of inputs) {
    const [xz, xr, xh] = g.split(mx, 3, 1) as [Output, Output, Output];
    const [rz, rr] = g.split(g.matMul(h, rk1), 2, 1) as [Output, Output];
    const z = gate(g.add2(xz, rz));
    const r = gate(g.add2(xr, rr));
    const hh = act(g.add2(xh, g.matMul(g.mul(r, h), rk2)));
    h = g.add2(g.mul(z, h), g.mul(g.add2(one, g.neg(z)), hh));
    outputs.push(h);
  }
  return outputs;
}

/** Whether an LSTM runs as the fused whole-sequence op (its activations are the op's: tanh, sigmoid). */
export const fusedLstm = (info: { className: string; config: Record<string, unknown> }): boolean =>
  info.className === 'LSTM' &&
  info.config.activation === 'tanh' &&
  info.config.recurrentActivation === 'sigmoid';

export const recurrent =
  (site: number): Build =>
  (ctx, info, x, inShape) => {
    const cell = cellOf(ctx, info, inShape);
    const input = droppedInput(ctx, info, site, x);
    if (fusedLstm(info))
      return ctx.lstmKernel === 'tensorflow' ? blockLstm(ctx, cell, input) : fusedLstmOp(ctx, cell, input);
    const outputs =
      info.className === 'LSTM' ? unrolledLstm(ctx, cell, input) : unrolledGru(ctx, cell, input);
    return cell.returnSequences ? ctx.g.stack(outputs, 1) : (outputs.at(-1) as Output);
  };
