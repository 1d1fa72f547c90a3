"""`keras_lr.sweep` and the study's parallel engine refuse JAX and PyTorch in one line that
names the backend and the alternative (never ``ModuleNotFoundError``)."""

from __future__ import annotations

import keras
import pytest

from keras_lr import sweep
from keras_lr.study.grid import RunConfig
from keras_lr.study.parallel import run_parallel, use_parallel

pytestmark = pytest.mark.backends("jax", "torch", reason="the refusal of the backends it lacks")
BACKEND = keras.backend.backend()


def _one_line(call, *words):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    assert "needs the TensorFlow backend (KERAS_BACKEND=tensorflow)" in message
    assert f"; on {BACKEND} " in message
    for word in words:
        assert word in message


@pytest.mark.parametrize("name", ["parallel_fit", "replicate", "replicated_optimizer"])
def test_sweep_entry_points_refuse_before_any_work(name):
    _one_line(lambda: getattr(sweep, name)(None, None), "keras_lr.sweep", "model.fit")


def test_study_parallel_engine_refuses_and_auto_runs_sequentially():
    batch = [RunConfig("cnn", "digits", "adam", lr, 0) for lr in (1e-3, 1e-2)]
    _one_line(lambda: use_parallel(batch, True), "--no-parallel")
    _one_line(lambda: list(run_parallel(None, batch)), "--no-parallel")
    assert use_parallel(batch, "auto") is False  # the sequential engine, documented
    assert use_parallel(batch, False) is False
