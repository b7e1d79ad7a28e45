/**
 * The port to the code that runs a published model (TensorFlow.js, outside core/): `inference/`
 * implements it for the predict route (CPU backend, models cached per container) and for batch
 * predictions on the workers (the worker's backend).
 */

/** A published model: the SUCCEEDED job whose `model/` it is. */
export interface ModelRef {
  readonly tenant: string;
  readonly jobId: string;
}

/** Which output an explanation follows for a row: `sign · output[unit]` (1 − p of a sigmoid is `-p` + 1). */
export interface ExplainTarget {
  readonly unit: number;
  readonly sign: 1 | -1;
}

export interface ModelRunner {
  /** Raw outputs for `n` encoded rows (row-major), row-major `[n × units]`. */
  run(model: ModelRef, x: Float32Array, n: number): Promise<Float32Array>;
  /**
   * Integrated gradients of each row's target output along the straight path from `baseline` to the
   * row, in encoded inputs (row-major `[n × width]`), with `steps` trapezoid steps: their sum is
   * close to target(row) − target(baseline).
   */
  integratedGradients(
    model: ModelRef,
    x: Float32Array,
    n: number,
    baseline: Float32Array,
    targets: readonly ExplainTarget[],
    steps: number,
  ): Promise<Float32Array>;
}
