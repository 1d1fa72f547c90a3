"""`find_lr`: rates, per-step losses, smoothing, stopping and the exact state restore."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
from backend_utils import BACKEND, JIT_MODES

import keras_lr.finder.core as core
import keras_lr.finder.loop as loop_module
from keras_lr.finder import LRFinderResult, find_lr, range_test_rates

try:  # tf.data input works on every backend when TensorFlow is installed
    import tensorflow as tf
except ImportError:  # pragma: no cover - an environment without TensorFlow
    tf = None

needs_tf_data = pytest.mark.skipif(tf is None, reason="tf.data input needs TensorFlow installed")

RNG = np.random.default_rng(0)
X_LIN = RNG.normal(size=(64, 3)).astype("float32")
Y_LIN = (X_LIN @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype("float32")
X_CLS = RNG.normal(size=(96, 8)).astype("float32")
Y_CLS = (X_CLS[:, 0] + X_CLS[:, 1] > 0).astype("int32") + (X_CLS[:, 2] > 1).astype("int32")


def linear_model(optimizer, **compile_kwargs):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="out")])
    model.compile(optimizer=optimizer, loss="mse", **compile_kwargs)
    return model


def classifier(optimizer, dropout=True, **compile_kwargs):
    keras.utils.set_random_seed(2)
    layers = [keras.Input((8,)), keras.layers.Dense(16, activation="relu")]
    if dropout:
        layers.append(keras.layers.Dropout(0.2, seed=3))
    layers += [keras.layers.BatchNormalization(), keras.layers.Dense(3, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(
        optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
        **compile_kwargs,
    )
    return model


def state(model):
    """Every variable find_lr promises to restore, as NumPy copies keyed by position."""
    variables = [*model.variables, *model.metrics_variables, *model.optimizer.variables]
    return [(v.path, np.array(keras.ops.convert_to_numpy(v), copy=True)) for v in variables]


def assert_same_state(before, after, same_model=True):
    assert len(before) == len(after)
    if same_model:
        assert [p for p, _ in before] == [p for p, _ in after]
    for (path, a), (_, b) in zip(before, after):
        assert a.dtype == b.dtype and np.array_equal(a, b), path


def sgd_oracle(x, y, w, b, rates, batch_size):
    """Plain NumPy gradient descent on mean squared error: the loss of each step, then update."""
    losses, n = [], len(x)
    for i, lr in enumerate(rates):
        start = (i * batch_size) % n
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        err = xb @ w + b - yb
        losses.append(float(np.mean(err**2)))
        w = w - lr * (2.0 / err.size) * xb.T @ err
        b = b - lr * (2.0 / err.size) * err.sum(axis=0)
    return np.array(losses)


# ---------------------------------------------------------------------- the curve itself
def test_rates_formula():
    rates = range_test_rates(1e-7, 10.0, 100)
    expected = [1e-7 * (10.0 / 1e-7) ** (i / 99) for i in range(100)]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    assert rates[0] == 1e-7 and rates[-1] == pytest.approx(10.0, rel=1e-12)


@pytest.mark.parametrize("schedule", [False, True])
def test_losses_match_numpy_sgd(schedule):
    """Each recorded loss is the batch loss *before* the step taken with rate lr_i."""
    lr = keras.optimizers.schedules.ExponentialDecay(0.5, 10, 0.1) if schedule else 0.5
    model = linear_model(keras.optimizers.SGD(lr))
    w, b = (keras.ops.convert_to_numpy(v).astype("float64") for v in model.layers[0].weights)
    result = find_lr(model, X_LIN, Y_LIN, batch_size=16, start_lr=1e-3, end_lr=0.3,
                     num_steps=12, shuffle=False, steps_per_chunk=5)
    assert result.stop_reason == "completed" and len(result) == 12
    np.testing.assert_allclose(result.learning_rates, range_test_rates(1e-3, 0.3, 12))
    expected = sgd_oracle(X_LIN.astype("float64"), Y_LIN.astype("float64"), w, b,
                          result.learning_rates, 16)
    np.testing.assert_allclose(result.losses, expected, rtol=2e-5)


def test_smoothing_formula():
    model = classifier("adam")
    result = find_lr(model, X_CLS, Y_CLS, batch_size=16, num_steps=30, smoothing=0.9,
                     stop_factor=1e9, steps_per_chunk=7)
    avg, expected = 0.0, []
    for i, loss in enumerate(result.losses):
        avg = 0.9 * avg + 0.1 * loss
        expected.append(avg / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose(result.smoothed_losses, expected, rtol=1e-12)
    plain = find_lr(model, X_CLS, Y_CLS, batch_size=16, num_steps=10, smoothing=0.0)
    np.testing.assert_array_equal(plain.smoothed_losses, plain.losses)


@needs_tf_data
def test_cycles_short_data_and_accepts_datasets():
    model = linear_model(keras.optimizers.SGD(0.1))
    x, y = X_LIN[:20], Y_LIN[:20]  # two batches of 16 and 4
    result = find_lr(model, x, y, batch_size=16, start_lr=1e-4, end_lr=1e-2, num_steps=11,
                     shuffle=False)
    assert len(result) == 11 and result.stop_reason == "completed"
    # the same stream as a tf.data.Dataset gives the same losses
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    again = find_lr(model, dataset, start_lr=1e-4, end_lr=1e-2, num_steps=11)
    np.testing.assert_allclose(again.losses, result.losses, rtol=1e-6)


# ---------------------------------------------------------------------- stopping
def test_divergence_stops_early():
    model = linear_model(keras.optimizers.SGD(0.1))
    result = find_lr(model, X_LIN, Y_LIN, batch_size=16, start_lr=1e-3, end_lr=1e3,
                     num_steps=60, smoothing=0.5)
    assert result.stop_reason == "diverged" and result.diverged
    assert 10 < len(result) < 60
    sm = result.smoothed_losses
    assert sm[-1] > 4.0 * sm.min()
    assert np.all(sm[:-1] <= 4.0 * np.minimum.accumulate(sm)[:-1])  # stopped at the first one


def test_nan_loss_truncates_the_curve():
    x = X_LIN.copy()
    x[7 * 4 + 1, 0] = np.nan  # the batch of step 7 (batch_size 4, no shuffle)
    model = linear_model(keras.optimizers.SGD(0.01))
    before = state(model)
    result = find_lr(model, x, Y_LIN, batch_size=4, start_lr=1e-4, end_lr=1e-2, num_steps=20,
                     stop_factor=1e9,
                     shuffle=False, steps_per_chunk=3)
    assert result.stop_reason == "non-finite" and result.diverged
    assert len(result) == 7
    assert np.all(np.isfinite(result.losses)) and np.all(np.isfinite(result.smoothed_losses))
    assert_same_state(before, state(model))
    ax = result.plot()
    xs = np.concatenate([line.get_xdata() for line in ax.get_lines()])
    ys = np.concatenate([line.get_ydata() for line in ax.get_lines()])
    assert np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))
    assert xs.max() <= result.learning_rates[-1]
    assert ax.get_xscale() == "log"


def test_inf_from_overflow_is_non_finite():
    model = linear_model(keras.optimizers.SGD(0.1))
    result = find_lr(model, X_LIN * 1e3, Y_LIN, batch_size=16, start_lr=1e-2, end_lr=1e6,
                     num_steps=40, stop_factor=1e300)
    assert result.stop_reason == "non-finite"
    assert np.all(np.isfinite(result.losses)) and len(result) < 40


# ---------------------------------------------------------------------- restore
@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda: keras.optimizers.Adam(1e-3),
        lambda: keras.optimizers.SGD(
            keras.optimizers.schedules.CosineDecay(0.05, 100), momentum=0.9, nesterov=True),
        lambda: keras.optimizers.AdamW(1e-3, weight_decay=0.01, use_ema=True),
        lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.RMSprop(1e-3)),
    ],
    ids=["adam", "sgd-schedule", "adamw-ema", "loss-scale"],
)
def test_restore_is_exact_and_fit_is_unchanged(make_optimizer):
    a, b = classifier(make_optimizer()), classifier(make_optimizer())
    for model in (a, b):  # a cached train_function and non-zero slots exist before find_lr
        model.fit(X_CLS, Y_CLS, batch_size=16, epochs=1, shuffle=False, verbose=0)
    inner = core._innermost_optimizer(a.optimizer)
    lr_object = inner._learning_rate
    before = state(a)
    result = find_lr(a, X_CLS, Y_CLS, batch_size=16, num_steps=25, steps_per_chunk=10)
    assert len(result) > 10
    assert_same_state(before, state(a))
    assert inner._learning_rate is lr_object
    if BACKEND == "jax" and getattr(inner, "use_ema", False):
        # Keras 3.15 on JAX cannot fit an EMA optimizer twice, find_lr or not: the first fit
        # leaves each weight and its EMA average in one buffer, the second donates it twice.
        return
    for model in (a, b):
        model.fit(X_CLS, Y_CLS, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert_same_state(state(b), state(a), same_model=False)


def test_restore_false_keeps_the_trained_weights_but_not_the_rate():
    model = linear_model(keras.optimizers.SGD(0.05))
    kernel = keras.ops.convert_to_numpy(model.layers[0].kernel).copy()
    find_lr(model, X_LIN, Y_LIN, batch_size=16, start_lr=1e-3, end_lr=0.1, num_steps=10,
            restore=False)
    assert not np.array_equal(keras.ops.convert_to_numpy(model.layers[0].kernel), kernel)
    assert int(model.optimizer.iterations) == 10
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)


def test_unbuilt_optimizer_is_built_and_left_fresh():
    model = classifier("adam", dropout=False)
    assert not model.optimizer.built
    weights = [keras.ops.convert_to_numpy(w).copy() for w in model.weights]
    find_lr(model, X_CLS, Y_CLS, num_steps=10)
    assert model.optimizer.built and int(model.optimizer.iterations) == 0
    for variable in model.optimizer.variables:
        if "momentum" in variable.path or "velocity" in variable.path:
            assert not np.any(keras.ops.convert_to_numpy(variable))
    for w, v in zip(weights, model.weights):
        np.testing.assert_array_equal(w, keras.ops.convert_to_numpy(v))


def _failing_loss(fail_at):
    calls = {"n": 0}

    def count(y_pred):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise RuntimeError("injected failure")
        return np.float32(0.0)

    def loss(y_true, y_pred):
        bump = tf.reshape(tf.numpy_function(count, [y_pred], tf.float32, stateful=True), [])
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred) + bump

    return loss


@pytest.mark.backends("tensorflow", reason="the failure is raised inside the TensorFlow graph "
                      "by tf.numpy_function; test_restore_after_an_interruption covers the rest")
def test_restore_after_an_exception_inside_the_graph():
    keras.utils.set_random_seed(2)
    model = classifier("adam")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=_failing_loss(fail_at=13))
    model.fit(X_CLS[:32], Y_CLS[:32], batch_size=16, verbose=0)  # 2 steps; failure on step 11
    lr_variable = model.optimizer._learning_rate
    before = state(model)
    with pytest.raises(Exception, match="injected failure"):
        find_lr(model, X_CLS, Y_CLS, batch_size=16, num_steps=30, steps_per_chunk=4)
    assert_same_state(before, state(model))
    assert model.optimizer._learning_rate is lr_variable


def _interrupt_second_chunk(monkeypatch, error):
    """Make the backend loop raise `error` right after its second chunk really ran."""
    loop_class = loop_module.backend_module().Loop
    chunk = loop_class.chunk
    calls = []

    def interrupted(self, *args, **kwargs):
        out = chunk(self, *args, **kwargs)  # the steps really ran: weights and slots moved
        calls.append(1)
        if len(calls) == 2:
            raise error
        return out

    monkeypatch.setattr(loop_class, "chunk", interrupted)
    return calls


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError("injected failure")],
                         ids=["keyboard-interrupt", "exception"])
@pytest.mark.parametrize("restore", [True, False])
def test_restore_after_an_interruption(monkeypatch, error, restore):
    """Interrupted mid-test, the model and optimizer are put back exactly (and the optimizer's
    own schedule too, also with restore=False); the model still trains afterwards."""
    model = classifier(keras.optimizers.SGD(
        keras.optimizers.schedules.ExponentialDecay(0.1, 100, 0.5), momentum=0.9))
    schedule = model.optimizer._learning_rate
    model.fit(X_CLS, Y_CLS, batch_size=16, epochs=1, verbose=0)
    before = state(model)
    calls = _interrupt_second_chunk(monkeypatch, error)
    with pytest.raises(type(error) if isinstance(error, Exception) else error):
        find_lr(model, X_CLS, Y_CLS, batch_size=16, num_steps=40, steps_per_chunk=5,
                restore=restore)
    assert len(calls) == 2
    if restore:
        assert_same_state(before, state(model))
    else:  # the weights moved, the rate is the optimizer's own again
        assert not all(np.array_equal(a, b) for (_, a), (_, b) in zip(before, state(model)))
    assert model.optimizer._learning_rate is schedule
    model.fit(X_CLS, Y_CLS, batch_size=16, epochs=1, verbose=0)


# ---------------------------------------------------------------------- execution modes
MODES = [{"jit_compile": jit} for jit in JIT_MODES] + [{"run_eagerly": True}]


def _assert_curve_matches_numpy_sgd(model):
    """A 10-step range test of the linear model, in chunks of 4, against the float64 oracle."""
    w, b = (keras.ops.convert_to_numpy(v).astype("float64") for v in model.layers[0].weights)
    result = find_lr(model, X_LIN, Y_LIN, batch_size=16, start_lr=1e-3, end_lr=0.3,
                     num_steps=10, shuffle=False, steps_per_chunk=4)
    expected = sgd_oracle(X_LIN.astype("float64"), Y_LIN.astype("float64"), w, b,
                          result.learning_rates, 16)
    np.testing.assert_allclose(result.losses, expected, rtol=2e-5)


@pytest.mark.parametrize("compile_kwargs", MODES, ids=lambda k: "-".join(map(str, k.items())))
@pytest.mark.parametrize("schedule", [False, True])
def test_every_execution_mode_matches_numpy_sgd(compile_kwargs, schedule):
    """Compiled chunks (XLA / jitted scan), plain graphs and eager steps give the same curve."""
    lr = keras.optimizers.schedules.ExponentialDecay(0.5, 10, 0.1) if schedule else 0.5
    model = linear_model(keras.optimizers.SGD(lr), **compile_kwargs)
    _assert_curve_matches_numpy_sgd(model)


@pytest.mark.backends("jax", reason="the JAX loop's compiled blocks")
@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_jax_blocks_have_no_control_flow_and_match_numpy_sgd(steps_per_execution):
    """Blocks of `steps_per_execution` steps, the last one padded, skip steps by a select.

    On XLA:CPU a convolution inside `lax.scan` / `lax.cond` runs about ten times slower than
    at top level, so the compiled block must hold neither; the curve is still exact (a stop
    inside a block: test_finder_backends.py).
    """
    import jax

    model = linear_model(keras.optimizers.SGD(0.5), jit_compile=True)
    model.steps_per_execution = steps_per_execution
    _assert_curve_matches_numpy_sgd(model)
    loop = model.__dict__[loop_module._CACHE_ATTR]
    assert loop.per_block == steps_per_execution
    state = loop.save()
    batch = (X_LIN[:16], Y_LIN[:16])
    jaxpr = jax.make_jaxpr(loop._block_steps)(
        state, True, [batch] * steps_per_execution, np.zeros(steps_per_execution, "float32"),
        np.int32(0), np.int32(1), loop._metrics_reset())

    def primitives(jaxpr):
        for eqn in jaxpr.eqns:
            yield str(eqn.primitive)
            for sub in jax.core.jaxprs_in_params(eqn.params):
                yield from primitives(sub)

    found = set(primitives(jaxpr.jaxpr))
    assert "add" in found  # the walk sees the step
    assert not found & {"while", "cond", "scan"}, found


# ---------------------------------------------------------------------- keras-lr wrappers
def _wrapper(module, name):
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        pytest.skip(f"{module}.{name} is not in the tree yet")


@pytest.mark.slow
@pytest.mark.parametrize(
    "module, name, kwargs",
    [
        ("keras_lr.optimizers", "LRWrapper", {}),
        ("keras_lr.optimizers", "LayerwiseLR", {"multipliers": [("batch_normalization", 0.5)]}),
        ("keras_lr.guards", "GradientGuard", {"clip": "autoclip"}),
    ],
)
def test_keras_lr_wrappers(module, name, kwargs):
    cls = _wrapper(module, name)

    def make():
        inner = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, 50))
        return cls(inner, **(kwargs or {}))

    a, b = classifier(make()), classifier(make())
    for model in (a, b):
        model.fit(X_CLS, Y_CLS, batch_size=16, epochs=1, shuffle=False, verbose=0)
    before = state(a)
    result = find_lr(a, X_CLS, Y_CLS, batch_size=16, start_lr=1e-5, end_lr=1.0, num_steps=20)
    assert len(result) > 10 and np.all(np.isfinite(result.losses))
    assert_same_state(before, state(a))
    for model in (a, b):
        model.fit(X_CLS, Y_CLS, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert_same_state(state(b), state(a), same_model=False)


def test_wrapper_rate_really_drives_the_inner_optimizer():
    cls = _wrapper("keras_lr.optimizers", "LRWrapper")
    model = linear_model(cls(keras.optimizers.SGD(0.5)))
    w, b = (keras.ops.convert_to_numpy(v).astype("float64") for v in model.layers[0].weights)
    result = find_lr(model, X_LIN, Y_LIN, batch_size=16, start_lr=1e-3, end_lr=0.3,
                     num_steps=10, shuffle=False)
    expected = sgd_oracle(X_LIN.astype("float64"), Y_LIN.astype("float64"), w, b,
                          result.learning_rates, 16)
    np.testing.assert_allclose(result.losses, expected, rtol=2e-5)


# ---------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"start_lr": 1.0, "end_lr": 1.0}, ValueError, "end_lr"),
        ({"start_lr": 0.0}, ValueError, "start_lr` must be > 0"),
        ({"end_lr": -1.0}, ValueError, "end_lr` must be > 0"),
        ({"num_steps": 9}, ValueError, "num_steps` must be >= 10. Received: num_steps=9"),
        ({"num_steps": 20.5}, TypeError, "num_steps"),
        ({"smoothing": 1.0}, ValueError, "smoothing` must be < 1"),
        ({"smoothing": -0.1}, ValueError, "smoothing` must be >= 0"),
        ({"stop_factor": 1.0}, ValueError, "stop_factor` must be > 1"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"start_lr": math.nan}, ValueError, "start_lr` must be finite"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    model = linear_model("sgd")
    with pytest.raises(error, match=match):
        find_lr(model, X_LIN, Y_LIN, **kwargs)


@needs_tf_data
def test_bad_model_and_data():
    with pytest.raises(TypeError, match="keras.Model"):
        find_lr("model", X_LIN, Y_LIN)
    uncompiled = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="compiled"):
        find_lr(uncompiled, X_LIN, Y_LIN)
    model = linear_model("sgd")
    with pytest.raises(ValueError, match="at least one sample"):
        find_lr(model, X_LIN[:0], Y_LIN[:0])
    with pytest.raises(ValueError, match="same number of samples"):
        find_lr(model, X_LIN, Y_LIN[:5])
    with pytest.raises(ValueError, match="empty"):
        find_lr(model, tf.data.Dataset.from_tensor_slices((X_LIN, Y_LIN)).batch(4).take(0))
    with pytest.raises(ValueError, match="empty"):  # unknown cardinality, empty
        empty = tf.data.Dataset.from_tensor_slices((X_LIN, Y_LIN)).filter(lambda x, y: False)
        find_lr(model, empty.batch(4))
    with pytest.raises(ValueError, match="`y` must be None"):
        find_lr(model, tf.data.Dataset.from_tensor_slices((X_LIN, Y_LIN)).batch(4), Y_LIN)


def test_multi_optimizer_is_refused():
    multi = getattr(keras.optimizers, "MultiOptimizer", None)
    if multi is None:
        pytest.skip("no MultiOptimizer in this Keras")
    from keras.src.optimizers.multi_optimizer import OptimizerMap

    model = linear_model(multi(OptimizerMap(default_optimizer=keras.optimizers.SGD())))
    with pytest.raises(TypeError, match="MultiOptimizer"):
        find_lr(model, X_LIN, Y_LIN)


# ---------------------------------------------------------------------- result I/O
def test_result_json_round_trip(tmp_path):
    model = classifier("adam")
    result = find_lr(model, X_CLS, Y_CLS, num_steps=40, start_lr=1e-5, end_lr=1.0)
    text = json.dumps(result.to_dict())
    back = LRFinderResult.from_dict(json.loads(text))
    for name in ("learning_rates", "losses", "smoothed_losses"):
        np.testing.assert_array_equal(getattr(back, name), getattr(result, name))
    assert back.stop_reason == result.stop_reason and back.num_steps == 40
    assert back.suggestions() == result.suggestions()
    assert json.loads(text)["suggestions"] == result.suggestions()
    path = tmp_path / "lr.png"
    ax = result.plot(path=path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("valley") for label in labels)
    with pytest.raises(ValueError, match="stop_reason"):
        LRFinderResult([1.0], [1.0], [1.0], stop_reason="bored")


def test_traced_loop_is_reused_and_retraced_after_compile():
    model = linear_model(keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(
        0.1, 10, 0.5)))
    args = dict(batch_size=16, start_lr=1e-3, end_lr=0.1, num_steps=10, shuffle=False)
    first = find_lr(model, X_LIN, Y_LIN, **args)
    loop = model.__dict__[loop_module._CACHE_ATTR]
    second = find_lr(model, X_LIN, Y_LIN, **args)
    assert model.__dict__[loop_module._CACHE_ATTR] is loop
    np.testing.assert_array_equal(first.losses, second.losses)
    # a recompile with another loss must not reuse the old trace
    model.compile(optimizer=model.optimizer, loss=lambda t, p: 2.0 * keras.ops.mean((t - p) ** 2))
    third = find_lr(model, X_LIN, Y_LIN, **args)
    assert model.__dict__[loop_module._CACHE_ATTR] is not loop
    np.testing.assert_allclose(third.losses[0], 2.0 * first.losses[0], rtol=1e-6)
    assert not any("lr_finder" in v.path for v in [*model.variables, *model.optimizer.variables])
