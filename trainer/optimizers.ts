/**
 * Two TensorFlow.js 4.22 optimizers whose updates differ from TensorFlow's (and Keras's), found
 * by the optimizer check in test/gradients/ against a plain-JS reference, supplied here as
 * subclasses that keep the stock classes' state slots, names and serialisation (checkpoints and
 * `includeOptimizer` saves are unchanged):
 *
 * - Adadelta divides by the accumulated squared gradient of the step *before* (tfjs reads the old
 *   slot after computing the new one). TensorFlow's ApplyAdadelta:
 *       accum ← ρ·accum + (1 − ρ)·g²
 *       update ← √(accum_update + ε) / √(accum + ε) · g
 *       accum_update ← ρ·accum_update + (1 − ρ)·update²;   w ← w − lr·update
 *   With the stale slot the first step is update = g (√ε/√ε), i.e. w − lr·g at the default
 *   learning rate 1: a full gradient step where TensorFlow takes one of about √(ε / (1 − ρ)).
 * - Centered RMSProp subtracts ε under the square root (√(ms − mg² − ε)) instead of adding it
 *   (TensorFlow's ApplyCenteredRMSProp: √(ms − mg² + ε)). When the gradient's variance falls
 *   below ε (a steady gradient) the root is of a negative number and the weights become NaN.
 *   Uncentered RMSProp is right and runs the stock code.
 */
import type { NamedTensorMap, Optimizer, Tensor, Variable } from '@tensorflow/tfjs';
import type { TF } from './backend.ts';

type Slot = { originalName: string; variable: Variable };
type Gradients = NamedTensorMap | { name: string; tensor: Tensor }[];

interface AdadeltaInternals {
  learningRate: number;
  rho: number;
  epsilon: number;
  accumulatedGrads: Slot[];
  accumulatedUpdates: Slot[];
  incrementIterations(): void;
}

interface RmspropInternals {
  learningRate: number;
  decay: number;
  momentum: number;
  epsilon: number;
  centered: boolean;
  accumulatedMeanSquares: Slot[];
  accumulatedMoments: Slot[];
  accumulatedMeanGrads: Slot[];
  incrementIterations(): void;
}

const namesOf = (g: Gradients) => (Array.isArray(g) ? g.map((v) => v.name) : Object.keys(g));
const gradientOf = (g: Gradients, name: string, i: number): Tensor | undefined =>
  Array.isArray(g) ? g[i]?.tensor : g[name];

/** A non-trainable slot of zeros shaped like the variable, created once (as the stock classes do). */
function slot(tf: TF, slots: Slot[], i: number, name: string, like: Variable): Variable {
  slots[i] ??= { originalName: name, variable: tf.tidy(() => tf.zerosLike(like).variable(false)) };
  return slots[i].variable;
}

interface Classes {
  Adadelta: new (learningRate: number, rho: number, epsilon: number) => Optimizer;
  RMSProp: new (
    learningRate: number,
    decay: number,
    momentum: number,
    epsilon: number,
    centered: boolean,
  ) => Optimizer;
}
const cache = new WeakMap<object, Classes>();

function classesFor(tf: TF): Classes {
  const known = cache.get(tf.engine());
  if (known) return known;

  class Adadelta extends tf.AdadeltaOptimizer {
    override applyGradients(variableGradients: Gradients): void {
      const o = this as unknown as AdadeltaInternals;
      namesOf(variableGradients).forEach((name, i) => {
        const value = tf.engine().registeredVariables[name] as Variable;
        const accGrad = slot(tf, o.accumulatedGrads, i, `${name}/accum_grad`, value);
        const accUpdate = slot(tf, o.accumulatedUpdates, i, `${name}/accum_var`, value);
        const g = gradientOf(variableGradients, name, i);
        if (g == null) return;
        tf.tidy(() => {
          const newAccGrad = tf.add(tf.mul(accGrad, o.rho), tf.mul(tf.square(g), 1 - o.rho));
          const update = tf.mul(
            tf.div(tf.sqrt(tf.add(accUpdate, o.epsilon)), tf.sqrt(tf.add(newAccGrad, o.epsilon))),
            g,
          );
          const newAccUpdate = tf.add(tf.mul(accUpdate, o.rho), tf.mul(tf.square(update), 1 - o.rho));
          accGrad.assign(newAccGrad);
          accUpdate.assign(newAccUpdate);
          value.assign(tf.add(tf.mul(update, -o.learningRate), value));
        });
      });
      o.incrementIterations();
    }
  }

  class RMSProp extends tf.RMSPropOptimizer {
    override applyGradients(variableGradients: Gradients): void {
      const o = this as unknown as RmspropInternals;
      if (!o.centered) {
        super.applyGradients(variableGradients);
        return;
      }
      namesOf(variableGradients).forEach((name, i) => {
        const value = tf.engine().registeredVariables[name] as Variable;
        const ms = slot(tf, o.accumulatedMeanSquares, i, `${name}/rms`, value);
        const mom = slot(tf, o.accumulatedMoments, i, `${name}/momentum`, value);
        const mg = slot(tf, o.accumulatedMeanGrads, i, `${name}/mg`, value);
        const g = gradientOf(variableGradients, name, i);
        if (g == null) return;
        tf.tidy(() => {
          const newMs = tf.add(tf.mul(ms, o.decay), tf.mul(tf.square(g), 1 - o.decay));
          const newMg = tf.add(tf.mul(mg, o.decay), tf.mul(g, 1 - o.decay));
          const denominator = tf.sqrt(tf.add(tf.sub(newMs, tf.square(newMg)), o.epsilon));
          const newMom = tf.add(tf.mul(mom, o.momentum), tf.div(tf.mul(g, o.learningRate), denominator));
          ms.assign(newMs);
          mg.assign(newMg);
          mom.assign(newMom);
          value.assign(tf.sub(value, newMom));
        });
      });
      o.incrementIterations();
    }
  }

  const classes: Classes = { Adadelta, RMSProp };
  cache.set(tf.engine(), classes);
  return classes;
}

/** Adadelta as TensorFlow defines it (see above). */
export function adadelta(tf: TF, learningRate: number, rho: number, epsilon: number): Optimizer {
  return new (classesFor(tf).Adadelta)(learningRate, rho, epsilon);
}

/** RMSProp; the centered variant as TensorFlow defines it (see above). */
export function rmsprop(
  tf: TF,
  learningRate: number,
  decay: number,
  momentum: number,
  epsilon: number,
  centered: boolean,
): Optimizer {
  return new (classesFor(tf).RMSProp)(learningRate, decay, momentum, epsilon, centered);
}
