"""The study on each backend: its epochs against `fit`, JAX's mapped replicas against the
sequential engine, and TensorFlow's and JAX's quick studies against each other."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from study_configs import small_config

from keras_lr.study import claims, grid, parallel, runner
from keras_lr.study.report import headline_rows

BACKEND = keras.backend.backend()
JAX = pytest.mark.backends("jax", reason="the engine that maps the sequential step (jax.vmap)")


def _config(**kw):
    return small_config(**{"seed": 1, **kw})


def test_the_epochs_module_is_the_backends():
    module = runner.epochs_module()
    assert module.__name__ == f"keras_lr.study._{BACKEND}_epochs"
    assert hasattr(module, "Epochs")
    assert hasattr(module, "Replicas") is (BACKEND == "jax")


@pytest.mark.parametrize("family, limit", [("mlp", 320), ("cnn", 320), ("cnn", 300),
                                           ("lstm", 320)])
def test_a_sequential_run_equals_fit_on_the_same_batches(family, limit, clear_session):
    """The engine's compiled epoch against `model.fit` on the batches the engine draws (8
    steps an epoch with limit 320, 7 with 300: JAX's CNN blocks of 2 steps, and of 1)."""
    from keras_lr import models
    from keras_lr.optimizers import LRWrapper

    config = _config(family=family, optimizer="sgd", lr=0.05, epochs=2, limit=limit)
    record = runner.Runner(parallel=False).run(config)
    data = runner.Runner().data(config.family, config.data, config.limit)
    ds = data.ds
    model = models.build(family, ds.input_shape, ds.num_classes, seed=config.seed,
                         **runner.MODEL_KWARGS[config.size][family])
    model.compile(LRWrapper(keras.optimizers.SGD(config.lr, momentum=0.9)),
                  "sparse_categorical_crossentropy")
    steps = len(ds.x_train) // config.batch_size
    rng = np.random.default_rng([config.seed, 1])
    for _ in range(config.epochs):
        perm = rng.permutation(len(ds.x_train))[:steps * config.batch_size]
        model.fit(ds.x_train[perm], ds.y_train[perm], batch_size=config.batch_size,
                  shuffle=False, verbose=0)
    val = model.evaluate(ds.x_val, ds.y_val, verbose=0)
    assert record["val_loss"][-1] == pytest.approx(val, rel=2e-4)


def test_prepare_builds_the_next_trainer_and_leaves_its_errors_to_its_runs(clear_session):
    r = runner.Runner(parallel=False)
    config = _config(family="cnn", limit=320)
    r.prepare([config])
    trainer = r._trainers[config.group]
    assert r.run(config)["epochs_run"] == 2 and r._trainers[config.group] is trainer
    if BACKEND == "jax":  # the CNN's jitted blocks: the largest divisor of 8 steps up to 2
        assert trainer.epochs.block_steps == 2
    # fewer samples than one batch: nothing is cached, the group's run raises
    tiny = _config(limit=30, batch_size=64)
    r.prepare([tiny])
    assert tiny.group not in r._trainers
    with pytest.raises(ValueError, match="fewer than one batch"):
        r.run(tiny)
    # a batch for the parallel engine is left to it
    batch = [_config(family="cnn", lr=lr, seed=3) for lr in (0.01, 0.1)]
    parallel_runner = runner.Runner(parallel=True)
    parallel_runner.prepare(batch)
    assert batch[0].group not in parallel_runner._trainers


@JAX
@pytest.mark.parametrize("kwargs", [
    dict(clip="agc"),
    dict(multipliers="dense_x10"),
    dict(optimizer="prodigy", lrs=(0.5, 1.0)),
    dict(family="cnn", norm="batch", lrs=(0.003, 0.03), epochs=1),
    dict(family="lstm", optimizer="sgd", clip="global_norm", lrs=(0.1, 0.3), epochs=1),
], ids=["agc", "multipliers", "prodigy", "cnn-batchnorm", "lstm-clipped"])
def test_mapped_replicas_give_the_sequential_records(kwargs, clear_session):
    lrs = kwargs.pop("lrs", (0.003, 0.03))
    batch = [_config(lr=lr, schedule=s, **kwargs)
             for lr in lrs for s in ("constant", "warmup_cosine")]
    assert parallel.use_parallel(batch, True)
    seq = list(runner.run_group(batch, runner.Runner(parallel=False)))
    par = list(runner.run_group(batch, runner.Runner(parallel=True)))
    for a, b in zip(seq, par, strict=True):
        assert (a["engine"], b["engine"]) == ("sequential", "parallel")
        assert set(a) == set(b) and a["epochs_run"] == b["epochs_run"]
        for key in ("initial_loss", "train_loss", "val_loss", "val_score"):
            np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-6, err_msg=key)
        if "d" in a:  # the estimate after every step
            np.testing.assert_allclose(b["d"], a["d"], rtol=1e-4)


@JAX
def test_a_diverging_replica_leaves_the_others_as_they_were(clear_session):
    # the same number of replicas both times (XLA may round a batch of another size otherwise)
    calm = [_config(lr=lr) for lr in (0.001, 0.01)]
    tame = list(runner.run_group(calm + [_config(lr=0.003)], runner.Runner(parallel=True)))
    wild = list(runner.run_group(calm + [_config(lr=1e5)], runner.Runner(parallel=True)))
    assert wild[-1]["diverged"] and not tame[-1]["diverged"]
    for a, b in zip(tame[:2], wild[:2], strict=True):
        assert a["val_loss"] == b["val_loss"] and a["train_loss"] == b["train_loss"]


@pytest.mark.slow
@pytest.mark.backends("tensorflow", reason="runs the quick study on TensorFlow and on JAX, "
                                           "each in its own process")
def test_quick_study_best_rates_agree_between_tensorflow_and_jax(tmp_path):
    pytest.importorskip("jax")
    rows = {}
    for backend in ("tensorflow", "jax"):
        out = tmp_path / backend
        done = subprocess.run(
            [sys.executable, "-m", "keras_lr.cli.main", "study", "--quick", "--no-progress",
             "--out", str(out)],
            env=dict(os.environ, KERAS_BACKEND=backend), capture_output=True, text=True,
            check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        results = json.loads((out / "results.json").read_text())
        assert results["settings"]["backend"] == backend
        records = [dict(r, kind="run") for r in results["runs"]]
        rows[backend] = {(r[0], r[1]): float(r[2]) for r in headline_rows(records)}
    assert rows["tensorflow"].keys() == rows["jax"].keys() and len(rows["jax"]) >= 6
    step = claims._grid_step(grid.default_plan(quick=True).rates)  # one decade
    for key, rate in rows["tensorflow"].items():
        shift = abs(math.log10(rows["jax"][key]) - math.log10(rate))
        assert shift <= step + 1e-9, (key, rate, rows["jax"][key])
