"""`keras_lr.tuner`: search spaces, argument errors, the hypermodel's build, the import error."""

from __future__ import annotations

import importlib
import sys

import keras
import pytest

kt = pytest.importorskip("keras_tuner")

from keras_lr import schedules  # noqa: E402
from keras_lr.guards import AdaptiveClip, GlobalNorm, GradientGuard  # noqa: E402
from keras_lr.optimizers import LRWrapper  # noqa: E402
from keras_lr.tuner import (  # noqa: E402
    SCHEDULES,
    DivergencePruning,
    LRHyperModel,
    hp_learning_rate,
    hp_optimizer,
    hp_schedule,
)

FAMILY_CLASSES = {
    "constant": schedules.Constant, "step": schedules.StepDecay,
    "exponential": schedules.ExponentialDecay, "cosine": schedules.CosineDecay,
    "warmup_cosine": schedules.Warmup, "onecycle": schedules.OneCycle,
    "cyclical": schedules.CyclicalLR,
}

FAMILY_PARAMETERS = {
    "constant": set(), "step": {"step_drops", "step_gamma"},
    "exponential": {"exponential_final_fraction"}, "cosine": {"cosine_min_fraction"},
    "warmup_cosine": {"warmup_fraction"},
    "onecycle": {"onecycle_pct_start", "onecycle_div_factor"},
    "cyclical": {"cyclical_cycles", "cyclical_base_fraction", "cyclical_mode"},
}


def with_family(family, total_steps=100):
    """A schedule of `family`, built the way the oracle does it: all families declared, one
    set active, its parameters filled in by `ensure_active_values`."""
    hp = kt.HyperParameters()
    hp_schedule(hp, total_steps)
    hp.values["schedule"] = family
    hp.ensure_active_values()
    return hp, hp_schedule(hp, total_steps)


def test_learning_rate_is_log_sampled_in_range():
    hp = kt.HyperParameters()
    value = hp_learning_rate(hp, min_value=1e-4, max_value=1e-1)
    (param,) = hp.space
    assert (param.name, param.min_value, param.max_value, param.sampling) == (
        "learning_rate", 1e-4, 1e-1, "log")
    assert value == 1e-4  # KerasTuner's default for a Float is its minimum


@pytest.mark.parametrize("family", SCHEDULES)
def test_every_family_builds_its_class_with_only_its_parameters_active(family):
    hp, schedule = with_family(family)
    assert type(schedule) is FAMILY_CLASSES[family]
    active = {name for name in hp.values if hp.is_active(name)}
    assert active - {"learning_rate", "schedule"} == FAMILY_PARAMETERS[family]
    assert len(hp.space) == 12  # learning_rate, schedule and the 10 family parameters
    peak = hp.values["learning_rate"]
    values = schedules.values(schedule, 100)
    assert max(values) == pytest.approx(peak, rel=1e-3)  # OneCycle peaks between two steps


def test_family_parameters_reach_the_schedule():
    hp, schedule = with_family("step")
    hp.values.update(step_drops=3, step_gamma=0.5)
    schedule = hp_schedule(hp, 100)
    assert (schedule.step_size, schedule.gamma) == (25, 0.5)
    hp, _ = with_family("warmup_cosine")
    hp.values["warmup_fraction"] = 0.2
    schedule = hp_schedule(hp, 100, learning_rate=0.1)
    assert (schedule.warmup_steps, schedule.schedule.decay_steps) == (20, 80)
    hp, _ = with_family("cyclical")
    hp.values.update(cyclical_cycles=2, cyclical_base_fraction=0.1, cyclical_mode="triangular2")
    schedule = hp_schedule(hp, 100, learning_rate=0.5)
    assert (schedule.base_learning_rate, schedule.max_learning_rate) == pytest.approx((0.05, 0.5))
    assert (schedule.step_size_up, schedule.mode) == (25, "triangular2")


@pytest.mark.parametrize("total_steps", [2, 3, 4, 7])
def test_every_family_builds_on_the_shortest_budgets(total_steps):
    """OneCycle needs pct_start * total_steps > 1: a 3-step budget used to fail the trial."""
    for family in SCHEDULES:
        hp, schedule = with_family(family, total_steps)
        values = schedules.values(schedule, total_steps + 1)
        assert all(v >= 0 for v in values), family
    hp, schedule = with_family("onecycle", 100)
    assert schedule.pct_start == hp.values["onecycle_pct_start"]  # long budgets: as sampled


def test_a_single_choice_is_fixed():
    hp = kt.HyperParameters()
    schedule = hp_schedule(hp, 50, choices=("cosine",), learning_rate=0.01)
    (param,) = [p for p in hp.space if p.name == "schedule"]
    assert type(param).__name__ == "Fixed" and param.value == "cosine"
    assert isinstance(schedule, schedules.CosineDecay) and schedule.initial_learning_rate == 0.01


def test_optimizer_and_clip_choices():
    hp = kt.HyperParameters()
    optimizer = hp_optimizer(hp, 0.01)
    assert isinstance(optimizer, LRWrapper) and isinstance(optimizer.inner_optimizer,
                                                           keras.optimizers.Adam)
    hp.values.update(optimizer="sgd", clip="agc")
    optimizer = hp_optimizer(hp, 0.01)
    assert isinstance(optimizer, GradientGuard) and isinstance(optimizer.clip, AdaptiveClip)
    hp.values["clip"] = "global_norm"
    assert isinstance(hp_optimizer(hp, 0.01).clip, GlobalNorm)


@pytest.mark.parametrize("call, error, message", [
    (lambda hp: hp_learning_rate(hp, min_value=1.0, max_value=0.1), ValueError,
     "Argument `min_value` must be < max_value. Received: min_value=1.0, max_value=0.1"),
    (lambda hp: hp_learning_rate(hp, min_value=0.1, max_value=0.1), ValueError,
     "Argument `min_value` must be < max_value. Received: min_value=0.1, max_value=0.1"),
    (lambda hp: hp_learning_rate(hp, min_value=0.0), ValueError,
     "Argument `min_value` must be > 0. Received: min_value=0.0"),
    (lambda hp: hp_schedule(hp, 100, choices=()), ValueError,
     "Argument `choices` must not be empty. Received: choices=()"),
    (lambda hp: hp_schedule(hp, 100, choices=("cosine", "cosin")), ValueError,
     "Argument `choices` must only hold names from 'constant', 'step', 'exponential', "
     "'cosine', 'warmup_cosine', 'onecycle', 'cyclical' (unknown: 'cosin'). "
     "Received: choices=('cosine', 'cosin')"),
    (lambda hp: hp_schedule(hp, 100, choices="cosine"), TypeError,
     "Argument `choices` must be a sequence of names such as ('adam', 'sgd'). "
     "Received: choices='cosine'"),
    (lambda hp: hp_schedule(hp, 1), ValueError,
     "Argument `total_steps` must be >= 2. Received: total_steps=1"),
    (lambda hp: hp_optimizer(hp, 0.1, choices=[]), ValueError,
     "Argument `choices` must not be empty. Received: choices=()"),
    (lambda hp: hp_optimizer(hp, 0.1, clip=("none", "none")), ValueError,
     "Argument `clip` must not repeat a name. Received: clip=('none', 'none')"),
])
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error) as info:
        call(kt.HyperParameters())
    assert str(info.value) == message


@pytest.mark.parametrize("kwargs, message", [
    ({"learning_rate": (1.0, 0.1)},
     "Argument `learning_rate[0]` must be < learning_rate[1]. "
     "Received: learning_rate[0]=1.0, learning_rate[1]=0.1"),
    ({"schedules": ("cosine", "linear")},
     "Argument `schedules` must only hold names from 'constant', 'step', 'exponential', "
     "'cosine', 'warmup_cosine', 'onecycle', 'cyclical' (unknown: 'linear'). "
     "Received: schedules=('cosine', 'linear')"),
    ({"epochs": 0}, "Argument `epochs` must be >= 1. Received: epochs=0"),
])
def test_hypermodel_checks_its_arguments(kwargs, message):
    arguments = dict(epochs=2, steps_per_epoch=10, input_shape=(64,), num_classes=10)
    arguments.update(kwargs)
    with pytest.raises(ValueError) as info:
        LRHyperModel("mlp", **arguments)
    assert str(info.value) == message
    with pytest.raises(ValueError, match="Argument `build_model` must be one of 'mlp'"):
        LRHyperModel("resnet", epochs=2, steps_per_epoch=10, input_shape=(64,))


def test_hypermodel_builds_a_compiled_model_with_the_searched_optimizer(clear_session):
    def build_model(hp):
        units = hp.Int("units", 8, 16, step=8)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units),
                                 keras.layers.Dense(3, activation="softmax")])

    hypermodel = LRHyperModel(build_model, epochs=3, steps_per_epoch=10,
                              schedules=("onecycle",), optimizers=("sgd",), clip=("agc",))
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    assert model.compiled and isinstance(model.optimizer, GradientGuard)
    assert isinstance(model.optimizer.inner_optimizer, keras.optimizers.SGD)
    schedule = model.optimizer.inner_optimizer._learning_rate
    assert isinstance(schedule, schedules.OneCycle) and schedule.total_steps == 30
    assert set(hp.values) >= {"units", "learning_rate", "schedule", "optimizer", "clip"}


def test_import_without_keras_tuner_says_how_to_install(monkeypatch):
    for name in [n for n in sys.modules if n == "keras_lr.tuner" or n.startswith("keras_lr.tuner.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "keras_tuner" else object())
    with pytest.raises(ImportError) as info:
        importlib.import_module("keras_lr.tuner")
    assert str(info.value) == ("keras-lr's tuner hooks need KerasTuner: "
                               "pip install 'keras-lr[tuner]' (missing: keras_tuner)")


def test_the_tuner_extra_brings_tensorboard():
    import configparser
    from pathlib import Path

    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    for extra in ("tuner", "all"):
        requirements = config["options.extras_require"][extra].split()
        assert "tensorboard" in requirements and any(
            r.startswith("keras-tuner") for r in requirements), extra


def test_pruning_checks_its_arguments():
    with pytest.raises(ValueError, match=r"^Argument `patience` must be >= 1. Received: patience=0$"):
        DivergencePruning(patience=0)
    with pytest.raises(ValueError, match=r"^Argument `spike_factor` must be > 1. "):
        DivergencePruning(spike_factor=1.0)


def test_a_resumed_trial_continues_its_schedule(clear_session):
    """Hyperband continues a trial with `initial_epoch > 0`: the step count starts there."""
    import numpy as np

    hypermodel = LRHyperModel(
        lambda hp: keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "softmax")]),
        epochs=3, steps_per_epoch=4, schedules=("cosine",), optimizers=("adam",),
        clip=("none",), monitor=False)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    x, y = np.zeros((16, 4), "float32"), np.zeros(16, "int32")
    history = hypermodel.fit(hp, model, x, y, batch_size=4, initial_epoch=2, verbose=0)
    assert int(model.optimizer.iterations) == 3 * 4  # 2 epochs skipped + 1 trained
    assert len(history.history["loss"]) == 1
    assert hypermodel.records == [{"epochs_run": 1, "pruned": False, "reason": None,
                                   "hyperparameters": {"learning_rate": 1e-5,
                                                       "schedule": "cosine",
                                                       "cosine_min_fraction": 0.0,
                                                       "optimizer": "adam", "clip": "none"}}]


def test_a_compiled_model_needs_its_loss_named(clear_session):
    def build_model(hp):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile("adam", "mse")
        return model

    with pytest.raises(ValueError, match="returned a compiled model"):
        LRHyperModel(build_model, epochs=1, steps_per_epoch=2).build(kt.HyperParameters())
    model = LRHyperModel(build_model, epochs=1, steps_per_epoch=2, loss="mse",
                         metrics=[]).build(kt.HyperParameters())
    assert model.loss == "mse" and isinstance(model.optimizer, LRWrapper)
