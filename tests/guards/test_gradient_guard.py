"""GradientGuard: non-finite steps are skipped exactly, clipping is applied, state is saved."""

import keras
import numpy as np
import pytest
from backend_utils import BACKEND, FIT_JIT, JIT_MODES, compiled_apply

from keras_lr import guards
from keras_lr.callbacks import LRMonitor
from keras_lr.optimizers import LRWrapper

# ---------------------------------------------------------------------------- helpers


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype("float32")
    y = (x @ rng.standard_normal((6, 1)) + 0.1).astype("float32")
    return x, y


def _model(seed=1):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="tanh", name="hidden"),
         keras.layers.Dense(1, name="out")]
    )


def _values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def _grads(model, seed, nan=False):
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(tuple(v.shape)).astype("float32")
             for v in model.trainable_variables]
    if nan:
        grads[1][0] = np.nan
        grads[2][0, 0] = np.inf
    return grads


def _inner_state(opt):
    """Everything but the guard's own counters."""
    counters = {id(v) for v in (opt.skipped_steps, opt.consecutive_skips, opt.grad_norm)}
    return [v for v in opt.variables if id(v) not in counters]


# ---------------------------------------------------------------------------- skipping


# Stateful (AutoClip: clipped inside the finite branch) and stateless rules (computed with
# the norm, before the finiteness test), and no rule.
RULES = {"autoclip": lambda: guards.AutoClip(50, 10), "agc": lambda: guards.AdaptiveClip(0.05),
         "global_norm": lambda: guards.GlobalNorm(1.0), "none": lambda: None}


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("jit", JIT_MODES)
def test_nonfinite_step_leaves_everything_bit_identical(jit, rule):
    model = _model()
    opt = guards.GradientGuard(keras.optimizers.Adam(1e-2, weight_decay=1e-2),
                               clip=RULES[rule]())
    step = compiled_apply(opt, model.trainable_variables, jit)

    for i in range(3):
        step(_grads(model, i))
    watched = model.weights + _inner_state(opt)
    before = _values(watched)
    step(_grads(model, 99, nan=True))
    after = _values(watched)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(opt.iterations) == 3
    assert opt.stats()["skipped_steps"] == 1 and opt.stats()["consecutive_skips"] == 1
    assert not np.isfinite(opt.stats()["grad_norm"])
    # Training goes on, and the next finite step resets the run of skips.
    step(_grads(model, 4))
    assert int(opt.iterations) == 4 and opt.stats()["consecutive_skips"] == 0
    assert all(np.isfinite(v).all() for v in _values(model.weights))


@pytest.mark.parametrize("jit", JIT_MODES)
def test_huge_finite_gradients_are_applied_not_skipped(jit):
    # Their squares overflow float32, so the global norm is inf: the guard must then test the
    # elements themselves, apply this finite step, and still skip a truly non-finite one.
    model = _model()
    opt = guards.GradientGuard(keras.optimizers.SGD(1e-22))  # a step of 1e-22 * 1e20 = 0.01
    step = compiled_apply(opt, model.trainable_variables, jit)

    huge = [np.full(tuple(v.shape), 1e20, "float32") for v in model.trainable_variables]
    before = _values(model.weights)
    step(huge)
    assert int(opt.iterations) == 1 and opt.stats()["skipped_steps"] == 0
    assert opt.stats()["grad_norm"] == np.inf
    for a, b in zip(before, _values(model.weights), strict=True):
        np.testing.assert_allclose(b, a - 0.01, rtol=1e-5, atol=1e-6)
    huge[0][0, 0] = np.inf
    step(huge)
    assert int(opt.iterations) == 1 and opt.stats()["skipped_steps"] == 1


def test_guard_without_clip_is_transparent_on_finite_steps():
    results = []
    for wrap in (False, True):
        model = _model()
        inner = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-2, 20))
        opt = guards.GradientGuard(inner) if wrap else inner
        model.compile(optimizer=opt, loss="mse", jit_compile=FIT_JIT)
        model.fit(*_data(), batch_size=16, epochs=2, verbose=0, shuffle=False)
        results.append(_values(model.weights))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


class _Snapshots(keras.callbacks.Callback):
    def __init__(self, batch):
        super().__init__()
        self.batch, self.before, self.after = batch, None, None

    def _state(self):
        return _values(self.model.weights + _inner_state(self.model.optimizer))

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.batch and self.before is None:
            self.before = self._state()

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch and self.after is None:
            self.after = self._state()


def test_nan_batch_in_fit_is_skipped_and_training_goes_on():
    x, y = _data()
    x[20, 3] = np.nan  # batch 1 of 4 (batch_size 16) has NaN gradients
    model = _model()
    opt = guards.GradientGuard(keras.optimizers.Adam(1e-2), clip=guards.GlobalNorm(1.0))
    model.compile(optimizer=opt, loss="mse")
    spy = _Snapshots(batch=1)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, callbacks=[spy])
    for a, b in zip(spy.before, spy.after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert opt.stats()["skipped_steps"] == 2  # once per epoch
    assert int(opt.iterations) == 6
    assert all(np.isfinite(v).all() for v in _values(model.weights))


def test_without_skipping_the_nan_reaches_the_weights():
    x, y = _data()
    x[20, 3] = np.nan
    model = _model()
    model.compile(optimizer=guards.GradientGuard(keras.optimizers.Adam(1e-2),
                                                 skip_nonfinite=False), loss="mse")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert not all(np.isfinite(v).all() for v in _values(model.weights))


def _all_nan_data():
    x, y = _data(32)
    x[:, 0] = np.nan
    return x, y


@pytest.mark.backends("tensorflow", "torch", reason="a jitted JAX step cannot raise; the "
                       "host check of the next test covers JAX")
def test_consecutive_skips_raise_from_the_step_without_xla():
    model = _model()
    opt = guards.GradientGuard(keras.optimizers.Adam(), max_consecutive_skips=3)
    model.compile(optimizer=opt, loss="mse", jit_compile=False)
    before = _values(model.weights)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        error = tf.errors.InvalidArgumentError  # an assert op in the graph
    else:
        error = guards.NonFiniteGradientsError  # torch runs eagerly: raised by the step
    with pytest.raises(error, match="GradientGuard skipped"):
        model.fit(*_all_nan_data(), batch_size=4, epochs=1, verbose=0)
    assert opt.stats()["consecutive_skips"] == 3  # raised at the step that reached the limit
    for a, b in zip(before, _values(model.weights), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.backends("tensorflow", "jax", reason="torch raises from the step (test above)")
def test_consecutive_skips_under_xla_raise_on_the_host():
    model = _model()
    opt = guards.GradientGuard(keras.optimizers.Adam(), max_consecutive_skips=3)
    model.compile(optimizer=opt, loss="mse", jit_compile=True)
    with pytest.raises(guards.NonFiniteGradientsError, match="max_consecutive_skips=3"):
        model.fit(*_all_nan_data(), batch_size=4, epochs=2, verbose=0,
                  callbacks=[LRMonitor()])
    assert opt.stats()["skipped_steps"] == 8  # the asserts were compiled away: one epoch
    with pytest.raises(guards.NonFiniteGradientsError):
        opt.check()


# ---------------------------------------------------------------------------- clipping


def test_clipping_is_applied_before_the_inner_update():
    model = _model()
    opt = guards.GradientGuard(keras.optimizers.SGD(0.1), clip=guards.GlobalNorm(0.5))
    grads = _grads(model, 0)
    before = _values(model.trainable_variables)
    opt.apply(grads, model.trainable_variables)
    norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads))
    for w0, w1, g in zip(before, _values(model.trainable_variables), grads, strict=True):
        np.testing.assert_allclose(w1, w0 - 0.1 * g * 0.5 / norm, rtol=1e-5, atol=1e-7)
    stats = opt.stats()
    assert stats["clipped_steps"] == 1 and stats["grad_norm"] == pytest.approx(norm, rel=1e-5)


# ---------------------------------------------------------------------------- saving


def test_save_load_restores_counters_and_rule_state(tmp_path):
    x, y = _data()
    x[5, 0] = np.nan
    model = _model()
    opt = guards.GradientGuard(keras.optimizers.Adam(1e-2), clip=guards.AutoClip(30, 8),
                               max_consecutive_skips=5)
    model.compile(optimizer=opt, loss="mse")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    path = tmp_path / "guard.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    lopt = loaded.optimizer
    assert isinstance(lopt, guards.GradientGuard) and lopt.clip == opt.clip
    assert lopt.max_consecutive_skips == 5
    assert lopt.stats() == opt.stats()
    np.testing.assert_array_equal(_values([lopt.clip.norms]), _values([opt.clip.norms]))
    x2, y2 = _data(seed=3)
    model.fit(x2, y2, batch_size=16, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x2, y2, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(_values(model.weights), _values(loaded.weights), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------- nesting


def _train_nested(order):
    from keras_lr.optimizers import LayerwiseLR

    model = _model()
    adam = keras.optimizers.Adam(1e-2)
    rules = {"hidden/": 0.25}
    clip = guards.AdaptiveClip(0.05)
    if order == "guard_outside":
        opt = guards.GradientGuard(LayerwiseLR(adam, rules), clip=clip)
    else:
        opt = LayerwiseLR(guards.GradientGuard(adam, clip=clip), rules)
    x, y = _data()
    x[30, 1] = np.nan
    model.compile(optimizer=opt, loss="mse", jit_compile=FIT_JIT)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    guard = guards.find_guard(opt)
    return _values(model.weights), guard.stats()


def test_nesting_with_layerwise_in_either_order_gives_the_same_result():
    pytest.importorskip("keras_lr.optimizers.layerwise")
    a, stats_a = _train_nested("guard_outside")
    b, stats_b = _train_nested("guard_inside")
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert stats_a == stats_b and stats_a["skipped_steps"] == 2


def test_inside_loss_scale_optimizer(tmp_path):
    model = _model()
    guard = guards.GradientGuard(keras.optimizers.Adam(1e-2), clip=guards.GlobalNorm(1.0))
    opt = keras.optimizers.LossScaleOptimizer(guard)
    model.compile(optimizer=opt, loss="mse", jit_compile=FIT_JIT)
    model.fit(*_data(), batch_size=16, epochs=2, verbose=0)
    assert int(opt.iterations) == 8 and guard.stats()["clipped_steps"] > 0
    assert guards.find_guard(opt) is guard
    path = tmp_path / "lso.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert guards.find_guard(loaded.optimizer).stats() == guard.stats()


# ---------------------------------------------------------------------------- arguments


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_consecutive_skips"):
        guards.GradientGuard(keras.optimizers.Adam(), max_consecutive_skips=0)
    with pytest.raises(ValueError, match="skip_nonfinite=True"):
        guards.GradientGuard(keras.optimizers.Adam(), skip_nonfinite=False,
                             max_consecutive_skips=3)
    with pytest.raises(TypeError, match="skip_nonfinite"):
        guards.GradientGuard(keras.optimizers.Adam(), skip_nonfinite="yes")
    with pytest.raises(ValueError, match="clip"):
        guards.GradientGuard(keras.optimizers.Adam(), clip="nonsense")
    with pytest.raises(ValueError, match="clipnorm"):
        guards.GradientGuard(keras.optimizers.Adam(), clipnorm=1.0)
    # A failed construction leaves the optimizer free to be wrapped again.
    inner = keras.optimizers.Adam()
    with pytest.raises(ValueError):
        guards.GradientGuard(inner, clip="nonsense")
    assert isinstance(LRWrapper(inner), LRWrapper)
    # ... but an optimizer that is already wrapped is refused.
    with pytest.raises(ValueError, match="already wrapped"):
        guards.GradientGuard(inner)


@pytest.mark.backends("tensorflow", reason="only TensorFlow gives Embedding sparse gradients")
@pytest.mark.parametrize("rule", [guards.GlobalNorm(1.0), guards.ValueClip(0.5),
                                  guards.AdaptiveClip(0.5), None])
def test_sparse_embedding_gradients_are_clipped_as_dense_ones(rule):
    """An index repeated in a batch: its rows add up before clipping (torch sees the sum).
    Before, the rules saw the four 0.3 rows one by one (GlobalNorm recorded 1.04, not 2.08)."""
    def run(gradient):
        table = keras.Variable(np.ones((5, 3), "float32"))
        opt = guards.GradientGuard(keras.optimizers.SGD(1.0), clip=rule)
        opt.build([table])
        opt.apply([gradient], [table])
        return table.numpy(), float(opt.grad_norm.numpy())

    import tensorflow as tf

    sparse = tf.IndexedSlices(tf.fill((4, 3), 0.3), tf.constant([1, 1, 1, 1]),
                              tf.constant([5, 3]))
    weights, norm = run(sparse)
    expected, expected_norm = run(tf.convert_to_tensor(sparse))
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert norm == pytest.approx(expected_norm) and norm == pytest.approx(np.sqrt(3) * 1.2)
