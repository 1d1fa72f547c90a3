"""On JAX and PyTorch keras-lr needs no TensorFlow: a subprocess where ``import tensorflow``
fails (a `sys.meta_path` finder, as if it were not installed) imports every module, runs the
range test, the callbacks, a parallel sweep and a study run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from backend_utils import BACKEND

SCRIPT = textwrap.dedent('''
    import importlib, importlib.abc, importlib.machinery, pkgutil, sys

    class NoTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                return importlib.machinery.ModuleSpec(name, self, origin=None)
        def create_module(self, spec):
            raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)
        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, NoTensorFlow())
    import keras
    import numpy as np
    import keras_lr

    backend = keras.backend.backend()
    for info in pkgutil.walk_packages(keras_lr.__path__, "keras_lr."):
        if info.name in ("keras_lr.finder.tf_loop", "keras_lr.study._tensorflow_epochs") \
                or info.name.endswith("__main__"):
            continue  # the TensorFlow backend's own loop modules
        importlib.import_module(info.name)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    result = keras_lr.find_lr(model, x, y, batch_size=16, num_steps=12)
    assert len(result) == 12, result
    cbs = keras_lr.callbacks
    history = model.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[
        cbs.LRMonitor(), cbs.ReduceLROnPlateau(patience=1),
        cbs.LRScheduler(keras_lr.schedules.StepDecay(0.01, step_size=1, gamma=0.5))])
    assert len(history.history["learning_rate"]) == 2
    build = lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    sweep = keras_lr.sweep.parallel_fit(build, [1e-3, 1e-2], x, y, loss="mse", metrics=())
    assert sweep.history["loss"].shape == (1, 2), sweep.history
    from keras_lr.study import grid, runner
    config = grid.RunConfig("mlp", "digits", "adam", 1e-2, 0, epochs=1, size="quick",
                            limit=200)
    record = runner.Runner().run(config)
    assert record["epochs_run"] == 1 and record["final_score"] > 0.1, record
    assert not any(name.startswith("tensorflow") for name in sys.modules)
    print("ok")
''')


@pytest.mark.slow
@pytest.mark.backends("jax", "torch", reason="TensorFlow is the backend there")
def test_keras_lr_works_without_tensorflow_installed():
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
