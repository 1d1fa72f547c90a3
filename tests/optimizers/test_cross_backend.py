"""A model saved on one backend trains on on another: the `.keras` file is backend-neutral.

A model compiled with `LayerwiseLR(GradientGuard(Adam(schedule)))` is trained 3 steps and saved
on TensorFlow; loaded with `safe_mode=True` on JAX and on torch, its next 5 training steps give
the weights that TensorFlow's own next 5 steps give (the schedule, the multipliers, the guard's
counters and rule state and Adam's slots all travel in the file). Each backend runs in its own
process, since a process has one Keras backend.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    import keras, numpy as np
    from keras_lr import guards, schedules
    from keras_lr.optimizers import LayerwiseLR

    mode, model_path, weights_path = sys.argv[1:4]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=(64, 2)).astype("float32")
    x[40, 2] = np.nan  # batch 5 of 8: skipped by the guard on every backend

    def fit(model, start, steps):
        model.fit(x[start * 8:(start + steps) * 8], y[start * 8:(start + steps) * 8],
                  batch_size=8, epochs=1, verbose=0, shuffle=False)

    if mode == "train":
        keras.utils.set_random_seed(0)
        inputs = keras.Input((6,))
        h = keras.layers.Dense(5, activation="tanh", name="body")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(2, name="head")(h))
        schedule = schedules.Warmup(schedules.CosineDecay(0.05, 20), warmup_steps=4)
        opt = LayerwiseLR(
            guards.GradientGuard(keras.optimizers.Adam(schedule), clip=guards.AdaptiveClip(0.05)),
            {"^body/": 0.5, "head/bias": 0.0})
        model.compile(optimizer=opt, loss="mse")
        fit(model, 0, 3)
        model.save(model_path)
    else:
        model = keras.models.load_model(model_path, safe_mode=True)
    fit(model, 3, 5)
    guard = guards.find_guard(model.optimizer)
    np.savez(weights_path, *[keras.ops.convert_to_numpy(w) for w in model.weights],
             iterations=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
             skipped=guard.stats()["skipped_steps"])
    """
)


def _run(backend, mode, model_path, weights_path):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(model_path), str(weights_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(weights_path)


@pytest.mark.slow
@pytest.mark.backends("tensorflow", reason="starts one process per backend itself; once is "
                      "enough")
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_saved_on_tensorflow_trains_on_the_same_path_elsewhere(tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    model_path = tmp_path / "model.keras"
    expected = _run("tensorflow", "train", model_path, tmp_path / "tf.npz")
    got = _run(backend, "load", model_path, tmp_path / f"{backend}.npz")
    assert int(got["iterations"]) == int(expected["iterations"]) == 7  # 8 steps, 1 skipped
    assert int(got["skipped"]) == int(expected["skipped"]) == 1
    names = [k for k in expected.files if k.startswith("arr_")]
    assert names and names == [k for k in got.files if k.startswith("arr_")]
    for name in names:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6)
