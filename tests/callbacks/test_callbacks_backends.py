"""LRMonitor, LRScheduler and ReduceLROnPlateau give the TensorFlow numbers on every backend.

Each case trains a small model with the callbacks in `model.fit` (jit on and off where the
backend has it) and compares the logged rates, losses and the final weights with the numbers
TensorFlow gave, stored in ``callbacks_tf_reference.json`` (regenerate on TensorFlow with
``PYTHONPATH=tests KERAS_BACKEND=tensorflow python tests/callbacks/test_callbacks_backends.py``).
The weights come from NumPy (Keras's initializers draw different numbers per backend). The
cases include what breaks on JAX when a callback keeps a reference: `LRScheduler` given the
optimizer itself reads and assigns its rate mid-epoch, when JAX keeps the state outside the
variables.
"""

from __future__ import annotations

import json
import os
import pathlib

import keras
import numpy as np
import pytest
from backend_utils import JIT_MODES
from callback_helpers import Recorder

from keras_lr.callbacks import LRMonitor, LRScheduler, ReduceLROnPlateau
from keras_lr.optimizers import LRWrapper
from keras_lr.schedules import StepDecay

REFERENCE = pathlib.Path(__file__).with_name("callbacks_tf_reference.json")
RNG = np.random.default_rng(5)
X = RNG.normal(size=(64, 5)).astype("float32")
Y = (X @ RNG.normal(size=(5, 1)) + 0.2).astype("float32")
X_VAL, Y_VAL = X[:16] + 0.1, Y[:16]


def _model(optimizer, jit_compile):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(1)])
    rng = np.random.default_rng(3)
    model.set_weights([(rng.normal(size=w.shape) * 0.4).astype("float32")
                       for w in model.get_weights()])
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
    return model


def _case(name):
    """``(optimizer, callbacks, fit kwargs)`` of one case."""
    if name == "plateau-float":
        return (keras.optimizers.SGD(0.05, momentum=0.9),
                [ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=1e3),
                 LRMonitor()], {})
    if name == "plateau-schedule":
        opt = LRWrapper(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.05, 16)))
        return (opt, [ReduceLROnPlateau(factor=0.3, patience=1, min_delta=1e3),
                      LRMonitor(every="batch")], {"validation_data": (X_VAL, Y_VAL)})
    if name == "scheduler-step-by-reference":
        opt = keras.optimizers.SGD(1.0)
        return (opt, [LRScheduler(StepDecay(0.05, step_size=3, gamma=0.5), unit="step",
                                  optimizer=opt), LRMonitor(every="batch")], {})
    if name == "scheduler-epoch":
        return (keras.optimizers.SGD(1.0, momentum=0.5, nesterov=True),
                [LRScheduler(keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.7))], {})
    raise AssertionError(name)


CASES = ["plateau-float", "plateau-schedule", "scheduler-step-by-reference", "scheduler-epoch"]


def compute(name, jit_compile):
    optimizer, callbacks, kwargs = _case(name)
    model = _model(optimizer, jit_compile)
    spy = Recorder()
    history = model.fit(X, Y, batch_size=16, epochs=4, shuffle=False, verbose=0,
                        callbacks=[*callbacks, spy], **kwargs)
    return {
        "history": {k: [float(v) for v in vs] for k, vs in sorted(history.history.items())},
        "batch_rates": [float(logs["learning_rate"]) for _, logs in spy.batches
                        if "learning_rate" in logs],
        "weights": [np.asarray(w).ravel().tolist() for w in model.get_weights()],
    }


@pytest.mark.parametrize("jit_compile", JIT_MODES)
@pytest.mark.parametrize("name", CASES)
def test_callbacks_in_fit_match_tensorflow(name, jit_compile):
    expected = json.loads(REFERENCE.read_text())[name]
    got = compute(name, jit_compile)
    assert sorted(got["history"]) == sorted(expected["history"])
    for key, values in expected["history"].items():
        np.testing.assert_allclose(got["history"][key], values, rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(got["batch_rates"], expected["batch_rates"], rtol=1e-6)
    for a, b in zip(got["weights"], expected["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_reference_cases_do_what_they_test():
    """The stored runs reduce, schedule and rescale (a test that cannot fail is a defect)."""
    ref = json.loads(REFERENCE.read_text())
    assert ref["plateau-float"]["history"]["learning_rate"] == pytest.approx(
        [0.05, 0.025, 0.0125, 0.00625], rel=1e-6)
    assert ref["plateau-schedule"]["history"]["lr_scale"][-1] < 1.0
    assert ref["scheduler-step-by-reference"]["batch_rates"][:7] == pytest.approx(
        [0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125], rel=1e-6)
    assert ref["scheduler-epoch"]["history"]["learning_rate"] == pytest.approx(
        [0.1 * 0.7**e for e in range(4)], rel=1e-6)


if __name__ == "__main__":  # regenerate the reference on TensorFlow
    assert keras.backend.backend() == "tensorflow", os.environ.get("KERAS_BACKEND")
    REFERENCE.write_text(json.dumps({name: compute(name, False) for name in CASES}) + "\n")
    print(f"wrote {REFERENCE}")
