"""DAdaptAdam against `dadaptation` 3.2: every argument, layer_scale = LayerwiseLR multiplier.

Tolerance: D-Adaptation's estimate is a ratio of sums with heavy cancellation (the numerator
changes sign in the first 20 steps of these problems), so the reference's own float32 dot
products move d by ~1.4e-5 relative by step 5 when only the summation order changes
(measured against this implementation on TensorFlow). Every step scales with d, so the
weights are compared relative to each variable's scale (max |w|) at 2e-4 over 200 steps
(measured up to 1.35e-4, LSTM), and d itself at rtol 1e-4 (float32 JAX: 2e-3).
"""

import copy
import math

import keras
import numpy as np
import pytest
from backend_utils import BACKEND, JIT_MODES
from lrfree_oracles import (
    PROBLEMS,
    keras_model,
    numpy_params,
    teacher_forced,
    train_keras,
    train_torch,
)

import keras_lr
from keras_lr.optimizers import DAdaptAdam, LayerwiseLR

dadaptation = pytest.importorskip("dadaptation")

X64 = BACKEND != "jax"
D_RTOL = 1e-4 if X64 else 2e-3
SCALE_RTOL = 2e-4 if X64 else 2e-3

CONFIGS = {
    "defaults": {},
    "coupled_decay": {"weight_decay": 0.01},
    "decoupled_all_flags": {"weight_decay": 0.01, "decouple": True, "use_bias_correction": True,
                            "growth_rate": 1.05, "d0": 1e-5, "beta_1": 0.8, "beta_2": 0.99,
                            "epsilon": 1e-7},
}


def _make(kwargs, **extra):
    kwargs = dict(kwargs)
    betas = (kwargs.pop("beta_1", 0.9), kwargs.pop("beta_2", 0.999))
    if "epsilon" in kwargs:
        kwargs["eps"] = kwargs.pop("epsilon")
    return lambda params: dadaptation.DAdaptAdam(params, betas=betas, **kwargs, **extra)


def _values(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def assert_scaled_close(actual, expected, rtol):
    for i, (a, e) in enumerate(zip(actual, expected)):
        scale = float(np.max(np.abs(e)))
        assert float(np.max(np.abs(a - e))) <= rtol * scale, f"variable {i}"


def _d(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.d))


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("problem", PROBLEMS)
def test_update_rule_equals_reference_for_200_steps(problem, config):
    kwargs = CONFIGS[config]
    optimizer = DAdaptAdam(**kwargs)
    variables, reference, params = teacher_forced(problem, optimizer, _make(kwargs), 200)
    assert_scaled_close(_values(variables), numpy_params(params), SCALE_RTOL)
    group = reference.param_groups[0]
    np.testing.assert_allclose(_d(optimizer), group["d"], rtol=D_RTOL)
    assert int(keras.ops.convert_to_numpy(optimizer._k)) == group["k"]


def test_fast_update_rule_equals_reference():
    kwargs = CONFIGS["decoupled_all_flags"]
    optimizer = DAdaptAdam(**kwargs)
    variables, reference, params = teacher_forced("dense", optimizer, _make(kwargs), 60)
    assert_scaled_close(_values(variables), numpy_params(params), SCALE_RTOL)
    np.testing.assert_allclose(_d(optimizer), reference.param_groups[0]["d"], rtol=D_RTOL)


@pytest.mark.parametrize("jit_compile", JIT_MODES)
def test_fit_equals_reference(jit_compile):
    kwargs = {"weight_decay": 0.01}
    model = train_keras("lstm", DAdaptAdam(0.5, **kwargs), 30, jit_compile=jit_compile)
    _, params = train_torch("lstm", _make(kwargs, lr=0.5), 30)
    assert_scaled_close(model.get_weights(), numpy_params(params), SCALE_RTOL)


def test_layerwise_multiplier_is_the_reference_layer_scale():
    model = keras_model("dense")
    optimizer = LayerwiseLR(DAdaptAdam(), {model.layers[0]: 0.5})
    variables, reference, params = teacher_forced(
        "dense", optimizer, _make({}), 60, variables=model.trainable_variables,
        param_groups=[([0, 1], {"layer_scale": 0.5}), ([2, 3], {})])
    assert_scaled_close(_values(variables), numpy_params(params), SCALE_RTOL)


def test_keras_schedule_and_zero_rate_step():
    schedule = keras.optimizers.schedules.PolynomialDecay(0.0, 20, end_learning_rate=1.0)
    kwargs = {"use_bias_correction": True}
    optimizer = DAdaptAdam(schedule, **kwargs)
    variables, reference, params = teacher_forced(
        "dense", optimizer, _make(kwargs), 40, schedule=lambda step: min(step, 20) / 20)
    assert_scaled_close(_values(variables), numpy_params(params), SCALE_RTOL)
    assert reference.param_groups[0]["k"] == 39
    assert int(keras.ops.convert_to_numpy(optimizer._k)) == 39


def test_saved_and_resumed(tmp_path):
    from lrfree_oracles import _data

    x, y = _data("dense", 30)
    whole = keras_model("dense")
    whole.compile(optimizer=DAdaptAdam(), loss="mse")
    whole.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    half = keras_model("dense")
    half.compile(optimizer=DAdaptAdam(), loss="mse")
    half.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / "d.keras")
    half.save(path)
    resumed = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(resumed.optimizer, DAdaptAdam)
    assert _d(resumed.optimizer) == _d(half.optimizer)
    resumed.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)


def test_config_round_trip():
    optimizer = DAdaptAdam(keras_lr.schedules.CosineDecay(1.0, 10), beta_1=0.5, beta_2=0.9,
                           epsilon=1e-6, weight_decay=0.1, decouple=True,
                           use_bias_correction=True, d0=1e-4, growth_rate=2.0,
                           global_clipnorm=1.0)
    config = optimizer.get_config()
    assert DAdaptAdam.from_config(copy.deepcopy(config)).get_config() == config
    assert DAdaptAdam().get_config()["growth_rate"] == math.inf


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"d0": 0.0}, "Argument `d0` must be > 0. Received: d0=0.0"),
        ({"growth_rate": 0.99}, "Argument `growth_rate` must be >= 1"),
        ({"growth_rate": -math.inf}, "Argument `growth_rate` must be"),
        ({"beta_1": 1.0}, r"Argument `beta_1` must be in \[0, 1\)"),
        ({"epsilon": -1.0}, "Argument `epsilon` must be > 0"),
        ({"weight_decay": -0.1}, "Argument `weight_decay` must be >= 0"),
        ({"decouple": "yes"}, "Argument `decouple` must be a bool"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        DAdaptAdam(**kwargs)
