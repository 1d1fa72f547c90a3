"""The runner: reset-and-reuse gives the same numbers as a fresh build; schedules; divergence."""

import math

import numpy as np
import pytest
from study_configs import small_config

from keras_lr.study import grid, runner

_config = small_config


def test_reuse_after_other_runs_equals_a_fresh_build():
    target = _config(schedule="warmup_cosine", seed=1)
    fresh = runner.Runner().run(target)
    reused = runner.Runner()
    reused.run(_config(lr=0.5))  # moves weights, slots and the step counter
    reused.run(_config(lr=0.001, seed=2, schedule="onecycle"))
    again = reused.run(target)
    assert len(reused._trainers) == 1  # one compiled group for all three
    assert again["val_loss"] == fresh["val_loss"]
    assert again["train_loss"] == fresh["train_loss"]
    assert again["final_score"] == fresh["final_score"]


def test_record_fields_and_seed_changes_the_run():
    r = runner.Runner()
    a, b = r.run(_config(seed=0)), r.run(_config(seed=1))
    assert a["val_loss"] != b["val_loss"]
    assert a["kind"] == "run" and a["key"] == _config(seed=0).key
    assert len(a["val_loss"]) == a["epochs_run"] == 2
    assert 0.0 <= a["final_score"] <= 1.0 and a["final_val_acc"] == a["final_score"]
    assert a["baseline_score"] == pytest.approx(0.1)
    assert not a["diverged"] and a["diverged_epoch"] is None


def test_huge_rate_diverges_and_stops_early():
    record = runner.Runner().run(_config(optimizer="sgd", lr=1e4, epochs=3))
    assert record["diverged"]
    assert record["epochs_run"] == record["diverged_epoch"] == 1  # stopped after epoch 1
    assert record["final_score"] == record["baseline_score"]
    assert math.isnan(record["oscillation"])


@pytest.mark.parametrize("name", grid.SCHEDULES)
def test_schedules_peak_at_one_and_rate_table(name):
    from keras_lr.schedules import values

    schedule = runner.make_schedule(name, total_steps=40, steps_per_epoch=10)
    v = np.asarray(values(schedule, 40), np.float64)
    assert v.max() == pytest.approx(1.0, rel=1e-5)
    assert np.all(v >= 0)
    if name in ("constant",):
        assert np.all(v == 1.0)
    if name in ("step", "exponential", "cosine", "warmup_cosine", "onecycle"):
        assert v[-1] < 0.1
    if name.startswith("warmup"):
        assert v[0] == 0.0 and v[10] == pytest.approx(1.0)


@pytest.mark.slow
def test_multipliers_and_clipping_build():
    r = runner.Runner()
    for kw in (dict(family="cnn", multipliers="conv_x10"),
               dict(family="lstm", multipliers="gates_x4"),
               dict(family="lstm", data="adding", optimizer="sgd", clip="global_norm",
                    limit=200)):
        record = r.run(_config(epochs=1, **kw))
        assert len(record["val_loss"]) == 1 and math.isfinite(record["initial_loss"])
