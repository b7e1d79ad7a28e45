/**
 * The eight optimizers of the job spec as TensorFlow's raw resource-update ops, with tfjs's
 * parameters and the project's fixes (trainer/optimizers.ts): the update of each one equals, in exact
 * arithmetic, the eager optimizer's.
 *
 * - sgd, gd: `ResourceApplyGradientDescent`. momentum: `ResourceApplyMomentum` (tfjs's accumulation
 *   and Nesterov form are TensorFlow's).
 * - adam: `ResourceApplyAdam` with ε fed as ε·√(1 − β2^t): tfjs adds ε to the bias-corrected
 *   √v̂, TensorFlow to the uncorrected √v, and lr·√(1−β2^t)/(1−β1^t) · m / (√v + ε·√(1−β2^t)) is
 *   tfjs's lr · m̂ / (√v̂ + ε). β1^t, β2^t are variables multiplied after each step, starting at β
 *   (tfjs's `accBeta1`, `accBeta2`).
 * - adamax: `ResourceApplyAdaMax` (tfjs's formula, decay 0). rmsprop: `ResourceApplyRMSProp`, and
 *   `ResourceApplyCenteredRMSProp` for the centered variant, which is the project's fixed one.
 * - adagrad: tfjs divides by √(accum + ε) with ε = 1e-7; `ResourceApplyAdagrad` by √accum. The slot
 *   here holds accum + ε (initialised to initialAccumulatorValue + ε): adding g² to it keeps it so, and
 *   the update is tfjs's. Checkpoints of the compiled path store the shifted slot as it is.
 * - adadelta: `ResourceApplyAdadelta`, TensorFlow's definition, which the project's fix adopts.
 */
import type { OptimizerSpec } from '../../core/jobs/job-spec.ts';
import type { GraphBuilder, VariableRef } from './graph.ts';
import { DT, type Output } from './native.ts';

/** tfjs's `backend.epsilon()` for float32 (adagrad's ε). */
export const TFJS_EPSILON = 1e-7;

/** An optimizer variable: a slot per trainable weight, or a scalar of the optimizer. */
export interface OptimizerVariable {
  /** `slot<i>/<kind>` (i: the trainable weight's position) or the scalar's name. */
  name: string;
  variable: VariableRef;
  /** Value it starts at (each element). */
  initial: number;
}

export interface CompiledOptimizer {
  variables: OptimizerVariable[];
  /** The update ops of one step (after them: the scalars' own updates). */
  updates: number[];
}

const T: ['T', 'type', typeof DT.float32] = ['T', 'type', DT.float32];
const noLocking: ['use_locking', 'bool', boolean] = ['use_locking', 'bool', false];

/**
 * Builds the optimizer's variables and the ops of one step, for `weights` (variables) with gradients
 * `grads` (same order) and the learning rate `lr` (a scalar output).
 */
export function buildOptimizer(
  g: GraphBuilder,
  spec: OptimizerSpec,
  weights: VariableRef[],
  grads: Output[],
  lr: Output,
): CompiledOptimizer {
  const variables: OptimizerVariable[] = [];
  const slot = (i: number, kind: string, initial = 0): VariableRef => {
    const variable = g.variable(DT.float32, (weights[i] as VariableRef).shape);
    variables.push({ name: `slot${i}/${kind}`, variable, initial });
    return variable;
  };
  const scalarVar = (name: string, initial: number): VariableRef => {
    const variable = g.variable(DT.float32, []);
    variables.push({ name, variable, initial });
    return variable;
  };
  const c = (v: number) => g.scalar(v);
  const updates: number[] = [];
  const each = (make: (w: VariableRef, grad: Output, i: number) => number) =>
    weights.forEach((w, i) => {
      updates.push(make(w, grads[i] as Output, i));
    });

  switch (spec.type) {
    case 'gd':
    case 'sgd':
      each((w, grad) => g.add('ResourceApplyGradientDescent', [w.handle, lr, grad], [T, noLocking]));
      break;
    case 'momentum':
      each((w, grad, i) =>
        g.add(
          'ResourceApplyMomentum',
          [w.handle, slot(i, 'accumulation').handle, lr, grad, c(spec.momentum)],
          [T, noLocking, ['use_nesterov', 'bool', spec.useNesterov]],
        ),
      );
      break;
    case 'adam': {
      const powers = [scalarVar('beta1Power', spec.beta1), scalarVar('beta2Power', spec.beta2)] as const;
      const [b1p, b2p] = powers.map((p) => g.read(p)) as [Output, Output];
      const epsilon = g.mul(c(spec.epsilon), g.sqrt(g.sub(c(1), b2p)));
      each((w, grad, i) =>
        g.add(
          'ResourceApplyAdam',
          [
            w.handle,
            slot(i, 'm').handle,
            slot(i, 'v').handle,
            b1p,
            b2p,
            lr,
            c(spec.beta1),
            c(spec.beta2),
            epsilon,
            grad,
          ],
          [T, noLocking, ['use_nesterov', 'bool', false]],
        ),
      );
      advancePowers(g, updates, [
        [powers[0], b1p, spec.beta1],
        [powers[1], b2p, spec.beta2],
      ]);
      break;
    }
    case 'adamax': {
      const power = scalarVar('beta1Power', spec.beta1);
      const b1p = g.read(power);
      each((w, grad, i) =>
        g.add(
          'ResourceApplyAdaMax',
          [
            w.handle,
            slot(i, 'm').handle,
            slot(i, 'u').handle,
            b1p,
            lr,
            c(spec.beta1),
            c(spec.beta2),
            c(spec.epsilon),
            grad,
          ],
          [T, noLocking],
        ),
      );
      advancePowers(g, updates, [[power, b1p, spec.beta1]]);
      break;
    }
    case 'rmsprop':
      each((w, grad, i) => {
        const ms = slot(i, 'meanSquare').handle;
        const mom = slot(i, 'moment').handle;
        const rest = [lr, c(spec.rho), c(spec.momentum), c(spec.epsilon), grad];
        return spec.centered
          ? g.add(
              'ResourceApplyCenteredRMSProp',
              [w.handle, slot(i, 'meanGradient').handle, ms, mom, ...rest],
              [T, noLocking],
            )
          : g.add('ResourceApplyRMSProp', [w.handle, ms, mom, ...rest], [T, noLocking]);
      });
      break;
    case 'adagrad':
      each((w, grad, i) =>
        g.add(
          'ResourceApplyAdagrad',
          [
            w.handle,
            slot(i, 'accumulatorPlusEpsilon', Math.fround(spec.initialAccumulatorValue + TFJS_EPSILON))
              .handle,
            lr,
            grad,
          ],
          [T, noLocking, ['update_slots', 'bool', true]],
        ),
      );
      break;
    case 'adadelta':
      each((w, grad, i) =>
        g.add(
          'ResourceApplyAdadelta',
          [
            w.handle,
            slot(i, 'accumulatedGrad').handle,
            slot(i, 'accumulatedUpdate').handle,
            lr,
            c(spec.rho),
            c(spec.epsilon),
            grad,
          ],
          [T, noLocking],
        ),
      );
      break;
  }
  return { variables, updates };
}

/** β^t ← β^t · β once every weight is updated (the updates read the value before). */
function advancePowers(g: GraphBuilder, updates: number[], powers: [VariableRef, Output, number][]): void {
  const applied = [...updates];
  for (const [variable, value, beta] of powers) {
    updates.push(g.withControl(applied, () => g.assign(variable, g.mul(value, g.scalar(beta)))));
  }
}
