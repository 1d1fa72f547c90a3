"""Tiny models, data and spy callbacks shared by the callback tests."""

from __future__ import annotations

import keras
import numpy as np


def regression_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5)).astype("float32")
    y = (x @ rng.standard_normal((5, 1))).astype("float32")
    return x, y


def tiny_model(optimizer, seed=1, jit_compile="auto", steps_per_execution=1):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8, activation="tanh", name="hidden"),
         keras.layers.Dense(1, name="out")]
    )
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)
    return model


def values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def cosine(initial, decay_steps, step):
    """Keras CosineDecay (alpha=0), written out."""
    t = min(step, decay_steps) / decay_steps
    return initial * 0.5 * (1.0 + np.cos(np.pi * t))


class Recorder(keras.callbacks.Callback):
    """Records the logs it sees (epoch and batch ends): put it after the callback under test."""

    def __init__(self):
        super().__init__()
        self.epochs, self.batches = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(dict(logs or {}))

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append((batch, dict(logs or {})))
