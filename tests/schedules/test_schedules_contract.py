"""The contract every exported schedule class must honour, on the backend under test.

Classes are discovered from ``keras_lr.schedules.__all__``; a class without an entry in
`EXAMPLES` fails `test_every_exported_schedule_has_examples`, so a schedule added later cannot
skip the contract. Contract: `get_config` holds every `__init__` argument, config and Keras
serialization round trips give an identical curve, outputs are finite and non-negative, a
compiled function (``tf.function`` with XLA on and off; ``jax.jit``; eager where the backend
has no compiler in `JIT_MODES`) traces once for any step value and matches the eager curve, and
`model.fit` uses exactly ``schedule(t)`` at update ``t`` with every ``jit_compile`` of
`JIT_MODES`, traced with the train function (not once per step); the saved model
(``safe_mode=True``) restores an identical curve. Runs on TensorFlow, JAX and torch.
"""

import inspect

import keras
import numpy as np
import pytest
from backend_utils import BACKEND, JIT_MODES
from keras import ops

from keras_lr import schedules as S

KerasCosine = keras.optimizers.schedules.CosineDecay
KerasPiecewise = keras.optimizers.schedules.PiecewiseConstantDecay

EXPORTED = {
    name: obj
    for name, obj in ((n, getattr(S, n)) for n in S.__all__)
    if isinstance(obj, type) and issubclass(obj, keras.optimizers.schedules.LearningRateSchedule)
}

# Short durations so that the few fitted steps cross boundaries.
EXAMPLES = {
    S.Constant: [S.Constant(0.01)],
    S.StepDecay: [S.StepDecay(0.1, 2, 0.5)],
    S.ExponentialDecay: [S.ExponentialDecay(0.1, 0.9)],
    S.LinearDecay: [S.LinearDecay(0.1, 3, 0.02)],
    S.PolynomialDecay: [S.PolynomialDecay(0.1, 3, 0.01, power=2.0)],
    S.CosineDecay: [S.CosineDecay(0.1, 3, 0.01)],
    S.CosineRestarts: [S.CosineRestarts(0.1, 2, 1.5, 0.8, 0.001)],
    S.InverseSqrtDecay: [S.InverseSqrtDecay(0.1, 2)],
    S.PiecewiseLinear: [S.PiecewiseLinear([1, 3], [0.05, 0.1])],
    S.CyclicalLR: [S.CyclicalLR(0.01, 0.1, 2, 1, mode="exp_range", gamma=0.9)],
    S.OneCycle: [S.OneCycle(0.1, 10, 0.3), S.OneCycle(0.1, 10, 0.3, "linear", three_phase=True)],
    S.WarmupStableDecay: [S.WarmupStableDecay(0.1, 1, 1, 2, "cosine", 0.01)],
    S.Warmup: [
        S.Warmup(S.StepDecay(0.1, 1, 0.5), 2, 0.01, shape="exponential"),
        S.Warmup(KerasCosine(0.1, 5, warmup_target=0.2, warmup_steps=1), 1),
        S.Warmup(0.05, 3, shape="cosine"),
    ],
    S.Sequence: [
        S.Sequence([0.01, S.CosineDecay(0.1, 2), KerasPiecewise([1], [0.02, 0.01])], [1, 3]),
        S.Warmup(
            S.Sequence([S.LinearDecay(0.1, 2), S.PerEpoch(S.StepDecay(0.05, 1, 0.5), 2)], [2]), 1
        ),
    ],
    S.Product: [
        S.Product([S.StepDecay(0.1, 2, 0.5), S.ExponentialDecay(1.0, 0.9)]),
        S.Product([S.CosineDecay(0.1, 5), S.LinearDecay(0.4, 3, 1.0), 0.5,
                   keras.optimizers.schedules.ExponentialDecay(1.0, 2, 0.5)]),
    ],
    S.MultiStepDecay: [S.MultiStepDecay(0.1, [1, 3], 0.3), S.MultiStepDecay(0.1, [2, 4, 4], 0.5)],
    S.OneCycleMomentum: [
        S.OneCycleMomentum(10, 0.3), S.OneCycleMomentum(10, 0.3, "linear", three_phase=True)
    ],
    S.CyclicalMomentum: [S.CyclicalMomentum(2, 1, mode="exp_range", gamma=0.9)],
    S.PerEpoch: [
        S.PerEpoch(S.MultiStepDecay(0.1, [1], 0.1), 2),
        S.PerEpoch(keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5), 3),
    ],
}

# JAX without jax_enable_x64 (Keras's default there) holds integer steps in int32, as its own
# `iterations` counter: 10**10 does not fit, so the grid stops at 10**9 + 3 on JAX.
LARGE = [999, 10**6, 10**9 + 3] + ([] if BACKEND == "jax" else [10**10])
GRID = np.concatenate([np.arange(60), LARGE])
LAST = len(GRID) - 1
FIT_STEPS = 6


def compiled(fn, jit):
    """`fn` compiled as the backend compiles a train step, and whether it is traced."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=jit), True
    if BACKEND == "jax" and jit:
        import jax

        return jax.jit(fn), True
    return fn, False  # eager: JAX without jit, torch (see backend_utils.JIT_MODES)


def step_tensor(step):
    return ops.convert_to_tensor(np.int64(step))


def _examples(cls):
    if cls not in EXAMPLES:
        pytest.fail(f"{cls.__name__} is exported but has no example in EXAMPLES")
    return EXAMPLES[cls]


def test_every_exported_schedule_has_examples():
    missing = [name for name, cls in EXPORTED.items() if cls not in EXAMPLES]
    assert not missing, f"exported schedules without contract examples: {missing}"
    # and the table holds nothing unexported
    assert set(EXAMPLES) <= set(EXPORTED.values())
    assert len(EXPORTED) >= 16


@pytest.mark.parametrize("name", list(EXPORTED))
def test_config_holds_every_init_argument(name):
    cls = EXPORTED[name]
    arguments = set(inspect.signature(cls.__init__).parameters) - {"self"}
    for schedule in _examples(cls):
        if type(schedule) is not cls:  # a nested example listed under its inner class
            continue
        assert set(schedule.get_config()) == arguments


@pytest.mark.parametrize("name", list(EXPORTED))
def test_round_trips_give_identical_curve(name):
    for schedule in _examples(EXPORTED[name]):
        expected = S.values(schedule, GRID)
        rebuilt = type(schedule).from_config(schedule.get_config())
        np.testing.assert_array_equal(S.values(rebuilt, GRID), expected)
        config = keras.saving.serialize_keras_object(schedule)
        assert config["registered_name"].startswith("keras_lr>")
        restored = keras.saving.deserialize_keras_object(config, safe_mode=True)
        assert type(restored) is type(schedule)
        np.testing.assert_array_equal(S.values(restored, GRID), expected)


@pytest.mark.parametrize("name", list(EXPORTED))
def test_finite_non_negative_scalar_equals_vector(name):
    for schedule in _examples(EXPORTED[name]):
        curve = S.values(schedule, GRID)
        assert curve.shape == GRID.shape and curve.dtype == np.float32
        assert np.all(np.isfinite(curve)) and np.all(curve >= 0)
        for i in (0, 1, 2, 7, 61, LAST):
            assert float(schedule(int(GRID[i]))) == pytest.approx(float(curve[i]), rel=1e-6)
        matrix = schedule(GRID[:60].reshape(6, 10))
        np.testing.assert_allclose(np.asarray(matrix).ravel(), curve[:60], rtol=1e-6)


def _count_traces(schedule):
    """Count Python-level evaluations of a keras-lr schedule (one per trace in a graph)."""
    calls = []
    original = schedule._compute

    def counting(t):
        calls.append(1)
        return original(t)

    schedule._compute = counting
    return calls, lambda: schedule.__dict__.pop("_compute")


@pytest.mark.parametrize("jit", JIT_MODES, ids=lambda jit: f"jit={jit}")
@pytest.mark.parametrize("name", list(EXPORTED))
def test_compiled_function_traces_once(name, jit):
    for schedule in _examples(EXPORTED[name]):
        expected = S.values(schedule, GRID)
        calls, restore = _count_traces(schedule)
        try:
            function, traced = compiled(lambda s: schedule(s), jit)  # noqa: B023
            for i in (0, 3, 59, 62, LAST):
                out = function(step_tensor(GRID[i]))
                assert keras.backend.standardize_dtype(out.dtype) == "float32"
                assert float(out) == pytest.approx(float(expected[i]), rel=1e-6)
            if traced:
                assert len(calls) == 1, f"{len(calls)} traces for {schedule}"
            vector, _ = compiled(lambda s: schedule(s), jit)  # noqa: B023
            out = ops.convert_to_numpy(vector(ops.convert_to_tensor(GRID)))
            np.testing.assert_allclose(out, expected, rtol=1e-6)
            if BACKEND == "tensorflow":
                # a step read from a variable inside the compiled function is not baked in
                import tensorflow as tf

                step = tf.Variable(0, dtype=tf.int64)
                read = tf.function(lambda: schedule(step), jit_compile=jit)  # noqa: B023
                for i in (5, LAST):
                    step.assign(int(GRID[i]))
                    assert float(read()) == pytest.approx(float(expected[i]), rel=1e-6)
        finally:
            restore()


def _fit(schedule, jit_compile):
    """Fit a Dense(1) whose bias gradient is exactly 1 at every step: bias = -sum(lr)."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(keras.optimizers.SGD(schedule), loss="mae", jit_compile=jit_compile)
    x = np.zeros((FIT_STEPS, 1), "float32")
    y = np.full((FIT_STEPS, 1), -1e3, "float32")
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, shuffle=False)  # FIT_STEPS updates
    return model


@pytest.mark.parametrize("jit_compile", JIT_MODES, ids=lambda jit: f"jit={jit}")
@pytest.mark.parametrize("name", list(EXPORTED))
def test_model_fit_uses_the_schedule_and_saves(name, jit_compile, tmp_path, clear_session):
    examples = _examples(EXPORTED[name])
    # every example in the last mode (XLA / jax.jit where there is one; saved too); the
    # other mode once per class
    full = jit_compile == JIT_MODES[-1]
    traced = BACKEND == "tensorflow" or (BACKEND == "jax" and jit_compile)
    for k, schedule in enumerate(examples if full else examples[:1]):
        expected = S.values(schedule, GRID)
        calls, restore = _count_traces(schedule)
        try:
            model = _fit(schedule, jit_compile)
        finally:
            restore()
        if traced:  # traced with the train function, not once per step
            assert 1 <= len(calls) <= 2 < FIT_STEPS
        bias = float(ops.convert_to_numpy(model.layers[0].bias)[0])
        used = S.values(schedule, np.arange(FIT_STEPS)).astype(np.float64)
        assert bias == pytest.approx(-used.sum(), rel=1e-5)
        assert float(model.optimizer.learning_rate) == pytest.approx(float(expected[FIT_STEPS]))
        if not full:
            continue
        path = tmp_path / f"{name}{k}.keras"
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        restored = loaded.optimizer._learning_rate
        assert type(restored) is type(schedule)
        assert int(ops.convert_to_numpy(loaded.optimizer.iterations)) == FIT_STEPS
        np.testing.assert_array_equal(S.values(restored, GRID), expected)
