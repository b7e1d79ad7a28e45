/** Saving a trained model in the standard TensorFlow.js layers format (`model.json` + `weights.bin`). */
import type { LayersModel } from '@tensorflow/tfjs';
import type { TF } from './backend.ts';

export interface SavedModel {
  modelJson: Record<string, unknown>;
  weights: Uint8Array;
}

/**
 * Serialises without any file-system IO handler (tfjs-node's `file://` is not always there):
 * `tf.loadLayersModel` reads the result unchanged. `metadata` lands in `userDefinedMetadata`.
 */
export async function serializeModel(
  tf: TF,
  model: LayersModel,
  metadata: Record<string, unknown>,
): Promise<SavedModel> {
  model.setUserDefinedMetadata(metadata);
  let saved: SavedModel | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData;
      const buffer =
        data === undefined
          ? new ArrayBuffer(0)
          : Array.isArray(data)
            ? tf.io.concatenateArrayBuffers(data)
            : data;
      saved = {
        modelJson: {
          format: 'layers-model',
          generatedBy: artifacts.generatedBy,
          convertedBy: null,
          modelTopology: artifacts.modelTopology,
          weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
          userDefinedMetadata: artifacts.userDefinedMetadata,
        },
        weights: new Uint8Array(buffer),
      };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!saved) throw new Error('the model was not serialised');
  return saved;
}
