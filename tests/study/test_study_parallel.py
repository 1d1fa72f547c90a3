"""The parallel engine (`keras_lr.study.parallel`) against the sequential runner."""

import math

import keras
import numpy as np
import pytest
from study_configs import small_config

from keras_lr.study import parallel, runner

_FIELDS = ("initial_loss", "train_loss", "val_loss", "val_score", "final_score", "best_score",
           "final_loss", "best_loss")


def _config(**kw):
    return small_config(**{"optimizer": "sgd", "seed": 1, **kw})


def _close(a, b):
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None or (math.isnan(a) and math.isnan(b)):
        return a is b or (a != a and b != b)
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)


def _assert_same_records(batch):
    sequential = list(runner.run_group(batch, runner.Runner(parallel=False)))
    together = list(runner.run_group(batch, runner.Runner(parallel=True)))
    assert [r["key"] for r in together] == [c.key for c in batch]
    for seq, par in zip(sequential, together, strict=True):
        assert set(seq) == set(par)
        assert (seq["engine"], par["engine"]) == ("sequential", "parallel")
        for key in ("diverged", "diverged_epoch", "epochs_run", "epochs_to_target", "variant"):
            assert seq[key] == par[key], key
        for key in _FIELDS:
            assert _close(seq[key], par[key]), (key, seq[key], par[key])
        if not seq["diverged"]:
            assert math.isclose(seq["oscillation"], par["oscillation"], rel_tol=1e-3)


def test_parallel_records_match_sequential_with_a_diverging_rate(clear_session):
    _assert_same_records([_config(lr=lr) for lr in (0.003, 0.03, 1e4)])


@pytest.mark.slow
@pytest.mark.every_backend
def test_parallel_records_match_with_schedules_and_clipping(clear_session):
    batch = [_config(optimizer="adam", clip="global_norm", lr=lr, schedule=s, epochs=2)
             for lr, s in ((0.001, "constant"), (0.01, "warmup_cosine"), (0.1, "onecycle"))]
    _assert_same_records(batch)


@pytest.mark.slow
@pytest.mark.every_backend
def test_parallel_cnn_records_match(clear_session):
    _assert_same_records([_config(family="cnn", optimizer="adam", lr=lr, epochs=1)
                          for lr in (0.001, 0.01)])


def test_use_parallel_rule(monkeypatch):
    backend = keras.backend.backend()
    three = [_config(lr=lr) for lr in (0.001, 0.01, 0.1)]
    convs = [_config(family="cnn", lr=lr) for lr in (0.001, 0.01)]
    # auto: where the backend's parallel engine was measured faster
    assert parallel.use_parallel(three, "auto") is (backend == "torch")
    assert parallel.use_parallel(convs, "auto") is (backend != "jax")
    assert not parallel.use_parallel(three, False)
    assert parallel.use_parallel(three[:2], True)
    assert not parallel.use_parallel(three[:1], True)
    with pytest.raises(ValueError, match="Argument `parallel`"):
        runner.Runner(parallel="yes")
    agc = [_config(lr=lr, clip="agc") for lr in (1, 2, 3)]
    layerwise = [_config(lr=lr, multipliers="dense_x10") for lr in (1, 2, 3)]
    schedule_free = [_config(optimizer="schedule_free_adamw", lr=lr) for lr in (1, 2)]
    # The replicated optimizers (TensorFlow, torch): SGD and Adam, global-norm clipping, no
    # multipliers; JAX maps the sequential step itself, so everything but schedule-free's swap
    assert parallel.use_parallel(agc, True) is (backend == "jax")
    assert parallel.use_parallel(layerwise, True) is (backend == "jax")
    assert not parallel.use_parallel(schedule_free, True)
    with pytest.raises(ValueError, match="one group and seed"):
        list(parallel.run_parallel(runner.Runner(), [_config(seed=0), _config(seed=1)]))
    # a backend without a parallel engine refuses --parallel in one line
    monkeypatch.setattr(parallel, "_backend", lambda: "openvino")
    assert not parallel.use_parallel(convs, "auto")
    with pytest.raises(ValueError, match="on openvino run the study with --no-parallel") as info:
        parallel.use_parallel(three, True)
    assert "\n" not in str(info.value)


def test_run_group_batches_by_seed(clear_session, monkeypatch):
    calls = []

    def fake(r, batch):
        calls.append([c.seed for c in batch])
        return iter([{"key": c.key} for c in batch])

    monkeypatch.setattr(parallel, "run_parallel", fake)
    configs = [_config(lr=lr, seed=s) for s in (0, 1) for lr in (0.001, 0.01, 0.1)]
    keys = [r["key"] for r in runner.run_group(configs, runner.Runner(parallel=True))]
    assert calls == [[0, 0, 0], [1, 1, 1]]
    assert keys == [c.key for c in configs]
    assert np.all([k is not None for k in keys])
