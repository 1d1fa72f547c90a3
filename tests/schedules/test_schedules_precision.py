"""Large steps (1e9, 1e10: no int32 overflow, exact boundaries) and the float64 dtype rule.

JAX keeps int32 steps and float32 arithmetic unless ``jax_enable_x64`` is set (JAX's default,
which Keras does not change): the tests that need int64 steps or float64 values run on
TensorFlow and torch.
"""

import keras
import numpy as np
import pytest
import schedule_oracles as oracles
from backend_utils import JIT_MODES
from keras import ops

from keras_lr import schedules as S

NEEDS_X64 = pytest.mark.backends(
    "tensorflow", "torch",
    reason="int64 steps and float64 values need jax_enable_x64, off by default in JAX",
)

E9, E10 = 10**9, 10**10


def around(*points):
    return np.array(sorted({p + d for p in points for d in (-1, 0, 1)}), dtype=np.int64)


LARGE = [
    (S.StepDecay(1.0, E9, 0.5), lambda t: oracles.step_decay(1.0, E9, 0.5, t), around(E9, E10)),
    (
        S.MultiStepDecay(1.0, [E9, 5 * E9, E10], 0.5),
        lambda t: oracles.multistep_decay(1.0, [E9, 5 * E9, E10], 0.5, t),
        around(E9, 5 * E9, E10),
    ),
    (S.CosineDecay(1.0, 2 * E10, 0.1), lambda t: oracles.cosine_decay(1.0, 2 * E10, 0.1, t), around(E10, 2 * E10)),
    (S.CosineRestarts(1.0, E9, 2), lambda t: oracles.sgdr(1.0, E9, 2, 1.0, 0.0, t), around(E9, 3 * E9, 7 * E9)),
    (S.CosineRestarts(1.0, 3, 1.0, 0.9999), lambda t: oracles.sgdr(1.0, 3, 1, 0.9999, 0.0, t), around(E10, E10 + 3)),
    (S.CosineRestarts(1.0, 7, 1.0), lambda t: oracles.sgdr(1.0, 7, 1, 1.0, 0.0, t), around(E10, 7 * (E10 // 7))),
    (S.InverseSqrtDecay(1.0, E9), lambda t: oracles.inverse_sqrt(1.0, E9, t), around(E9, E10)),
    (
        S.CyclicalLR(0.1, 1.0, 7, mode="triangular"),
        lambda t: oracles.cyclical_symmetric(0.1, 1.0, 7, t),
        around(E10, 14 * (E10 // 14), 14 * (E10 // 14) + 7),
    ),
    (
        S.WarmupStableDecay(1.0, E9, E9, 2 * E9, "cosine", 0.1),
        lambda t: oracles.wsd(1.0, E9, E9, 2 * E9, "cosine", 0.1, t),
        around(E9, 2 * E9, 3 * E9, 4 * E9, E10),
    ),
    (
        S.PiecewiseLinear([0, E9, E10], [0.0, 1.0, 0.5]),
        lambda t: oracles.piecewise_linear([0, E9, E10], [0.0, 1.0, 0.5], t),
        around(E9, E10),
    ),
    (
        S.PerEpoch(S.StepDecay(1.0, 1, 0.5), E9),
        lambda t: oracles.step_decay(1.0, E9, 0.5, t),
        around(E9, 5 * E9, E10),
    ),
    (
        S.Sequence([0.1, S.StepDecay(1.0, E9, 0.5)], [E10]),
        lambda t: np.where(np.asarray(t) < E10, 0.1, oracles.step_decay(1.0, E9, 0.5, np.maximum(np.asarray(t) - E10, 0))),
        around(E10, E10 + E9),
    ),
    (
        S.Warmup(S.CosineDecay(1.0, E10), E9),
        lambda t: oracles.warmup(lambda s: oracles.cosine_decay(1.0, E10, 0.0, s), E9, 0.0, "linear", t),
        around(E9, E10, E10 + E9),
    ),
]


@NEEDS_X64
@pytest.mark.parametrize("schedule, oracle, at", LARGE, ids=[type(c[0]).__name__ + str(i) for i, c in enumerate(LARGE)])
def test_large_steps_match_exact_integer_oracles(schedule, oracle, at):
    np.testing.assert_allclose(S.values(schedule, at), oracle(at), rtol=1e-5, atol=1e-12)
    # float64 steps give float64 values, closer still
    np.testing.assert_allclose(
        S.values(schedule, at.astype(np.float64)), oracle(at), rtol=1e-9, atol=1e-15
    )


@pytest.mark.backends("tensorflow", reason="reads a tf.Variable inside an XLA tf.function; "
                      "the contract test covers compiled functions on every backend")
def test_large_step_in_an_xla_graph_from_an_int64_variable():
    import tensorflow as tf

    schedule = S.Warmup(S.Sequence([S.CosineRestarts(1.0, E9, 2), 0.1], [5 * E10]), 10)
    step = tf.Variable(0, dtype=tf.int64)
    read = tf.function(lambda: schedule(step), jit_compile=True)
    for t in (7 * E9 + 10 - 1, 7 * E9 + 10, 5 * E10 + 10):
        step.assign(t)
        assert float(read()) == pytest.approx(float(schedule(t)), rel=1e-6)
    step.assign(7 * E9 + 10)
    assert float(read()) == pytest.approx(1.0)  # a restart, exactly at 7e9 after warmup


def test_int32_and_float_steps_are_accepted():
    schedule = S.StepDecay(1.0, 2, 0.5)
    assert float(schedule(ops.convert_to_tensor(np.int32(4)))) == pytest.approx(0.25)
    assert float(schedule(ops.convert_to_tensor(np.float16(4.0)))) == pytest.approx(0.25)
    assert float(schedule(4.0)) == pytest.approx(0.25)
    with pytest.raises(TypeError, match="step"):
        schedule(True)


def dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def test_dtype_rule_float32():
    schedule = S.CosineDecay(0.1, 1000)
    assert dtype(schedule(3)) == "float32"
    assert dtype(schedule(np.int64(3))) == "float32"
    assert dtype(schedule(ops.convert_to_tensor(np.float32(3.0)))) == "float32"
    assert S.values(schedule, 5).dtype == np.float32


@pytest.mark.backends("tensorflow", reason="on torch CosineDecay returns float32 for a float64 step (Keras 3.15 torch ops downcast; open, issue 15)")
@NEEDS_X64
def test_dtype_rule_float64():
    schedule = S.CosineDecay(0.1, 1000)
    assert dtype(schedule(ops.convert_to_tensor(np.float64(3.0)))) == "float64"
    assert dtype(schedule(np.float64(3.0))) == "float64"
    assert S.values(schedule, np.arange(5, dtype=np.float64)).dtype == np.float64
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        assert dtype(schedule(3)) == "float64"
    finally:
        keras.config.set_floatx(previous)


@NEEDS_X64
def test_float64_values_match_to_double_precision():
    at = np.arange(0, 3000, 7, dtype=np.float64)
    cases = [
        (S.CosineDecay(0.1, 1000, 0.001), oracles.cosine_decay(0.1, 1000, 0.001, at)),
        (S.CosineRestarts(0.1, 50, 2, 0.5, 0.01), oracles.sgdr(0.1, 50, 2, 0.5, 0.01, at)),
        (
            S.WarmupStableDecay(0.1, 100, 500, 1000, "1-sqrt", 0.01),
            oracles.wsd(0.1, 100, 500, 1000, "1-sqrt", 0.01, at),
        ),
        (S.InverseSqrtDecay(0.1, 300), oracles.inverse_sqrt(0.1, 300, at)),
    ]
    for schedule, expected in cases:
        np.testing.assert_allclose(S.values(schedule, at), expected, rtol=1e-12, atol=1e-15)


@NEEDS_X64
def test_wsd_warmup_from_the_floor_is_a_composition():
    """Recent Hugging Face releases start the WSD warmup at min_lr: Warmup(start=floor) gives it."""
    at = np.arange(0, 1800, 1, dtype=np.float64)
    for shape in ("linear", "cosine", "1-sqrt"):
        composed = S.Warmup(S.WarmupStableDecay(0.1, 0, 500, 1000, shape, 0.01), 100,
                            start_learning_rate=0.01)
        expected = oracles.wsd(0.1, 100, 500, 1000, shape, 0.01, at, warmup_from_floor=True)
        np.testing.assert_allclose(S.values(composed, at), expected, rtol=1e-12, atol=1e-15)
        # the plain class ramps from 0 (the older releases), so the two differ in the warmup
        plain = S.values(S.WarmupStableDecay(0.1, 100, 500, 1000, shape, 0.01), at)
        assert plain[0] == 0.0 and expected[0] == 0.01


@NEEDS_X64
def test_float64_model_uses_float64_rates(clear_session):
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        schedule = S.Warmup(S.CosineDecay(0.1, 4), 2, start_learning_rate=1e-3)
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="zeros")])
        model.compile(keras.optimizers.SGD(schedule), loss="mae", jit_compile=JIT_MODES[-1])
        model.fit(np.zeros((6, 1)), np.full((6, 1), -1e3), batch_size=1, verbose=0, shuffle=False)
        bias = model.layers[0].bias
        assert bias.dtype == "float64"
        expected = -S.values(schedule, np.arange(6, dtype=np.float64)).sum()
        assert float(ops.convert_to_numpy(bias)[0]) == pytest.approx(expected, rel=1e-12)
    finally:
        keras.config.set_floatx(previous)
