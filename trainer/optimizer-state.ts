/**
 * An optimizer's whole state, for checkpoints. `getWeights()` misses what a bitwise resume needs —
 * Adam's running β powers are recomputed with `pow` on restore, which differs from the running
 * product in the last bits, and Adamax implements neither `getWeights` nor `setWeights` — so those
 * two are read and restored field by field here.
 */
import type { Optimizer, Scalar, Tensor, Variable } from '@tensorflow/tfjs';
import type { TF } from './backend.ts';
import type { NamedTensor } from './engine.ts';

export interface OptimizerState {
  tensors: NamedTensor[];
  scalars: Record<string, number>;
  /** The tensors were made for this capture (the compiled engine's): dispose them after use. */
  owned?: boolean;
}

type Slot = { originalName: string; variable: Variable };
interface AdamInternals {
  accBeta1: Variable;
  accBeta2?: Variable;
  iteration?: Variable;
  accumulatedFirstMoment: Slot[];
  accumulatedWeightedInfNorm?: Slot[];
}

const className = (o: Optimizer) =>
  (o.constructor as unknown as { className?: string }).className ?? o.getClassName();
const scalarOf = (v: Variable) => v.dataSync()[0] as number;

export async function captureOptimizer(optimizer: Optimizer): Promise<OptimizerState> {
  const name = className(optimizer);
  const o = optimizer as unknown as AdamInternals;
  if (name === 'Adamax') {
    return {
      tensors: [
        ...o.accumulatedFirstMoment.map((s, i) => ({ name: `m${i}`, tensor: s.variable as Tensor })),
        ...(o.accumulatedWeightedInfNorm ?? []).map((s, i) => ({
          name: `u${i}`,
          tensor: s.variable as Tensor,
        })),
      ],
      scalars: {
        accBeta1: scalarOf(o.accBeta1),
        iteration: scalarOf(o.iteration as Variable),
        slots: o.accumulatedFirstMoment.length,
      },
    };
  }
  const tensors = await optimizer.getWeights();
  if (name === 'Adam')
    return {
      tensors,
      scalars: { accBeta1: scalarOf(o.accBeta1), accBeta2: scalarOf(o.accBeta2 as Variable) },
    };
  return { tensors, scalars: {} };
}

/** Restores the state into a fresh optimizer of the same kind; the given tensors may be disposed afterwards. */
export async function restoreOptimizer(tf: TF, optimizer: Optimizer, state: OptimizerState): Promise<void> {
  const name = className(optimizer);
  const o = optimizer as unknown as AdamInternals;
  const assign = (v: Variable | undefined, value: number | undefined) => {
    if (v && value !== undefined) tf.tidy(() => v.assign(tf.scalar(value) as Scalar));
  };
  if (name === 'Adamax') {
    const slots = state.scalars.slots ?? 0;
    const slot = (prefix: string) =>
      Array.from({ length: slots }, (_, i) => {
        const t = state.tensors.find((n) => n.name === `${prefix}${i}`)?.tensor as Tensor;
        return { originalName: `${prefix}${i}`, variable: tf.variable(t, false) };
      });
    o.accumulatedFirstMoment = slot('m');
    o.accumulatedWeightedInfNorm = slot('u');
    assign(o.accBeta1, state.scalars.accBeta1);
    assign(o.iteration, state.scalars.iteration);
    return;
  }
  if (state.tensors.length) await optimizer.setWeights(state.tensors);
  if (name === 'Adam') {
    assign(o.accBeta1, state.scalars.accBeta1);
    assign(o.accBeta2, state.scalars.accBeta2);
  }
}
