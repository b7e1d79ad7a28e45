/**
 * A typed builder over the addon's TensorFlow graph: one method per operation the compiled
 * training step uses, each adding a TensorFlow op (with the attributes TensorFlow's op registry
 * defines for it) and returning its output. Names are generated (`scope/Type_n`), so no string
 * from a job spec reaches TensorFlow. Shapes come from TensorFlow's own shape inference.
 */
import { type AttrValue, DT, type DType, type NativeGraph, type Output, type TensorValue } from './native.ts';

type Attr = [string, ...AttrValue];

/** A variable: its resource handle and dtype / shape. */
export interface VariableRef {
  handle: Output;
  dtype: DType;
  shape: number[];
}

export type Padding = 'SAME' | 'VALID';

export class GraphBuilder {
  readonly graph: NativeGraph;
  #scope = '';
  readonly #counts = new Map<string, number>();
  /** Control dependencies added to every op made inside `withControl`. */
  #control: number[] = [];

  constructor(graph: NativeGraph) {
    this.graph = graph;
  }

  /** Runs `fn` with ops named under `scope/` (nested scopes join with `/`). */
  scoped<T>(scope: string, fn: () => T): T {
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(scope)) throw new Error(`bad scope ${scope}`);
    const outer = this.#scope;
    this.#scope = outer ? `${outer}/${scope}` : scope;
    try {
      return fn();
    } finally {
      this.#scope = outer;
    }
  }

  /** Runs `fn` with every op it adds depending on `ops` first. */
  withControl<T>(ops: number[], fn: () => T): T {
    const outer = this.#control;
    this.#control = [...outer, ...ops];
    try {
      return fn();
    } finally {
      this.#control = outer;
    }
  }

  /** A unique name for an op of `type` in the current scope. */
  name(type: string): string {
    const base = this.#scope ? `${this.#scope}/${type}` : type;
    const n = this.#counts.get(base) ?? 0;
    this.#counts.set(base, n + 1);
    return n === 0 ? base : `${base}_${n}`;
  }

  /** Adds an operation; returns its id. */
  add(
    type: string,
    inputs: (Output | Output[])[],
    attrs: Attr[] = [],
    control: number[] = [],
    name = this.name(type),
  ): number {
    const all = [...this.#control, ...control];
    return this.graph.addOperation({
      type,
      name,
      inputs,
      attrs,
      ...(all.length ? { control: all } : {}),
    });
  }

  /** Adds an operation; returns its first output. */
  op(type: string, inputs: (Output | Output[])[], attrs: Attr[] = []): Output {
    return [this.add(type, inputs, attrs), 0];
  }

  /** Adds an operation; returns its first `n` outputs. */
  ops(type: string, inputs: (Output | Output[])[], attrs: Attr[], n: number): Output[] {
    const id = this.add(type, inputs, attrs);
    return Array.from({ length: n }, (_, i) => [id, i] as const);
  }

  shape(x: Output): number[] {
    const info = this.graph.outputInfo(x);
    if (!info.shape) throw new Error('an output of unknown rank');
    return info.shape;
  }

  dtype(x: Output): DType {
    return this.graph.outputInfo(x).dtype;
  }

  // ---- constants, placeholders, variables -----------------------------------------------

  constant(value: TensorValue): Output {
    return this.op(
      'Const',
      [],
      [
        ['value', 'tensor', value],
        ['dtype', 'type', value.dtype],
      ],
    );
  }

  scalar(v: number, dtype: DType = DT.float32): Output {
    const data =
      dtype === DT.int32
        ? Int32Array.of(v)
        : dtype === DT.int64
          ? BigInt64Array.of(BigInt(v))
          : dtype === DT.float64
            ? Float64Array.of(v)
            : Float32Array.of(v);
    return this.constant({ dtype, shape: [], data });
  }

  ints(values: number[]): Output {
    return this.constant({ dtype: DT.int32, shape: [values.length], data: Int32Array.from(values) });
  }

  floats(values: ArrayLike<number>, shape: number[] = [values.length]): Output {
    return this.constant({ dtype: DT.float32, shape, data: Float32Array.from(values) });
  }

  placeholder(dtype: DType, shape: number[] | null): Output {
    return this.op(
      'Placeholder',
      [],
      [
        ['dtype', 'type', dtype],
        ['shape', 'shape', shape],
      ],
    );
  }

  /** A resource variable, named in the session by its (unique) node name. */
  variable(dtype: DType, shape: number[]): VariableRef {
    const name = this.name('Variable');
    const attrs: Attr[] = [
      ['dtype', 'type', dtype],
      ['shape', 'shape', shape],
      ['container', 'string', ''],
      ['shared_name', 'string', name],
    ];
    const handle: Output = [this.add('VarHandleOp', [], attrs, [], name), 0];
    return { handle, dtype, shape };
  }

  read(v: VariableRef): Output {
    return this.op('ReadVariableOp', [v.handle], [['dtype', 'type', v.dtype]]);
  }

  assign(v: VariableRef, value: Output): number {
    return this.add('AssignVariableOp', [v.handle, value], [['dtype', 'type', v.dtype]]);
  }

  assignAdd(v: VariableRef, value: Output): number {
    return this.add('AssignAddVariableOp', [v.handle, value], [['dtype', 'type', v.dtype]]);
  }

  /** Rows `indices` of a variable (a dataset kept in the graph). */
  gatherRows(v: VariableRef, indices: Output): Output {
    return this.op(
      'ResourceGather',
      [v.handle, indices],
      [
        ['dtype', 'type', v.dtype],
        ['batch_dims', 'int', 0],
        ['validate_indices', 'bool', true],
      ],
    );
  }

  /** An op that completes once all of `ops` ran. */
  group(ops: number[]): number {
    return this.add('NoOp', [], [], ops);
  }

  identity(x: Output, control: number[] = []): Output {
    return [this.add('Identity', [x], [], control), 0];
  }

  // ---- elementwise --------------------------------------------------------------------

  private binary(type: string, a: Output, b: Output): Output {
    return this.op(type, [a, b]);
  }
  private unary(type: string, x: Output): Output {
    return this.op(type, [x]);
  }

  add2 = (a: Output, b: Output) => this.binary('AddV2', a, b);
  sub = (a: Output, b: Output) => this.binary('Sub', a, b);
  mul = (a: Output, b: Output) => this.binary('Mul', a, b);
  div = (a: Output, b: Output) => this.binary('RealDiv', a, b);
  maximum = (a: Output, b: Output) => this.binary('Maximum', a, b);
  minimum = (a: Output, b: Output) => this.binary('Minimum', a, b);
  squaredDifference = (a: Output, b: Output) => this.binary('SquaredDifference', a, b);
  greater = (a: Output, b: Output) => this.binary('Greater', a, b);
  greaterEqual = (a: Output, b: Output) => this.binary('GreaterEqual', a, b);
  equal = (a: Output, b: Output) => this.op('Equal', [a, b], [['incompatible_shape_error', 'bool', true]]);
  neg = (x: Output) => this.unary('Neg', x);
  square = (x: Output) => this.unary('Square', x);
  sqrt = (x: Output) => this.unary('Sqrt', x);
  rsqrt = (x: Output) => this.unary('Rsqrt', x);
  exp = (x: Output) => this.unary('Exp', x);
  log = (x: Output) => this.unary('Log', x);
  abs = (x: Output) => this.unary('Abs', x);
  sigmoid = (x: Output) => this.unary('Sigmoid', x);
  tanh = (x: Output) => this.unary('Tanh', x);
  relu = (x: Output) => this.unary('Relu', x);
  relu6 = (x: Output) => this.unary('Relu6', x);
  elu = (x: Output) => this.unary('Elu', x);
  selu = (x: Output) => this.unary('Selu', x);
  softplus = (x: Output) => this.unary('Softplus', x);
  softsign = (x: Output) => this.unary('Softsign', x);
  softmax = (x: Output) => this.unary('Softmax', x);

  addN(xs: Output[]): Output {
    if (xs.length === 1) return xs[0] as Output;
    return this.op('AddN', [xs]);
  }

  cast(x: Output, to: DType): Output {
    return this.op(
      'Cast',
      [x],
      [
        ['DstT', 'type', to],
        ['Truncate', 'bool', false],
      ],
    );
  }

  /** x where cond, else y (broadcasting). */
  select(cond: Output, x: Output, y: Output): Output {
    return this.op('SelectV2', [cond, x, y]);
  }

  /** Clip to [lo, hi] (tfjs's clipByValue: the gradient passes where lo ≤ x ≤ hi). */
  clip(x: Output, lo: Output, hi: Output): Output {
    return this.maximum(this.minimum(x, hi), lo);
  }

  // ---- reductions, shapes -------------------------------------------------------------

  sum(x: Output, axes: number[], keepDims = false): Output {
    return this.op('Sum', [x, this.ints(axes)], [['keep_dims', 'bool', keepDims]]);
  }

  mean(x: Output, axes: number[], keepDims = false): Output {
    return this.op('Mean', [x, this.ints(axes)], [['keep_dims', 'bool', keepDims]]);
  }

  /** Σ over every axis of a tensor of known rank. */
  sumAll(x: Output): Output {
    return this.sum(
      x,
      this.shape(x).map((_, i) => i),
    );
  }

  argMax(x: Output, axis: number): Output {
    return this.op('ArgMax', [x, this.scalar(axis, DT.int32)], [['output_type', 'type', DT.int32]]);
  }

  reshape(x: Output, shape: number[]): Output {
    return this.op('Reshape', [x, this.ints(shape)]);
  }

  transpose(x: Output, perm: number[]): Output {
    return this.op('Transpose', [x, this.ints(perm)]);
  }

  expandDims(x: Output, axis: number): Output {
    return this.op('ExpandDims', [x, this.scalar(axis, DT.int32)]);
  }

  squeeze(x: Output, axes: number[]): Output {
    return this.op('Squeeze', [x], [['squeeze_dims', 'ints', axes]]);
  }

  concat(xs: Output[], axis: number): Output {
    return this.op('ConcatV2', [xs, this.scalar(axis, DT.int32)], [['N', 'int', xs.length]]);
  }

  /** `n` equal parts along `axis`. */
  split(x: Output, n: number, axis: number): Output[] {
    return this.ops('Split', [this.scalar(axis, DT.int32), x], [['num_split', 'int', n]], n);
  }

  /** The `n` slices along `axis` (its size), each without that axis. */
  unstack(x: Output, n: number, axis: number): Output[] {
    return this.ops(
      'Unpack',
      [x],
      [
        ['num', 'int', n],
        ['axis', 'int', axis],
      ],
      n,
    );
  }

  stack(xs: Output[], axis: number): Output {
    return this.op(
      'Pack',
      [xs],
      [
        ['N', 'int', xs.length],
        ['axis', 'int', axis],
      ],
    );
  }

  /** `x[begin : begin + size]` per axis (size −1: to the end). */
  slice(x: Output, begin: number[], size: number[]): Output {
    return this.op('Slice', [x, this.ints(begin), this.ints(size)]);
  }

  gather(params: Output, indices: Output, axis = 0): Output {
    return this.op('GatherV2', [params, indices, this.scalar(axis, DT.int32)], [['batch_dims', 'int', 0]]);
  }

  /** The dynamic size of `x` along `axis`, as a float32 scalar. */
  sizeOf(x: Output, axis: number): Output {
    const shape = this.op('Shape', [x], [['out_type', 'type', DT.int32]]);
    const dim = this.op(
      'StridedSlice',
      [shape, this.ints([axis]), this.ints([axis + 1]), this.ints([1])],
      [
        ['begin_mask', 'int', 0],
        ['end_mask', 'int', 0],
        ['ellipsis_mask', 'int', 0],
        ['new_axis_mask', 'int', 0],
        ['shrink_axis_mask', 'int', 1],
      ],
    );
    return this.cast(dim, DT.float32);
  }

  zerosLike(x: Output): Output {
    return this.unary('ZerosLike', x);
  }

  // ---- neural-network ops -------------------------------------------------------------

  matMul(a: Output, b: Output, transposeA = false, transposeB = false): Output {
    return this.op(
      'MatMul',
      [a, b],
      [
        ['transpose_a', 'bool', transposeA],
        ['transpose_b', 'bool', transposeB],
      ],
    );
  }

  biasAdd(x: Output, bias: Output): Output {
    return this.op('BiasAdd', [x, bias], [['data_format', 'string', 'NHWC']]);
  }

  conv2d(
    x: Output,
    filter: Output,
    strides: [number, number],
    padding: Padding,
    dilations: [number, number],
  ) {
    return this.op(
      'Conv2D',
      [x, filter],
      [
        ['strides', 'ints', [1, strides[0], strides[1], 1]],
        ['padding', 'string', padding],
        ['dilations', 'ints', [1, dilations[0], dilations[1], 1]],
        ['data_format', 'string', 'NHWC'],
        ['use_cudnn_on_gpu', 'bool', true],
      ],
    );
  }

  pool(
    type: 'MaxPool' | 'AvgPool',
    x: Output,
    size: [number, number],
    strides: [number, number],
    padding: Padding,
  ) {
    return this.op(
      type,
      [x],
      [
        ['ksize', 'ints', [1, size[0], size[1], 1]],
        ['strides', 'ints', [1, strides[0], strides[1], 1]],
        ['padding', 'string', padding],
        ['data_format', 'string', 'NHWC'],
      ],
    );
  }

  /** Uniform [0, 1) values of `shape` from a stateless generator keyed by `seed` (int32 [2]). */
  statelessUniform(shape: Output, seed: Output): Output {
    return this.op('StatelessRandomUniform', [shape, seed], [['dtype', 'type', DT.float32]]);
  }

  /** The dynamic shape of `x` as int32. */
  shapeOf(x: Output): Output {
    return this.op('Shape', [x], [['out_type', 'type', DT.int32]]);
  }
}
