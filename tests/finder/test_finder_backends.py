"""`find_lr` gives the TensorFlow curve on every backend (JAX, PyTorch), jit on and off.

The TensorFlow numbers are stored in ``finder_tf_reference.json`` (written on TensorFlow by
``KERAS_BACKEND=tensorflow python tests/finder/test_finder_backends.py``); on TensorFlow the
test checks that the file is still what TensorFlow computes, elsewhere that the backend agrees
with it. Weights come from NumPy (Keras's initializers draw different numbers per backend) and
the models have no dropout (so do its random masks), so every backend starts from the same
state and trains on the same batches (`finder.data` plans them in NumPy).
"""

from __future__ import annotations

import json
import os
import pathlib

import keras
import numpy as np
import pytest
from backend_utils import JIT_MODES

from keras_lr.finder import find_lr

REFERENCE = pathlib.Path(__file__).with_name("finder_tf_reference.json")
RNG = np.random.default_rng(7)
X = RNG.normal(size=(88, 6)).astype("float32")  # 5 full batches of 16 and one of 8 per pass
Y = ((X[:, 0] - X[:, 1] > 0).astype("int32") + (X[:, 2] > 0.5)).astype("int32")
Y_REG = (X @ RNG.normal(size=(6, 1)) + 0.1).astype("float32")


def _optimizer(case):
    if case == "adam":
        return keras.optimizers.Adam(1e-3)
    if case == "sgd-schedule":
        return keras.optimizers.SGD(
            keras.optimizers.schedules.CosineDecay(0.05, 40), momentum=0.9, nesterov=True)
    if case == "sgd-diverges":
        return keras.optimizers.SGD(0.01)
    if case == "lrwrapper-adamw":
        from keras_lr.optimizers import LRWrapper

        return LRWrapper(keras.optimizers.AdamW(
            keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.5), weight_decay=0.05))
    raise AssertionError(case)


def model_for(case, jit_compile):
    if case == "sgd-diverges":  # linear least squares: the blow-up is geometric, not chaotic
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1)])
        model.set_weights([np.full((6, 1), 0.1, "float32"), np.zeros(1, "float32")])
        model.compile(optimizer=_optimizer(case), loss="mse", jit_compile=jit_compile)
        return model
    model = keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(12, activation="relu"),
        keras.layers.BatchNormalization(), keras.layers.Dense(3, activation="softmax"),
    ])
    rng = np.random.default_rng(11)
    model.set_weights([
        (rng.normal(size=w.shape) * 0.5).astype("float32") if w.ndim == 2 else
        np.asarray(w) for w in model.get_weights()
    ])
    model.compile(optimizer=_optimizer(case), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit_compile)
    return model


CASES = ["adam", "sgd-schedule", "lrwrapper-adamw", "sgd-diverges"]
ARGS = dict(batch_size=16, start_lr=1e-4, num_steps=30, smoothing=0.9, seed=3,
            steps_per_chunk=8, restore=False)
# Rates that stay below the chaotic regime: at Adam rates of ~1, a gradient component near 0
# flips its update's sign on a float32 rounding, and the backends part ways within a step.
END_LR = {"adam": 0.1, "sgd-schedule": 0.5, "lrwrapper-adamw": 0.1, "sgd-diverges": 30.0}


def compute(case, jit_compile):
    model = model_for(case, jit_compile)
    y = Y_REG if case == "sgd-diverges" else Y
    model.fit(X, y, batch_size=16, epochs=1, shuffle=False, verbose=0)  # non-zero slots
    result = find_lr(model, X, y, end_lr=END_LR[case], **ARGS)
    return {
        "losses": result.losses.tolist(),
        "smoothed": result.smoothed_losses.tolist(),
        "stop_reason": result.stop_reason,
        "weights": [np.asarray(w).ravel().tolist() for w in model.get_weights()],
    }


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", JIT_MODES)
@pytest.mark.parametrize("case", CASES)
def test_curve_and_reached_state_match_tensorflow(case, jit_compile):
    expected = json.loads(REFERENCE.read_text())[case]
    got = compute(case, jit_compile)
    assert got["stop_reason"] == expected["stop_reason"]
    assert len(got["losses"]) == len(expected["losses"])
    np.testing.assert_allclose(got["losses"], expected["losses"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got["smoothed"], expected["smoothed"], rtol=1e-5, atol=1e-7)
    for a, b in zip(got["weights"], expected["weights"]):  # restore=False: the state reached
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


if __name__ == "__main__":  # regenerate the reference on TensorFlow
    assert keras.backend.backend() == "tensorflow", os.environ.get("KERAS_BACKEND")
    REFERENCE.write_text(json.dumps({case: compute(case, False) for case in CASES}) + "\n")
    print(f"wrote {REFERENCE}")


@pytest.mark.backends("jax", reason="the JAX loop's blocks of steps_per_execution steps")
def test_jax_blocks_stop_inside_a_block_at_the_state_reached():
    """With blocks of 3 steps, a divergence stop inside a block (``restore=False``) leaves the
    state of the last kept step: the rerun of the chunk's blocks masks the block's later
    steps. Same curve and weights as one step per block, bit for bit."""
    def run(steps_per_execution):
        model = model_for("sgd-diverges", True)
        model.fit(X, Y_REG, batch_size=16, epochs=1, shuffle=False, verbose=0)
        model.steps_per_execution = steps_per_execution
        result = find_lr(model, X, Y_REG, end_lr=END_LR["sgd-diverges"], **ARGS)
        return result, model.get_weights()

    (one, one_weights), (three, three_weights) = run(1), run(3)
    assert three.stop_reason == one.stop_reason == "diverged"
    kept = len(three.losses)
    assert kept < ARGS["num_steps"] and (kept - 1) % ARGS["steps_per_chunk"] % 3 != 2
    np.testing.assert_array_equal(three.losses, one.losses)
    for a, b in zip(three_weights, one_weights, strict=True):
        np.testing.assert_array_equal(a, b)
