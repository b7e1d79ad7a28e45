/**
 * Fine-tuning: load a base model (an earlier job's, or an uploaded TensorFlow.js layers model),
 * optionally replace its output layer for this task, and freeze layers by count or name.
 */
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs';
import { z } from 'zod';
import type { JobSpec } from '../core/jobs/job-spec.ts';
import { UnrecoverableError } from '../core/platform/errors.ts';
import { fromJson } from '../core/platform/json.ts';
import { datasetKeys, isValidId, jobKeys } from '../core/platform/keys.ts';
import type { ObjectStore } from '../core/platform/ports.ts';
import type { TF } from './backend.ts';
import { makeInitializer, type OutputSpec } from './model-builder.ts';

const invalid = (message: string) => new UnrecoverableError('INVALID_SPEC', message);

/** What a TensorFlow.js layers model's `model.json` must hold for descent to load it. */
const layersModelJson = z.object({
  modelTopology: z.record(z.string(), z.unknown()),
  weightsManifest: z.array(
    z.object({
      paths: z.array(z.string()),
      weights: z.array(z.object({ name: z.string(), shape: z.array(z.int().min(0)), dtype: z.string() })),
    }),
  ),
});
type WeightsManifestEntry = Parameters<TF['io']['decodeWeights']>[1][number];

export async function loadBaseModel(
  tf: TF,
  store: ObjectStore,
  tenant: string,
  spec: JobSpec,
): Promise<LayersModel | undefined> {
  const base = spec.model.baseModel;
  if (!base) return undefined;
  const id = 'jobId' in base ? base.jobId : base.datasetId;
  if (!isValidId(id)) throw invalid(`model.baseModel: ${id} is not an id.`);
  const keys = 'jobId' in base ? jobKeys(tenant, id) : datasetKeys(tenant, id);
  const [json, weights] = await Promise.all([store.get(keys.modelJson), store.get(keys.weights)]);
  if (!json || !weights) {
    throw invalid(
      'jobId' in base
        ? `model.baseModel.jobId: job ${id} has no model in this account (it must have SUCCEEDED).`
        : `model.baseModel.datasetId: dataset ${id} has no uploaded model.json and weights.bin.`,
    );
  }
  try {
    const parsed = layersModelJson.safeParse(fromJson(json.body));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new Error(
        `model.json is not a layers model's (${issue?.path.join('.') || 'root'}: ${issue?.message})`,
      );
    }
    const manifest = parsed.data;
    const weightSpecs = manifest.weightsManifest.flatMap((group) => group.weights) as WeightsManifestEntry[];
    const buffer = weights.body.buffer.slice(
      weights.body.byteOffset,
      weights.body.byteOffset + weights.body.byteLength,
    ) as ArrayBuffer;
    return await tf.loadLayersModel(
      tf.io.fromMemory({ modelTopology: manifest.modelTopology, weightSpecs, weightData: buffer }),
    );
  } catch (error) {
    throw invalid(
      `model.baseModel: the base model could not be loaded as a TensorFlow.js layers model: ${(error as Error).message}`,
    );
  }
}

/** The model to train: the base with a new head (default) or as it is, with the frozen layers fixed. */
export function deriveModel(
  tf: TF,
  base: LayersModel,
  spec: JobSpec,
  inputShape: number[],
  output: OutputSpec,
): LayersModel {
  const expected = base.inputs[0]?.shape.slice(1) ?? [];
  if (JSON.stringify(expected) !== JSON.stringify(inputShape)) {
    throw invalid(
      `model.baseModel expects inputs of shape [${expected.join(', ')}], but this job's features encode to [${inputShape.join(', ')}].`,
    );
  }
  let model = base;
  if (spec.model.replaceHead ?? true) {
    const features = (
      base.layers.length >= 2 ? base.layers[base.layers.length - 2]?.output : base.inputs[0]
    ) as SymbolicTensor;
    const head = tf.layers.dense({
      name: 'output_finetuned',
      units: output.units,
      activation: output.activation as 'linear',
      kernelInitializer: makeInitializer(tf, 'glorotUniform', spec.training.seed + 1_000_003),
    });
    model = tf.model({ inputs: base.inputs, outputs: head.apply(features) as SymbolicTensor });
  } else {
    const units = base.outputs[0]?.shape[base.outputs[0].shape.length - 1];
    if (units !== output.units) {
      throw invalid(
        `model.replaceHead is false but the base model has ${units} output units and this task needs ${output.units}.`,
      );
    }
  }
  const freeze = spec.model.freeze;
  if (freeze !== undefined) {
    // The base model's layers: a new head always trains.
    const layers = model.layers.filter(
      (l) => l.getClassName() !== 'InputLayer' && l.name !== 'output_finetuned',
    );
    if (typeof freeze === 'number') {
      if (freeze > layers.length)
        throw invalid(
          `model.freeze is ${freeze} but the base model keeps ${layers.length} layer${layers.length === 1 ? '' : 's'}${model === base ? '' : ' (its output layer is replaced by a new head, which always trains)'}.`,
        );
      layers.slice(0, freeze).forEach((l) => {
        l.trainable = false;
      });
    } else {
      const unknown = freeze.filter((name) => !layers.some((l) => l.name === name));
      if (unknown.length)
        throw invalid(
          `model.freeze names unknown layers ${unknown.join(', ')}; the layers are ${layers.map((l) => l.name).join(', ')}.`,
        );
      for (const l of layers) if (freeze.includes(l.name)) l.trainable = false;
    }
    if (model.trainableWeights.length === 0) {
      throw invalid(
        `model.freeze ${JSON.stringify(freeze)} leaves no layer to train (the model's layers are ${layers.map((l) => l.name).join(', ')}); freeze fewer layers.`,
      );
    }
  }
  if (model.trainableWeights.length === 0)
    throw invalid(
      'model.freeze leaves no layer to train: freeze fewer layers, or replace the head (replaceHead).',
    );
  return model;
}
