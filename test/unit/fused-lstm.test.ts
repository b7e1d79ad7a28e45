/**
 * The graph addon's fused LSTM (trainer/compiled/native/lstm_kernel.h, lstm_op.cc), which the
 * compiled engine uses for every LSTM with tfjs's default activations: its output and all four
 * gradients agree with an LSTM written in float64 (test/helpers/fused-lstm.ts) on shapes that reach
 * every path of the kernel, in each of its three builds (AVX-512, AVX2, portable vectors) that this
 * CPU can run; it is deterministic; and inputs that do not fit are TensorFlow errors saying what is
 * wrong, never a crash.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GraphBuilder } from '../../trainer/compiled/graph.ts';
import { DT, type GraphAddon, loadGraphAddon, type Output } from '../../trainer/compiled/native.ts';
import { nativeInstalled } from '../helpers/backends.ts';
import { caseName, fusedLstm, LSTM_CASES, lstmErrors, referenceLstm } from '../helpers/fused-lstm.ts';

const { addon, error } = loadGraphAddon();
const skip = addon ? false : nativeInstalled() ? false : `the graph addon is not built (${error})`;
const run = promisify(execFile);
const CHILD = fileURLToPath(new URL('../helpers/fused-lstm-child.ts', import.meta.url));
// float32 against float64: sums of up to ~200 products, exp/tanh to a few ulps (measured: 7e-7).
const TOLERANCE = 5e-6;
const OUTPUTS = ['y', 'dx', 'dkernel', 'drecurrent', 'dbias'];

function assertClose(errors: number[][], isa: string) {
  LSTM_CASES.forEach((c, i) => {
    (errors[i] ?? []).forEach((e, k) => {
      assert.ok(
        e <= TOLERANCE,
        `${isa}, ${caseName(c)}: ${OUTPUTS[k]} is off by ${e.toExponential(2)} of its scale`,
      );
    });
  });
}

describe('the fused LSTM op', { skip }, () => {
  const a = addon as GraphAddon;

  it('gives the output and gradients of the float64 reference, on every shape', () => {
    assertClose(
      LSTM_CASES.map((c) => lstmErrors(fusedLstm(a, c), referenceLstm(c))),
      a.lstmIsa,
    );
  });

  it('is deterministic: the same inputs give the same bits', () => {
    const c = LSTM_CASES[5] ?? LSTM_CASES[0];
    assert.ok(c);
    assert.deepEqual(fusedLstm(a, c), fusedLstm(a, c));
  });

  for (const isa of ['avx2', 'portable']) {
    it(`agrees with the reference in its ${isa} build (DESCENT_LSTM_ISA=${isa})`, async () => {
      const { stdout } = await run(process.execPath, [CHILD], {
        env: { ...process.env, DESCENT_LSTM_ISA: isa },
        maxBuffer: 1 << 20,
      });
      const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
        isa: string;
        errors: number[][];
      };
      // A CPU without AVX2 runs the portable build when asked for avx2: that is what it ships.
      if (isa === 'portable' || a.lstmIsa !== 'portable') assert.equal(result.isa, isa);
      assertClose(result.errors, result.isa);
    });
  }

  it('refuses inputs that do not fit with a message, and the session stays usable', () => {
    const g = new GraphBuilder(new a.Graph());
    const x = g.placeholder(DT.float32, null);
    const kernel = g.placeholder(DT.float32, null);
    const recurrent = g.placeholder(DT.float32, null);
    const bias = g.placeholder(DT.float32, null);
    const [y] = g.ops('DescentLstm', [x, kernel, recurrent, bias], [], 2) as [Output, Output];
    const session = new a.Session(g.graph, { intraOpThreads: 1, interOpThreads: 1, xla: false });
    const f = (shape: number[]) => ({
      dtype: DT.float32,
      shape,
      data: new Float32Array(shape.reduce((p, n) => p * n, 1)),
    });
    const feeds = (
      xShape: number[],
      kShape: number[],
      rShape: number[],
      bShape: number[],
    ): [Output, ReturnType<typeof f>][] => [
      [x, f(xShape)],
      [kernel, f(kShape)],
      [recurrent, f(rShape)],
      [bias, f(bShape)],
    ];
    try {
      assert.throws(() => session.run(feeds([2, 3, 4], [5, 8], [2, 8], [8]), [y], []), /do not agree/);
      assert.throws(() => session.run(feeds([2, 0, 4], [4, 8], [2, 8], [8]), [y], []), /steps ≥ 1/);
      assert.throws(() => session.run(feeds([2, 3, 4], [4, 8], [2, 8], [4]), [y], []), /bias must be/);
      assert.throws(
        () => session.run(feeds([2, 3], [4, 8], [2, 8], [8]), [y], []),
        /x must be a float32 tensor of rank 3/,
      );
      const [ok] = session.run(feeds([2, 3, 4], [4, 8], [2, 8], [8]), [y], []);
      assert.deepEqual(ok?.shape, [2, 2]);
    } finally {
      session.close();
    }
  });
});
