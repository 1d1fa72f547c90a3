"""Tests of the schedule spec language (`keras_lr.schedules.spec`)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_lr.schedules as schedules
from keras_lr.schedules.spec import (
    _snake_case,
    format_schedule,
    known_schedule_names,
    parse_schedule,
)

STEPS = np.arange(0, 1200, 7)


def curve(schedule, steps=STEPS):
    # `values` maps Keras built-ins one step at a time where they need it: called on a vector
    # of steps, Keras 3.15's PiecewiseConstantDecay fails on torch (an in-place `+=` of a
    # vector into a scalar).
    return schedules.values(schedule, np.asarray(steps, "float64"))


def same(a, b):
    """Same class and same config (nested schedules compared through their configs)."""
    assert type(a) is type(b)
    assert keras.saving.serialize_keras_object(a) == keras.saving.serialize_keras_object(b)
    np.testing.assert_allclose(curve(a), curve(b), rtol=0, atol=0)


# --- (a) the call form -------------------------------------------------------------------------


def test_nested_call_matches_direct_construction():
    parsed = parse_schedule("warmup(cosine_decay(1e-3, 1000), 100)")
    same(parsed, schedules.Warmup(schedules.CosineDecay(1e-3, 1000), 100))


def test_camel_case_names_and_keywords():
    parsed = parse_schedule(
        "Warmup(CosineDecay(initial_learning_rate=1e-3, decay_steps=1000), warmup_steps=100)"
    )
    same(parsed, schedules.Warmup(schedules.CosineDecay(1e-3, 1000), 100))


def test_lists_of_schedules_and_numbers():
    parsed = parse_schedule("sequence([constant(0.1), cosine_decay(0.1, 100)], [50])")
    expected = schedules.Sequence([schedules.Constant(0.1), schedules.CosineDecay(0.1, 100)], [50])
    same(parsed, expected)
    parsed = parse_schedule("multi_step_decay(0.1, milestones=[30, 60], gamma=0.5)")
    same(parsed, schedules.MultiStepDecay(0.1, [30, 60], gamma=0.5))


def test_strings_booleans_tuples_and_signs():
    parsed = parse_schedule('cyclical_lr(1e-4, 1e-2, 50, mode="triangular2")')
    same(parsed, schedules.CyclicalLR(1e-4, 1e-2, 50, mode="triangular2"))
    parsed = parse_schedule("one_cycle(+1e-2, 1000, three_phase=True, anneal='linear')")
    same(parsed, schedules.OneCycle(1e-2, 1000, three_phase=True, anneal="linear"))
    parsed = parse_schedule("piecewise_linear((0, 10, 20), (1e-3, 1e-2, 0.0))")
    same(parsed, schedules.PiecewiseLinear([0, 10, 20], [1e-3, 1e-2, 0.0]))


def test_per_epoch_and_every_wrapper():
    parsed = parse_schedule("per_epoch(step_decay(0.1, step_size=30, gamma=0.1), 100)")
    same(parsed, schedules.PerEpoch(schedules.StepDecay(0.1, 30, gamma=0.1), 100))


def test_keras_builtins_with_prefix():
    parsed = parse_schedule("keras.CosineDecay(1e-3, 1000, alpha=0.1)")
    same(parsed, keras.optimizers.schedules.CosineDecay(1e-3, 1000, alpha=0.1))
    parsed = parse_schedule("keras.exponential_decay(0.1, 100, 0.5, staircase=True)")
    same(parsed, keras.optimizers.schedules.ExponentialDecay(0.1, 100, 0.5, staircase=True))
    # and composed with ours
    parsed = parse_schedule("warmup(keras.CosineDecay(1e-3, 1000), 10)")
    assert isinstance(parsed.get_config()["schedule"], dict)


@pytest.mark.parametrize(
    "name, snake",
    [
        ("CosineDecay", "cosine_decay"),
        ("CyclicalLR", "cyclical_lr"),
        ("OneCycle", "one_cycle"),
        ("PerEpoch", "per_epoch"),
        ("InverseSqrtDecay", "inverse_sqrt_decay"),
        ("WarmupStableDecay", "warmup_stable_decay"),
        ("CosineDecayRestarts", "cosine_decay_restarts"),
        ("Constant", "constant"),
        ("HTTPServer2Go", "http_server2_go"),
    ],
)
def test_snake_case(name, snake):
    assert _snake_case(name) == snake


def test_every_public_schedule_has_a_name():
    names = set(known_schedule_names())
    expected = {
        "constant", "step_decay", "multi_step_decay", "exponential_decay", "linear_decay",
        "polynomial_decay", "cosine_decay", "cosine_restarts", "inverse_sqrt_decay",
        "cyclical_lr", "one_cycle", "warmup_stable_decay", "piecewise_linear", "warmup",
        "sequence", "per_epoch", "keras.CosineDecay", "keras.PiecewiseConstantDecay",
    }  # fmt: skip
    assert expected <= names
    for name in schedules.__all__:
        obj = getattr(schedules, name)
        if isinstance(obj, type) and issubclass(obj, keras.optimizers.schedules.LearningRateSchedule):
            if obj.__module__.startswith("keras_lr") and name != "Schedule":
                assert _snake_case(name) in names, name


def test_new_schedules_are_picked_up_from_all(monkeypatch):
    @keras.saving.register_keras_serializable(package="keras_lr_test")
    class HalfLife(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, learning_rate, half_life=10):
            self.learning_rate = learning_rate
            self.half_life = half_life

        def __call__(self, step):
            step = keras.ops.cast(step, "float32")
            return self.learning_rate * 0.5 ** (step / self.half_life)

        def get_config(self):
            return {"learning_rate": self.learning_rate, "half_life": self.half_life}

    with pytest.raises(ValueError, match="Unknown schedule 'half_life'"):
        parse_schedule("half_life(1.0)")
    monkeypatch.setattr(schedules, "HalfLife", HalfLife, raising=False)
    monkeypatch.setattr(schedules, "__all__", [*schedules.__all__, "HalfLife"])
    parsed = parse_schedule("half_life(1.0, half_life=5)")
    assert isinstance(parsed, HalfLife) and parsed.half_life == 5
    assert "half_life" in known_schedule_names()
    assert format_schedule(parsed) == "half_life(learning_rate=1.0, half_life=5)"


# --- (b) the short form ------------------------------------------------------------------------


def test_short_form_equals_call_form():
    short = parse_schedule("cosine_decay:initial_learning_rate=1e-3,decay_steps=1000")
    same(short, parse_schedule("cosine_decay(1e-3, 1000)"))


def test_short_form_bare_words_lists_and_spaces():
    parsed = parse_schedule(
        "  cyclical_lr : base_learning_rate=1e-4, max_learning_rate=1e-2, step_size_up=50, "
        "mode=triangular2"
    )
    same(parsed, schedules.CyclicalLR(1e-4, 1e-2, 50, mode="triangular2"))
    parsed = parse_schedule("MultiStepDecay:initial_learning_rate=0.1,milestones=[30,60]")
    same(parsed, schedules.MultiStepDecay(0.1, [30, 60]))
    parsed = parse_schedule("keras.CosineDecay:initial_learning_rate=0.1,decay_steps=10")
    same(parsed, keras.optimizers.schedules.CosineDecay(0.1, 10))


# --- (c) JSON and files ------------------------------------------------------------------------

ROUND_TRIP = [
    "constant(0.1)",
    "step_decay(0.1, 30, gamma=0.5)",
    "multi_step_decay(0.1, [30, 60, 90], gamma=0.2)",
    "exponential_decay(0.1, 0.99)",
    "linear_decay(0.1, 100, end_learning_rate=0.01)",
    "polynomial_decay(0.1, 100, end_learning_rate=0.001, power=2.0)",
    "cosine_decay(0.1, 100, min_learning_rate=0.001)",
    "cosine_restarts(0.1, 10, cycle_mult=2.0, peak_decay=0.5, min_learning_rate=0.001)",
    "inverse_sqrt_decay(0.1, 25)",
    "cyclical_lr(0.001, 0.1, 20, step_size_down=30, mode='exp_range', gamma=0.999)",
    "one_cycle(0.1, 1000, pct_start=0.25, anneal='linear', three_phase=True)",
    "warmup_stable_decay(0.1, 10, 50, 40, min_learning_rate=0.001)",
    "piecewise_linear([0, 10, 100], [0.0, 0.1, 0.001])",
    "warmup(cosine_decay(0.1, 100), 10, start_learning_rate=0.01)",
    "sequence([constant(0.1), warmup(step_decay(0.1, 30), 5)], [50])",
    "per_epoch(exponential_decay(0.1, 0.9), 7)",
    "keras.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001])",
]


@pytest.mark.parametrize("spec", ROUND_TRIP)
def test_json_and_format_round_trips(spec):
    schedule = parse_schedule(spec)
    text = json.dumps(keras.saving.serialize_keras_object(schedule))
    same(parse_schedule(text), schedule)
    same(parse_schedule(format_schedule(schedule)), schedule)


def test_at_file_reads_json_and_call_forms(tmp_path):
    schedule = parse_schedule("warmup(cosine_decay(1e-3, 1000), 100)")
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(keras.saving.serialize_keras_object(schedule), indent=2))
    same(parse_schedule(f"@{path}"), schedule)
    text_path = tmp_path / "schedule.txt"
    text_path.write_text("warmup(\n    cosine_decay(1e-3, 1000),\n    100,\n)\n")
    same(parse_schedule(f"@{text_path}"), schedule)


# --- errors ------------------------------------------------------------------------------------


def error_of(spec) -> str:
    with pytest.raises(ValueError) as info:
        parse_schedule(spec)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def test_unknown_name_lists_known_names():
    message = error_of("warmup(cosine_decy(1e-3, 1000), 100)")
    assert "Unknown schedule 'cosine_decy' at column 8" in message
    assert "cosine_decay" in message and "one_cycle" in message and "keras." in message


def test_bad_argument_gives_the_schedules_own_message_and_position():
    message = error_of("warmup(cosine_decay(1e-3, -5), 100)")
    assert "cosine_decay" in message and "column 8" in message
    assert "Argument `decay_steps`" in message and "Received: decay_steps=-5" in message
    message = error_of("cosine_decay:initial_learning_rate=1e-3,decay_steps=0")
    assert "Received: decay_steps=0" in message
    message = error_of("cosine_decay(1e-3)")  # missing argument: Python's TypeError, one line
    assert "cosine_decay" in message and "decay_steps" in message
    message = error_of("constant(0.1, bogus=3)")
    assert "bogus" in message


@pytest.mark.parametrize(
    "spec, words",
    [
        ("warmup(cosine_decay(1e-3, 1000), 100", ["column", "warmup(cosine_decay"]),
        ("cosine_decay(1e-3,, 1000)", ["column 19", "cosine_decay(1e-3,, 1000)"]),
        ("cosine_decay(1e-3, 1000 * 2)", ["Unsupported expression", "'1000 * 2'"]),
        ("cosine_decay(lr, 1000)", ["Unknown value", "'lr'"]),
        ("cosine_decay(1e-3, decay_steps=(lambda: 5)())", ["Expected a schedule name"]),
        ("os.system('echo unsafe')", ["Expected a schedule name", "os.system"]),
        ("__import__('os').getcwd()", ["Expected a schedule name"]),
        ("constant(*[0.1])", ["Unsupported expression"]),
        ("constant(**{'learning_rate': 0.1})", ["Unsupported expression"]),
        ("constant({'a': 1})", ["Unsupported expression"]),
        ("1e-3", ["Expected a schedule call"]),
        ("cosine_decay", ["Expected a schedule call"]),
        ("", ["Empty schedule spec"]),
        ("   ", ["Empty schedule spec"]),
        ("{not json", ["Invalid JSON schedule at line 1, column 2"]),
        ('{"a": 1}', ["expected an object with 'class_name'"]),
        ('{"class_name": "NoSuchSchedule", "config": {}}', ["NoSuchSchedule"]),
        ("@/no/such/file.json", ["Cannot read schedule file '/no/such/file.json'"]),
    ],
)
def test_error_messages(spec, words):
    message = error_of(spec)
    for word in words:
        assert word in message, message


def test_json_of_something_else_is_refused():
    dense = json.dumps(keras.saving.serialize_keras_object(keras.layers.Dense(3)))
    assert "does not describe a learning-rate schedule" in error_of(dense)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("cosine_decay(1e-3, 0)")
    message = error_of(f"@{path}")
    assert str(path) in message and "decay_steps" in message
    nested = tmp_path / "nested.txt"
    nested.write_text(f"@{path}")
    assert "cannot point to another file" in error_of(f"@{nested}")


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="Argument `spec` must be a string"):
        parse_schedule(0.1)
    with pytest.raises(TypeError, match="Argument `schedule`"):
        format_schedule("cosine_decay(1e-3, 1000)")


def test_nothing_is_evaluated(monkeypatch):
    called = []
    monkeypatch.setattr("builtins.eval", lambda *a, **k: called.append(a))
    monkeypatch.setattr("builtins.exec", lambda *a, **k: called.append(a))
    parse_schedule("warmup(cosine_decay(1e-3, 1000), 100)")
    with pytest.raises(ValueError):
        parse_schedule("__import__('os').system('echo unsafe')")
    assert called == []


# --- properties --------------------------------------------------------------------------------

SPEC_ALPHABET = st.sampled_from(list("()[],=:'\"._-+*{}0123456789e ") + ["cosine_decay", "warmup"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=30), st.lists(SPEC_ALPHABET, max_size=12).map("".join)))
def test_any_text_gives_a_schedule_or_a_one_line_value_error(text):
    if text.strip().startswith("@"):
        return  # would read a file
    try:
        schedule = parse_schedule(text)
    except ValueError as error:
        assert "\n" not in str(error)
    else:
        assert isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)


@settings(max_examples=25, deadline=None)
@given(
    lr=st.floats(1e-6, 1.0),
    decay_steps=st.integers(1, 10**6),
    floor=st.floats(0.0, 1.0),
    warmup=st.integers(1, 1000),
    form=st.sampled_from(["call", "short", "json"]),
)
def test_round_trip_property(lr, decay_steps, floor, warmup, form):
    inner = schedules.CosineDecay(lr, decay_steps, min_learning_rate=lr * floor)
    if form == "short":
        config = inner.get_config()
        text = "cosine_decay:" + ",".join(f"{key}={value!r}" for key, value in config.items())
        same(parse_schedule(text), inner)
        return
    schedule = schedules.Warmup(inner, warmup)
    if form == "call":
        text = format_schedule(schedule)
    else:
        text = json.dumps(keras.saving.serialize_keras_object(schedule))
    same(parse_schedule(text), schedule)
