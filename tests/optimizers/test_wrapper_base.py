"""LRWrapper (keras_lr/optimizers/base.py): scale semantics, forwarding, save/load, refusals."""

import keras
import numpy as np
import pytest
from backend_utils import assert_same

from keras_lr.optimizers import (
    LRWrapper,
    base_optimizer,
    current_learning_rate,
    find_lr_scale,
    unwrap,
)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(48, 4)).astype("float32")
Y = RNG.normal(size=(48, 2)).astype("float32")


def model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="tanh", name="a"),
         keras.layers.Dense(2, name="b")],
        name="net",
    )


def fit(net, optimizer, epochs=2, jit=False):
    net.compile(optimizer=optimizer, loss="mse", jit_compile=jit)
    net.fit(X, Y, batch_size=16, epochs=epochs, verbose=0, shuffle=False)
    return net.get_weights()


def schedule(initial=0.02):
    return keras.optimizers.schedules.ExponentialDecay(initial, 2, 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("jit", [False, True])
def test_transparent_by_default(jit):
    expected = fit(model(), keras.optimizers.AdamW(schedule(), weight_decay=0.1), jit=jit)
    got = fit(model(), LRWrapper(keras.optimizers.AdamW(schedule(), weight_decay=0.1)), jit=jit)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_scale_equals_scaled_rate_including_weight_decay():
    expected = fit(model(), keras.optimizers.AdamW(0.01, weight_decay=0.2))
    opt = LRWrapper(keras.optimizers.AdamW(0.02, weight_decay=0.2))
    opt.lr_scale.assign(0.5)
    got = fit(model(), opt)
    plain = fit(model(), keras.optimizers.AdamW(0.02, weight_decay=0.2))
    for g, e, p in zip(got, expected, plain):
        np.testing.assert_array_equal(g, e)
        assert not np.allclose(g, p)


def test_scale_zero_freezes_everything():
    net = model()
    before = net.get_weights()
    opt = LRWrapper(keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.1))
    opt.lr_scale.assign(0.0)
    for b, a in zip(before, fit(net, opt, epochs=1)):
        np.testing.assert_array_equal(a, b)


def test_forwarding_and_helpers():
    inner = keras.optimizers.SGD(0.1, loss_scale_factor=4.0)
    opt = LRWrapper(inner)
    assert float(opt.learning_rate) == pytest.approx(0.1)
    opt.learning_rate = 0.05
    assert float(inner.learning_rate) == pytest.approx(0.05)
    assert opt.iterations is inner.iterations
    assert float(opt.scale_loss(2.0)) == 8.0
    assert list(unwrap(opt)) == [opt, inner]
    assert base_optimizer(opt) is inner
    assert find_lr_scale(opt) is opt.lr_scale
    assert find_lr_scale(inner) is opt.lr_scale  # the hook lives on the inner optimizer
    assert find_lr_scale(keras.optimizers.Adam()) is None
    fit(model(), opt, epochs=1)
    assert opt.lr_scale in opt.variables and inner.iterations in opt.variables
    assert int(opt.iterations) == 3
    opt.lr_scale.assign(0.5)
    assert current_learning_rate(opt) == pytest.approx(0.025)


def test_current_learning_rate_follows_schedule_and_scale():
    opt = LRWrapper(keras.optimizers.Adam(schedule(0.02)))
    fit(model(), opt, epochs=1)  # 3 steps: 0.02 * 0.5 ** (3 / 2)
    opt.lr_scale.assign(0.25)
    assert current_learning_rate(opt) == pytest.approx(0.02 * 0.5**1.5 * 0.25, rel=1e-6)
    with pytest.raises(TypeError):
        opt.learning_rate = 0.1  # Keras refuses to overwrite a schedule with a float


def test_nested_wrappers_share_one_scale_and_hook():
    inner = LRWrapper(keras.optimizers.Adam(0.01))
    outer = LRWrapper(inner)
    assert outer.lr_scale is inner.lr_scale and outer._hook is inner._hook
    lso = keras.optimizers.LossScaleOptimizer(outer)
    assert find_lr_scale(lso) is inner.lr_scale
    assert [type(o).__name__ for o in unwrap(lso)] == [
        "LossScaleOptimizer", "LRWrapper", "LRWrapper", "Adam"]
    expected = fit(model(), keras.optimizers.Adam(0.005))
    outer.lr_scale.assign(0.5)
    assert_same(fit(model(), lso), expected)


def test_provider_zero_skips_update_and_decay():
    net = model()
    opt = LRWrapper(keras.optimizers.AdamW(0.01, weight_decay=0.5))
    kernel = net.get_layer("a").kernel
    key = base_optimizer(opt)._var_key
    opt._hook.providers.append(lambda v: 0.0 if key(v) == key(kernel) else None)
    before = kernel.numpy()
    fit(net, opt, epochs=1)
    np.testing.assert_array_equal(kernel.numpy(), before)


@pytest.mark.slow
def test_save_load_restores_scale_and_resumes(tmp_path):
    def make():
        opt = LRWrapper(keras.optimizers.AdamW(schedule(), weight_decay=0.1))
        opt.lr_scale.assign(0.5)
        return opt

    expected = fit(model(), make(), epochs=2)
    net = model()
    fit(net, make(), epochs=1)
    path = str(tmp_path / "net.keras")
    net.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded.optimizer, LRWrapper)
    assert float(loaded.optimizer.lr_scale) == 0.5
    assert int(loaded.optimizer.iterations) == 3
    loaded.fit(X, Y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for g, e in zip(loaded.get_weights(), expected):
        np.testing.assert_array_equal(g, e)


def test_refusals():
    with pytest.raises(TypeError, match="must be a `keras.optimizers.Optimizer` instance"):
        LRWrapper(object())
    with pytest.raises(TypeError, match="LossScaleOptimizer outside"):
        LRWrapper(keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam()))
    with pytest.raises(ValueError, match=r"does not support `clipnorm`.*clipnorm=1.0"):
        LRWrapper(keras.optimizers.Adam(), clipnorm=1.0)
    with pytest.raises(TypeError, match="unexpected keyword argument `momentum`"):
        LRWrapper(keras.optimizers.Adam(), momentum=0.9)
    LRWrapper(keras.optimizers.Adam(), clipnorm=None)  # defaults are accepted
    reused = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="clipnorm"):
        LRWrapper(reused, clipnorm=1.0)
    LRWrapper(reused)  # a refused call leaves the optimizer unwrapped
    adam = keras.optimizers.Adam()
    LRWrapper(adam)
    with pytest.raises(ValueError, match="already wrapped by LRWrapper"):
        LRWrapper(adam)
    built = LRWrapper(keras.optimizers.SGD(0.1))
    fit(model(), built, epochs=1)
    with pytest.raises(ValueError, match="already built"):
        LRWrapper(built)


def _step_with_scaled_gradients(make, factor):
    """One `apply` of gradients scaled like `scale_loss` does; returns (update, optimizer)."""
    var = keras.Variable(np.zeros(2, "float32"))
    opt = make(keras.optimizers.SGD(1.0, loss_scale_factor=factor))
    true_grad = np.array([0.3, 0.4], "float32")
    scaled = keras.ops.convert_to_numpy(opt.scale_loss(keras.ops.convert_to_tensor(true_grad)))
    opt.apply([keras.ops.convert_to_tensor(scaled)], [var])
    return -keras.ops.convert_to_numpy(var), opt


def test_loss_scale_factor_is_unscaled_once_before_the_wrapper():
    from keras_lr.guards import GlobalNorm, GradientGuard

    for make in (LRWrapper, lambda o: GradientGuard(o, clip=GlobalNorm(1.0))):
        plain, _ = _step_with_scaled_gradients(make, None)
        scaled, opt = _step_with_scaled_gradients(make, 1024.0)
        np.testing.assert_allclose(plain, [0.3, 0.4], rtol=1e-6)
        np.testing.assert_allclose(scaled, plain, rtol=1e-6)
        assert opt.loss_scale_factor == 1024.0
        assert opt.inner_optimizer.loss_scale_factor is None
    # The guard saw the true gradient (norm 0.5) and did not clip.
    assert opt.stats()["grad_norm"] == pytest.approx(0.5, rel=1e-6)
    assert opt.stats()["clipped_steps"] == 0
    # The factor survives a config round trip.
    restored = LRWrapper.from_config(LRWrapper(keras.optimizers.SGD(
        1.0, loss_scale_factor=8.0)).get_config())
    assert restored.loss_scale_factor == 8.0
    assert restored.inner_optimizer.loss_scale_factor is None


def test_multi_optimizer_loss_scale_factor_with_wrapped_sub_optimizers():
    var = keras.Variable(np.zeros(2, "float32"))
    sub = LRWrapper(keras.optimizers.SGD(1.0))
    multi = keras.optimizers.MultiOptimizer(lambda v: sub, loss_scale_factor=1024.0)
    grad = multi.scale_loss(keras.ops.convert_to_tensor(np.array([0.3, 0.4], "float32")))
    multi.apply([grad], [var])
    np.testing.assert_allclose(-keras.ops.convert_to_numpy(var), [0.3, 0.4], rtol=1e-6)


def test_refuses_multi_optimizer():
    multi = keras.optimizers.MultiOptimizer(lambda v: keras.optimizers.SGD(0.1))
    with pytest.raises(TypeError, match=r"Argument `optimizer` must not be a .*MultiOptimizer"
                       r".*[Ww]rap each sub-optimizer.*Received: optimizer="):
        LRWrapper(multi)
