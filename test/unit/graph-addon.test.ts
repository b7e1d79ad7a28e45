/**
 * descent's TensorFlow graph addon (trainer/compiled/native/graph.cc): a graph built op by op runs
 * in a session, symbolic gradients are right, and every bad input — a name outside the allowed
 * alphabet, an unknown op, a wrong dtype or element count, an operation id that does not exist, a
 * closed session — is a JS exception saying what is wrong (TensorFlow's own message where it is
 * TensorFlow that refuses), after which the graph is still usable. Built by `npm run setup:native`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GraphBuilder } from '../../trainer/compiled/graph.ts';
import { DT, type GraphAddon, loadGraphAddon, type TensorValue } from '../../trainer/compiled/native.ts';
import { nativeInstalled } from '../helpers/backends.ts';

const { addon, error } = loadGraphAddon();
// Installed tfjs-node without the addon is a broken setup: fail, as trainingBackends() does.
const skip = addon ? false : nativeInstalled() ? false : `the graph addon is not built (${error})`;

const f32 = (shape: number[], values: number[]): TensorValue => ({
  dtype: DT.float32,
  shape,
  data: Float32Array.from(values),
});
const session = (a: GraphAddon, g: GraphBuilder) =>
  new a.Session(g.graph, { intraOpThreads: 1, interOpThreads: 1, xla: false });

describe('the graph addon', { skip }, () => {
  const a = addon as GraphAddon;

  it('loads, built against the same TensorFlow the setup extracted', () => {
    assert.ok(addon, error);
    assert.match(a.version(), /^\d+\.\d+\.\d+/);
  });

  it('runs a graph and differentiates it: d/dx Σ(x² + 3x) = 2x + 3', () => {
    const g = new GraphBuilder(new a.Graph());
    const x = g.placeholder(DT.float32, [3]);
    const y = g.sumAll(g.add2(g.square(x), g.mul(g.scalar(3), x)));
    const [dx] = g.graph.addGradients([y], [x]);
    assert.ok(dx);
    assert.deepEqual(g.shape(x), [3]);
    const s = session(a, g);
    const [value, grad] = s.run([[x, f32([3], [1, -2, 0.5])]], [y, dx], []);
    assert.deepEqual(Array.from((value?.data ?? []) as Float32Array), [1 + 3 + 4 - 6 + 0.25 + 1.5]);
    assert.deepEqual(Array.from((grad?.data ?? []) as Float32Array), [5, -1, 4]);
    s.close();
  });

  it('keeps variables across runs of a session, and fetches typed arrays of each dtype', () => {
    const g = new GraphBuilder(new a.Graph());
    const v = g.variable(DT.float32, [2]);
    const init = g.assign(v, g.floats([1, 2]));
    const step = g.assignAdd(v, g.floats([10, 10]));
    const read = g.read(v);
    const ints = g.cast(read, DT.int32);
    const s = session(a, g);
    s.run([], [], [init]);
    s.run([], [], [step]);
    const [f, i] = s.run([], [read, ints], []);
    assert.ok(f?.data instanceof Float32Array);
    assert.deepEqual(Array.from(f.data as Float32Array), [11, 12]);
    assert.ok(i?.data instanceof Int32Array);
    assert.equal(i.dtype, DT.int32);
    s.close();
  });

  it('refuses names and op types outside the alphabet before TensorFlow sees them', () => {
    const graph = new a.Graph();
    for (const name of ['a b', 'x;rm', '', 'ü', 'a'.repeat(300)]) {
      assert.throws(
        () => graph.addOperation({ type: 'NoOp', name, inputs: [] }),
        /name (may only hold|must not be empty|is longer)/,
        JSON.stringify(name),
      );
    }
    assert.throws(() => graph.addOperation({ type: 'No Op', name: 'n', inputs: [] }), /type may only hold/);
  });

  it("passes TensorFlow's own refusals on as exceptions, and the graph stays usable", () => {
    const g = new GraphBuilder(new a.Graph());
    assert.throws(() => g.op('NotAnOp', []), /DESCENT_TF_STATUS|not registered|NotAnOp/);
    const x = g.placeholder(DT.float32, [2]);
    assert.throws(() => g.matMul(x, x), /must be rank 2|Shape must be/);
    assert.throws(
      () => g.graph.addOperation({ type: 'Neg', name: 'n', inputs: [[99, 0]] }),
      /input 0\[0\] must be an integer from 0 to/,
    );
    assert.throws(
      () => g.graph.addOperation({ type: 'Neg', name: 'n', inputs: [[x[0], 5]] }),
      /\[1\] must be an integer from 0 to 0/,
    );
    assert.throws(
      () =>
        g.graph.addOperation({
          type: 'Const',
          name: 'c',
          inputs: [],
          attrs: [['value', 'bogus' as 'int', 1]],
        }),
      /unknown attribute kind/,
    );
    const y = g.neg(x);
    const s = session(a, g);
    assert.deepEqual(
      Array.from((s.run([[x, f32([2], [1, 2])]], [y], [])[0]?.data ?? []) as Float32Array),
      [-1, -2],
    );
    s.close();
  });

  it('checks fed tensors: dtype against the typed array, element count against the shape', () => {
    const g = new GraphBuilder(new a.Graph());
    const x = g.placeholder(DT.float32, [-1]);
    const y = g.neg(x);
    const z = g.reshape(x, [3]);
    const s = session(a, g);
    assert.throws(
      () => s.run([[x, { dtype: DT.float32, shape: [2], data: Int32Array.of(1, 2) }]], [y], []),
      /typed array of its dtype/,
    );
    assert.throws(() => s.run([[x, f32([3], [1, 2])]], [y], []), /has 2 elements, its shape 3/);
    assert.throws(
      () => s.run([[x, { dtype: 7 as typeof DT.float32, shape: [2], data: Float32Array.of(1, 2) }]], [y], []),
      /not a supported data type/,
    );
    assert.throws(() => s.run([[x, f32([2], [1, 2])]], [z], []), /running the graph: .*2 values.*3/);
    s.close();
  });

  it('validates session options, and a closed session refuses to run (closing twice is fine)', () => {
    const g = new GraphBuilder(new a.Graph());
    const c = g.scalar(1);
    assert.throws(
      () => new a.Session(g.graph, { intraOpThreads: 0, interOpThreads: 1, xla: false }),
      /intraOpThreads must be an integer/,
    );
    const s = session(a, g);
    assert.equal(s.run([], [c], [])[0]?.data[0], 1);
    s.close();
    s.close();
    assert.throws(() => s.run([], [c], []), /the session is closed/);
  });
});
