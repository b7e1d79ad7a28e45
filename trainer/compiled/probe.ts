/**
 * The compiled engine's parts, run on their own for the checks in test/gradients/ (the gradient
 * check's harness registers the compiled path like a backend; trainer/kernel-registry.ts names its
 * cases): the step graph's predictions and gradients for one batch, and the optimizer's updates for
 * given gradients. Each call builds a small graph and session of its own and closes it.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { LossName, OptimizerSpec } from '../../core/jobs/job-spec.ts';
import { GraphBuilder, type VariableRef } from './graph.ts';
import { DT, type GraphAddon, type NativeSession, type Output, type TensorValue } from './native.ts';
import { buildOptimizer } from './optimizers.ts';
import { buildStep, weightVariables } from './step-graph.ts';

const ONE_THREAD = { intraOpThreads: 1, interOpThreads: 1, xla: false };

/** Loads `values` into `variables` through placeholders (made before the session starts). */
function loaders(g: GraphBuilder, variables: VariableRef[]) {
  const list = variables.map((variable) => {
    const placeholder = g.placeholder(variable.dtype, variable.shape);
    return { placeholder, assign: g.assign(variable, placeholder) };
  });
  return (session: NativeSession, values: TensorValue[]) =>
    session.run(
      list.map((l, i) => [l.placeholder, values[i] as TensorValue]),
      [],
      list.map((l) => l.assign),
    );
}

export interface GradientProbeInput {
  /** The model's weights, in `model.weights` order. */
  weights: TensorValue[];
  x: TensorValue;
  y: TensorValue;
  rowWeights?: TensorValue;
  loss: LossName;
  /** The dropout seed. */
  seed: [number, number];
  /** Also the gradient with respect to the input (not for integer inputs). */
  inputGradient: boolean;
}

export interface GradientProbeResult {
  pred: TensorValue;
  loss: number;
  /** By weight name (`originalName`), trainable weights only. */
  grads: Map<string, TensorValue>;
  input?: TensorValue;
  /** Dropout multipliers by layer name. */
  masks: Map<string, TensorValue>;
}

/** Predictions, loss and gradients of one training-mode step of `model` on a batch. */
export function gradientProbe(
  addon: GraphAddon,
  model: LayersModel,
  input: GradientProbeInput,
): GradientProbeResult {
  const graph = new addon.Graph();
  const g = new GraphBuilder(graph);
  const weights = weightVariables(g, model);
  const x = g.placeholder(DT.float32, [-1, ...input.x.shape.slice(1)]);
  const y = g.placeholder(DT.float32, [-1, ...input.y.shape.slice(1)]);
  const rowWeights = input.rowWeights ? g.placeholder(DT.float32, [-1]) : undefined;
  const seed = g.ints(input.seed);
  const step = buildStep(
    g,
    model,
    weights,
    input.loss,
    { x, y, seed, ...(rowWeights ? { rowWeights } : {}) },
    input.inputGradient ? [x] : [],
  );
  const load = loaders(
    g,
    weights.map((w) => w.variable),
  );
  const masks = [...step.masks];
  const session = new addon.Session(graph, ONE_THREAD);
  try {
    load(session, input.weights);
    const feeds: [Output, TensorValue][] = [
      [x, input.x],
      [y, input.y],
    ];
    if (rowWeights && input.rowWeights) feeds.push([rowWeights, input.rowWeights]);
    const fetches = [
      step.pred,
      step.loss,
      ...step.grads.map((s) => s.grad),
      ...step.inputGrads,
      ...masks.map(([, m]) => m),
    ];
    const out = session.run(feeds, fetches, step.updates);
    const [pred, loss] = out as [TensorValue, TensorValue];
    const grads = out.slice(2, 2 + step.grads.length);
    const rest = out.slice(2 + step.grads.length);
    return {
      pred,
      loss: loss.data[0] as number,
      grads: new Map(step.grads.map((s, i) => [s.weight.name, grads[i] as TensorValue])),
      ...(input.inputGradient ? { input: rest[0] as TensorValue } : {}),
      masks: new Map(masks.map(([name], i) => [name, rest[step.inputGrads.length + i] as TensorValue])),
    };
  } finally {
    session.close();
  }
}

/** The weights after the compiled optimizer applied `grads[t]` at each step t (learning rate fixed). */
export function optimizerProbe(
  addon: GraphAddon,
  spec: OptimizerSpec,
  initial: TensorValue[],
  grads: TensorValue[][],
): TensorValue[] {
  const graph = new addon.Graph();
  const g = new GraphBuilder(graph);
  const variables = initial.map((w) => g.variable(DT.float32, w.shape));
  const placeholders = initial.map((w) => g.placeholder(DT.float32, w.shape));
  const optimizer = buildOptimizer(g, spec, variables, placeholders, g.scalar(spec.learningRate));
  const step = g.group(optimizer.updates);
  const load = loaders(g, [...variables, ...optimizer.variables.map((v) => v.variable)]);
  const reads = variables.map((v) => g.read(v));
  const session = new addon.Session(graph, ONE_THREAD);
  try {
    const fill = (v: VariableRef, value: number): TensorValue => ({
      dtype: DT.float32,
      shape: v.shape,
      data: new Float32Array(v.shape.reduce((a, b) => a * b, 1)).fill(value),
    });
    load(session, [...initial, ...optimizer.variables.map((v) => fill(v.variable, v.initial))]);
    for (const gradients of grads) {
      session.run(
        placeholders.map((p, i) => [p, gradients[i] as TensorValue]),
        [],
        [step],
      );
    }
    return session.run([], reads, []);
  } finally {
    session.close();
  }
}
