"""Composition semantics, `as_schedule`, `values` and `plot`."""

import keras
import numpy as np
import pytest

from keras_lr import schedules as S

KerasExponential = keras.optimizers.schedules.ExponentialDecay


def test_warmup_runs_the_inner_schedule_after_warmup():
    schedule = S.Warmup(S.CosineDecay(1e-3, 1000), 100)  # lasts 1100 steps
    lrs = S.values(schedule, 1200)
    assert lrs[0] == 0.0
    assert lrs[50] == pytest.approx(5e-4)
    assert lrs[100] == pytest.approx(1e-3)
    assert lrs[600] == pytest.approx(5e-4, rel=1e-5)
    assert lrs[1099] > 0 and np.all(lrs[1100:] == 0)
    assert np.all(np.diff(lrs[:101]) > 0) and np.all(np.diff(lrs[100:1101]) < 0)


def test_warmup_ramps_to_a_keras_builtin_first_value():
    inner = KerasExponential(0.1, decay_steps=2, decay_rate=0.5)
    lrs = S.values(S.Warmup(inner, 4, start_learning_rate=0.02), 8)
    np.testing.assert_allclose(lrs, [0.02, 0.04, 0.06, 0.08, 0.1, 0.1 * 0.5**0.5, 0.05, 0.025 * 2**0.5], rtol=1e-6)


def test_sequence_restarts_each_schedule_at_its_boundary():
    schedule = S.Sequence([0.1, S.StepDecay(1.0, 2, 0.5), S.PerEpoch(S.StepDecay(0.4, 1, 0.5), 3)], [5, 9])
    lrs = S.values(schedule, 15)
    np.testing.assert_allclose(
        lrs, [0.1] * 5 + [1.0, 1.0, 0.5, 0.5] + [0.4] * 3 + [0.2] * 3, rtol=1e-6
    )


def test_sequence_of_a_single_schedule_is_that_schedule():
    np.testing.assert_array_equal(
        S.values(S.Sequence([S.ExponentialDecay(0.1, 0.9)], []), 20),
        S.values(S.ExponentialDecay(0.1, 0.9), 20),
    )


def test_per_epoch_counts_optimizer_updates_under_gradient_accumulation(clear_session):
    """Keras gives schedules the micro-step count; PerEpoch(schedule, k) turns it into updates."""
    schedule = S.StepDecay(1.0, 1, 0.5)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    optimizer = keras.optimizers.SGD(S.PerEpoch(schedule, 2), gradient_accumulation_steps=2)
    model.compile(optimizer, loss="mae", jit_compile=False)
    model.fit(np.zeros((8, 1)), np.full((8, 1), -1e3), batch_size=1, verbose=0, shuffle=False)
    # 4 updates using schedule(0..3)
    assert float(keras.ops.convert_to_numpy(model.layers[0].bias)[0]) == pytest.approx(-(1 + 0.5 + 0.25 + 0.125))


def test_as_schedule():
    constant = S.as_schedule(0.5)
    assert isinstance(constant, S.Constant) and constant.learning_rate == 0.5
    builtin = KerasExponential(0.1, 10, 0.5)
    assert S.as_schedule(builtin) is builtin
    ours = S.CosineDecay(0.1, 10)
    assert S.as_schedule(ours) is ours
    restored = S.as_schedule(keras.saving.serialize_keras_object(ours))
    assert isinstance(restored, S.CosineDecay) and restored.get_config() == ours.get_config()
    with pytest.raises(TypeError, match="Argument `schedule` must be a float"):
        S.as_schedule("cosine")


def test_values_accepts_counts_arrays_floats_and_builtins():
    schedule = S.StepDecay(1.0, 2, 0.5)
    np.testing.assert_array_equal(S.values(schedule, 5), np.float32([1, 1, 0.5, 0.5, 0.25]))
    np.testing.assert_array_equal(S.values(schedule, [4, 0]), np.float32([0.25, 1]))
    grid = S.values(schedule, np.arange(6).reshape(2, 3))
    assert grid.shape == (2, 3)
    np.testing.assert_array_equal(S.values(0.3, 3), np.float32([0.3] * 3))
    assert S.values(schedule, 0).shape == (0,)
    # a Keras built-in that branches with ops.cond is mapped over the steps
    builtin = keras.optimizers.schedules.CosineDecay(0.0, 10, warmup_target=0.1, warmup_steps=5)
    expected = [float(builtin(t)) for t in range(20)]
    out = S.values(builtin, 20)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-8)


def test_plot_draws_the_curve():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schedule = S.Warmup(S.CosineDecay(1e-3, 50), 10)
    ax = S.plot(schedule, 60)
    x, y = ax.lines[0].get_data()
    np.testing.assert_array_equal(x, np.arange(60))
    np.testing.assert_array_equal(y, S.values(schedule, 60))
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "learning rate"
    fig, given = plt.subplots()
    assert S.plot(0.1, [0, 5, 10], ax=given) is given
    plt.close("all")


def test_repr_shows_the_config():
    assert repr(S.StepDecay(0.1, 3)) == "StepDecay(initial_learning_rate=0.1, step_size=3, gamma=0.1)"
