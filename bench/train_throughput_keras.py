"""Keras 3 reference for bench/train-throughput.ts (not a project dependency; not run by CI).

Trains one shape with Keras 3 on TensorFlow the way its users would: `model.fit` on in-memory
arrays, shuffled every epoch, Adam at 1e-3 (epsilon 1e-7), sparse categorical cross-entropy, the
accuracy metric, `steps_per_execution` so that several steps run per call into the graph, and XLA
as Keras chooses (`jit_compile="auto"`), or on/off when told. Prints one JSON line:
{"shape", "batch", "threads", "keras", "tensorflow", "jit", "windows": [samples/s, ...]}.

    python bench/train_throughput_keras.py SHAPE BATCH STEPS_PER_WINDOW WINDOWS [THREADS] [JIT]

SHAPE is mlp (784-256-128-10), cnn (conv3x3x16, maxpool 2, conv3x3x32, dense 10 on 28x28x1) or
lstm (LSTM(64) on 50 steps of 16 features, dense 10). JIT: auto (default), on or off. The first
window (epoch) is a warm-up: it includes tracing and compilation.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def main():
    shape, batch, steps, windows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    jit = sys.argv[6] if len(sys.argv) > 6 else "auto"
    import numpy as np
    import tensorflow as tf

    # Before any op: the thread pools are fixed once TensorFlow starts.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    if shape == "mlp":
        inputs = keras.Input((784,))
        x = layers.Dense(256, activation="relu")(inputs)
        x = layers.Dense(128, activation="relu")(x)
        input_shape = (784,)
    elif shape == "cnn":
        inputs = keras.Input((28, 28, 1))
        x = layers.Conv2D(16, 3, activation="relu")(inputs)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Conv2D(32, 3, activation="relu")(x)
        x = layers.Flatten()(x)
        input_shape = (28, 28, 1)
    elif shape == "lstm":
        inputs = keras.Input((50, 16))
        x = layers.LSTM(64)(inputs)
        input_shape = (50, 16)
    else:
        raise SystemExit(f"unknown shape {shape}")
    outputs = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps,
        jit_compile={"auto": "auto", "on": True, "off": False}[jit],
    )
    n = batch * steps
    rng = np.random.default_rng(7)
    x_data = rng.random((n, *input_shape), dtype=np.float32)
    y_data = rng.integers(0, 10, n).astype(np.int32)

    marks = []

    class Mark(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if not marks:
                marks.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            marks.append(time.perf_counter())

    model.fit(x_data, y_data, batch_size=batch, epochs=windows + 1, shuffle=True, verbose=0, callbacks=[Mark()])
    rates = [n / (b - a) for a, b in zip(marks, marks[1:])]
    print(json.dumps({
        "shape": shape, "batch": batch, "threads": threads, "keras": keras.__version__,
        "tensorflow": tf.__version__, "jit": jit, "windows": rates[1:],
    }))


if __name__ == "__main__":
    main()
