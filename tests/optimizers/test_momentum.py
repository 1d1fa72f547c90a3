"""`ScheduledMomentum`: the momentum PyTorch's schedulers set, the weights torch trains, on
every backend and with jit_compile on and off; saving, composition, refusals.

The torch oracle trains the same linear model on the same batches with ``torch.optim`` and a
``torch.optim.lr_scheduler`` scheduler stepped once per batch, recording the learning rate and
the momentum (``momentum`` or ``betas[0]``) the scheduler set before every step.
"""

import re
import warnings

import keras
import numpy as np
import pytest
from backend_utils import BACKEND, JIT_MODES

from keras_lr import schedules as S
from keras_lr.callbacks import LRMonitor
from keras_lr.optimizers import LRWrapper
from keras_lr.optimizers.momentum import ScheduledMomentum, current_momentum, momentum_attribute

STEPS, BATCH = 24, 4
RNG = np.random.default_rng(3)
X = RNG.normal(size=(STEPS * BATCH, 3)).astype("float32")
Y = (X @ RNG.normal(size=(3, 2)) + 0.1 * RNG.normal(size=(STEPS * BATCH, 2))).astype("float32")
W0 = RNG.normal(size=(3, 2)).astype("float32")
B0 = np.zeros(2, "float32")


def numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value))


def torch_train(optimizer, make_scheduler, steps=STEPS, **kwargs):
    """Final (kernel, bias), rates and momenta of torch training the linear model."""
    torch = pytest.importorskip("torch")
    w = torch.nn.Parameter(torch.tensor(W0))
    b = torch.nn.Parameter(torch.tensor(B0))
    opt = getattr(torch.optim, optimizer)([w, b], **kwargs)
    scheduler = make_scheduler(torch.optim.lr_scheduler, opt)
    rates, momenta = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(steps):
            x = torch.tensor(X[i * BATCH:(i + 1) * BATCH])
            y = torch.tensor(Y[i * BATCH:(i + 1) * BATCH])
            opt.zero_grad()
            loss = ((x @ w + b - y) ** 2).mean()
            loss.backward()
            group = opt.param_groups[0]
            rates.append(group["lr"])
            momenta.append(group["betas"][0] if "betas" in group else group["momentum"])
            opt.step()
            scheduler.step()
    return (w.detach().numpy(), b.detach().numpy()), np.array(rates), np.array(momenta)


class Momenta(keras.callbacks.Callback):
    """The momentum each step used (read through self.model, as JAX needs)."""

    def __init__(self):
        super().__init__()
        self.values = []

    def on_train_batch_end(self, batch, logs=None):
        self.values.append(current_momentum(self.model.optimizer))


def keras_train(optimizer, jit, steps=STEPS, callbacks=(), **compile_kwargs):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.set_weights([W0, B0])
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit, **compile_kwargs)
    model.fit(X[: steps * BATCH], Y[: steps * BATCH], batch_size=BATCH, epochs=1, verbose=0,
              shuffle=False, callbacks=list(callbacks))
    return model


def weights(model):
    return [numpy(v) for v in model.weights]


def one_cycle(sched, o):
    return sched.OneCycleLR(o, max_lr=0.05, total_steps=STEPS, pct_start=0.3)


def cyclic(base_lr, max_lr):
    def make(sched, o):
        return sched.CyclicLR(o, base_lr, max_lr, step_size_up=5, step_size_down=3,
                              mode="triangular2", cycle_momentum=True)
    return make


def gradients(w, b, i):
    """Gradients of the batch-mean squared error of step `i` (float64)."""
    x, y = X[i * BATCH:(i + 1) * BATCH], Y[i * BATCH:(i + 1) * BATCH]
    err = 2.0 * (x @ w + b - y) / y.size
    return x.T @ err, err.sum(0)


def adam_oracle(rates, betas, beta_2=0.999, eps=1e-12):
    """Adam (Kingma & Ba, Algorithm 1, as torch and Keras write it) in float64, with the
    given per-step rate and beta_1: ``m = b1 m + (1 - b1) g``, bias correction
    ``1 - b1_t ** t`` with the current beta_1 (torch's and Keras's rule)."""
    params = [W0.astype(np.float64), B0.astype(np.float64)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for i, (lr, b1) in enumerate(zip(rates, betas)):
        t = i + 1
        for k, g in enumerate(gradients(*params, i)):
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = beta_2 * v[k] + (1 - beta_2) * g * g
            step = lr / (1 - b1**t) * m[k] / (np.sqrt(v[k] / (1 - beta_2**t)) + eps)
            params[k] = params[k] - step
    return params


def check_adam(model, torch_weights, rates, betas):
    """Equal to torch and to the float64 oracle within Keras's own float32 Adam gap.

    On this problem, with a fixed beta_1 (no wrapper at all), Keras's float32 Adam already
    ends 3.3e-6 (4e-5 relative, on a weight of 0.03) from torch's after 24 steps, and torch
    is within 1e-7 of the float64 oracle (measured): hence atol 1e-5 for Keras, while cycling
    beta_1 or not moves the weights by more than 1e-3.
    """
    oracle = adam_oracle(rates, betas)
    for got, want, exact in zip(weights(model), torch_weights, oracle):
        np.testing.assert_allclose(want, exact, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got, want, atol=1e-5)
    fixed = adam_oracle(rates, np.full_like(betas, 0.9))  # what no momentum cycling gives
    assert np.max(np.abs(fixed[0] - oracle[0])) > 1e-3


# ---------------------------------------------------------------- against torch


@pytest.mark.torch
@pytest.mark.parametrize("jit", JIT_MODES)
@pytest.mark.parametrize("three_phase", [False, True])
def test_adam_one_cycle_beta_1_and_weights_equal_torch(jit, three_phase, clear_session):
    def make(sched, o):
        return sched.OneCycleLR(o, max_lr=0.05, total_steps=STEPS, pct_start=0.3,
                                three_phase=three_phase)

    expected, rates, betas = torch_train("Adam", make, lr=0.05, eps=1e-12)
    lr = S.OneCycle(0.05, STEPS, 0.3, three_phase=three_phase)
    optimizer = ScheduledMomentum(keras.optimizers.Adam(lr, epsilon=1e-12), lr.momentum_schedule())
    recorder = Momenta()
    model = keras_train(optimizer, jit, callbacks=[recorder])
    np.testing.assert_allclose(recorder.values, betas, rtol=1e-6)
    check_adam(model, expected, rates, betas)
    # the float the user gave stays in the wrapped optimizer's config
    assert optimizer.inner_optimizer.get_config()["beta_1"] == 0.9


@pytest.mark.torch
@pytest.mark.parametrize("jit", JIT_MODES)
def test_adamw_cyclic_beta_1_and_weights_equal_torch(jit, clear_session):
    expected, rates, betas = torch_train("AdamW", cyclic(0.001, 0.05), lr=0.001, eps=1e-12,
                                         weight_decay=0.0)
    lr = S.CyclicalLR(0.001, 0.05, 5, 3, mode="triangular2")
    optimizer = ScheduledMomentum(keras.optimizers.AdamW(lr, weight_decay=0.0, epsilon=1e-12),
                                  lr.momentum_schedule())
    recorder = Momenta()
    model = keras_train(optimizer, jit, callbacks=[recorder])
    np.testing.assert_allclose(recorder.values, betas, rtol=1e-6)
    check_adam(model, expected, rates, betas)


@pytest.mark.torch
@pytest.mark.parametrize("jit", JIT_MODES)
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_cycled_momentum_and_weights_equal_torch(jit, nesterov, clear_session):
    """CyclicLR with base_lr == max_lr: the rate is constant, the momentum still cycles.

    Keras's SGD keeps ``v = m * v - lr * g`` and torch's ``b = m * b + g; w -= lr * b``: the
    two agree exactly when the rate is constant (see the next test for a changing rate).
    """
    expected, rates, momenta = torch_train("SGD", cyclic(0.05, 0.05), lr=0.05, momentum=0.9,
                                           nesterov=nesterov)
    assert np.ptp(rates) == 0 and np.ptp(momenta) > 0.05
    lr = S.CyclicalLR(0.05, 0.05, 5, 3, mode="triangular2")
    optimizer = ScheduledMomentum(keras.optimizers.SGD(lr, momentum=0.9, nesterov=nesterov),
                                  lr.momentum_schedule())
    recorder = Momenta()
    model = keras_train(optimizer, jit, callbacks=[recorder])
    np.testing.assert_allclose(recorder.values, momenta, rtol=1e-6)
    for got, want in zip(weights(model), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    plain = keras_train(keras.optimizers.SGD(0.05, momentum=0.9, nesterov=nesterov), jit)
    assert not np.allclose(weights(plain)[0], expected[0], rtol=1e-4)


def keras_sgd_oracle(rates, momenta, nesterov=False, multipliers=(1.0, 1.0)):
    """Keras's SGD update, in NumPy float64, with the given per-step rate and momentum;
    `multipliers` scale the rate of the kernel and the bias (a per-variable rate)."""
    w, b = W0.astype(np.float64), B0.astype(np.float64)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    kw, kb = multipliers
    for i, (lr, m) in enumerate(zip(rates, momenta)):
        gw, gb = gradients(w, b, i)
        vw, vb = m * vw - kw * lr * gw, m * vb - kb * lr * gb
        if nesterov:
            w, b = w + m * vw - kw * lr * gw, b + m * vb - kb * lr * gb
        else:
            w, b = w + vw, b + vb
    return w, b


@pytest.mark.torch
@pytest.mark.parametrize("jit", JIT_MODES)
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_one_cycle_follows_torch_momenta(jit, nesterov, clear_session):
    """OneCycle moves rate and momentum together: Keras's SGD with torch's per-step values."""
    torch_weights, rates, momenta = torch_train("SGD", one_cycle, lr=0.05, momentum=0.9,
                                                nesterov=nesterov)
    lr = S.OneCycle(0.05, STEPS, 0.3)
    optimizer = ScheduledMomentum(keras.optimizers.SGD(lr, momentum=0.9, nesterov=nesterov),
                                  lr.momentum_schedule())
    recorder = Momenta()
    model = keras_train(optimizer, jit, callbacks=[recorder])
    np.testing.assert_allclose(recorder.values, momenta, rtol=1e-6)
    expected = keras_sgd_oracle(rates, momenta, nesterov)
    for got, want in zip(weights(model), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # torch's SGD keeps the rate outside its buffer: with a changing rate it trains otherwise
    assert not np.allclose(torch_weights[0], expected[0], rtol=1e-3)


# ---------------------------------------------------------------- behaviour on every backend


@pytest.mark.parametrize("jit", JIT_MODES)
def test_sgd_without_momentum_gets_a_velocity(jit, clear_session):
    lr = S.OneCycle(0.05, STEPS, 0.3)
    a = keras_train(ScheduledMomentum(keras.optimizers.SGD(lr), lr.momentum_schedule()), jit)
    b = keras_train(
        ScheduledMomentum(keras.optimizers.SGD(lr, momentum=0.5), lr.momentum_schedule()), jit
    )
    for x, y in zip(weights(a), weights(b)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    assert len(a.optimizer.inner_optimizer.momentums) == 2


@pytest.mark.parametrize("jit", JIT_MODES)
def test_a_constant_momentum_equals_the_plain_optimizer(jit, clear_session):
    for inner, plain in [
        (keras.optimizers.SGD(0.05, momentum=0.1), keras.optimizers.SGD(0.05, momentum=0.7)),
        (keras.optimizers.Adam(0.05), keras.optimizers.Adam(0.05, beta_1=0.7)),
        (keras.optimizers.RMSprop(0.01, momentum=0.2), keras.optimizers.RMSprop(0.01, momentum=0.7)),
    ]:
        got = keras_train(ScheduledMomentum(inner, 0.7), jit)
        want = keras_train(plain, jit)
        for x, y in zip(weights(got), weights(want)):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.backends("tensorflow", "jax", reason="Keras 3.15's torch trainer refuses "
                      "steps_per_execution > 1")
@pytest.mark.parametrize("jit", JIT_MODES)
def test_many_steps_per_execution(jit, clear_session):
    lr = S.OneCycle(0.05, STEPS, 0.3)

    def train(steps_per_execution):
        opt = ScheduledMomentum(keras.optimizers.SGD(lr, momentum=0.9), lr.momentum_schedule())
        return keras_train(opt, jit, steps_per_execution=steps_per_execution)

    one, eight = train(1), train(8)
    for x, y in zip(weights(one), weights(eight)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    assert float(numpy(eight.optimizer.momentum)) == pytest.approx(0.95)


@pytest.mark.parametrize("jit", JIT_MODES)
def test_save_and_load_resume_the_schedule(jit, tmp_path, clear_session):
    lr = S.OneCycle(0.05, STEPS, 0.3)

    def optimizer():
        return ScheduledMomentum(keras.optimizers.Adam(lr), lr.momentum_schedule(0.8, 0.9))

    whole = keras_train(optimizer(), jit)
    half = keras_train(optimizer(), jit, steps=STEPS // 2)
    path = tmp_path / "m.keras"
    half.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    restored = loaded.optimizer
    assert isinstance(restored, ScheduledMomentum)
    assert isinstance(restored.momentum_schedule, S.OneCycleMomentum)
    assert float(numpy(restored.momentum)) == pytest.approx(float(numpy(half.optimizer.momentum)))
    assert int(numpy(restored.iterations)) == STEPS // 2
    loaded.compile(optimizer=restored, loss="mse", jit_compile=jit)
    loaded.fit(X[STEPS // 2 * BATCH:], Y[STEPS // 2 * BATCH:], batch_size=BATCH, verbose=0,
               shuffle=False)
    for x, y in zip(weights(loaded), weights(whole)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_config_round_trip_and_attribute():
    lr = S.CyclicalLR(0.01, 0.1, 4)
    opt = ScheduledMomentum(keras.optimizers.SGD(lr, momentum=0.9), lr.momentum_schedule(),
                            name="cyc")
    config = keras.saving.serialize_keras_object(opt)
    again = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert isinstance(again, ScheduledMomentum) and again.name == "cyc"
    assert again.momentum_schedule.get_config() == opt.momentum_schedule.get_config()
    assert again.inner_optimizer.get_config() == opt.inner_optimizer.get_config()
    assert momentum_attribute(keras.optimizers.SGD()) == "momentum"
    assert momentum_attribute(LRWrapper(keras.optimizers.Lion())) == "beta_1"
    assert float(numpy(opt.momentum)) == pytest.approx(0.9)  # schedule(0) before any step
    assert current_momentum(keras.optimizers.SGD(momentum=0.9)) is None


@pytest.mark.parametrize("jit", JIT_MODES)
def test_lr_monitor_logs_the_momentum(jit, clear_session):
    lr = S.OneCycle(0.05, STEPS, 0.3)
    optimizer = ScheduledMomentum(keras.optimizers.SGD(lr, momentum=0.9), lr.momentum_schedule())
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit)
    history = model.fit(X, Y, batch_size=BATCH * 2, epochs=2, verbose=0, shuffle=False,
                        callbacks=[LRMonitor()])
    momenta = S.values(lr.momentum_schedule(), STEPS)
    # the momentum of each epoch's last step (12 steps per epoch)
    np.testing.assert_allclose(history.history["momentum"], momenta[[11, 23]], rtol=1e-6)


@pytest.mark.parametrize("order", ["momentum_outside", "momentum_inside"])
@pytest.mark.parametrize("jit", JIT_MODES)
def test_composes_with_lr_wrapper(order, jit, clear_session):
    lr = S.OneCycle(0.05, STEPS, 0.3)
    momentum = lr.momentum_schedule()
    if order == "momentum_outside":
        inner = LRWrapper(keras.optimizers.SGD(lr, momentum=0.9))
        optimizer, wrapper = ScheduledMomentum(inner, momentum), inner
    else:
        optimizer = LRWrapper(ScheduledMomentum(keras.optimizers.SGD(lr, momentum=0.9), momentum))
        wrapper = optimizer
    wrapper.lr_scale.assign(0.5)
    got = keras_train(optimizer, jit)
    half = S.OneCycle(0.025, STEPS, 0.3)
    want = keras_train(ScheduledMomentum(keras.optimizers.SGD(half, momentum=0.9), momentum), jit)
    for x, y in zip(weights(got), weights(want)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    assert current_momentum(got.optimizer) == pytest.approx(0.95)


@pytest.mark.parametrize("order", ["momentum_outside", "momentum_inside"])
@pytest.mark.parametrize("jit", JIT_MODES)
def test_composes_with_layerwise_multipliers(order, jit, clear_session):
    """Per-variable rates (the bias at 0.25x) under a cycled momentum: each variable follows
    Keras's SGD with its own rate and the shared momentum, in either nesting order."""
    from keras_lr.optimizers import LayerwiseLR

    lr = S.OneCycle(0.05, STEPS, 0.3)
    momentum = lr.momentum_schedule()
    rules = {"bias$": 0.25}
    if order == "momentum_outside":
        optimizer = ScheduledMomentum(LayerwiseLR(keras.optimizers.SGD(lr, momentum=0.9), rules),
                                      momentum)
    else:
        optimizer = LayerwiseLR(ScheduledMomentum(keras.optimizers.SGD(lr, momentum=0.9),
                                                  momentum), rules)
    recorder = Momenta()
    model = keras_train(optimizer, jit, callbacks=[recorder])
    rates = S.values(lr, STEPS).astype(np.float64)
    momenta = S.values(momentum, STEPS).astype(np.float64)
    np.testing.assert_allclose(recorder.values, momenta, rtol=1e-6)
    expected = keras_sgd_oracle(rates, momenta, multipliers=(1.0, 0.25))
    for got, want in zip(weights(model), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the multiplier matters: the bias of the unscaled run is elsewhere
    unscaled = keras_sgd_oracle(rates, momenta)
    assert np.max(np.abs(unscaled[1] - expected[1])) > 1e-3


@pytest.mark.parametrize("order", ["guard_outside", "guard_inside"])
@pytest.mark.parametrize("jit", JIT_MODES)
def test_composes_with_gradient_guard_skipping_a_nan_step(order, jit, clear_session):
    """A skipped step does not advance the step count: the schedules carry on from it."""
    from keras_lr.guards import GradientGuard

    lr = S.OneCycle(0.05, STEPS, 0.3)
    if order == "guard_outside":
        optimizer = GradientGuard(ScheduledMomentum(keras.optimizers.SGD(lr, momentum=0.9),
                                                    lr.momentum_schedule()))
    else:
        optimizer = ScheduledMomentum(GradientGuard(keras.optimizers.SGD(lr, momentum=0.9)),
                                      lr.momentum_schedule())
    bad = 5
    x, y = X.copy(), Y.copy()
    x[bad * BATCH] = np.nan
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.set_weights([W0, B0])
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    keep = np.r_[0:bad * BATCH, (bad + 1) * BATCH:STEPS * BATCH]
    reference = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    reference.set_weights([W0, B0])
    reference.compile(
        optimizer=ScheduledMomentum(keras.optimizers.SGD(lr, momentum=0.9),
                                    lr.momentum_schedule()),
        loss="mse", jit_compile=jit,
    )
    reference.fit(X[keep], Y[keep], batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    assert int(numpy(model.optimizer.iterations)) == STEPS - 1
    for a, b in zip(weights(model), weights(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert current_momentum(model.optimizer) == pytest.approx(
        float(S.values(lr.momentum_schedule(), [STEPS - 2])[0]), rel=1e-6
    )


@pytest.mark.parametrize("jit", JIT_MODES)
def test_under_a_loss_scale_optimizer(jit, clear_session):
    lr = S.OneCycle(0.05, STEPS, 0.3)

    def driven():
        return ScheduledMomentum(keras.optimizers.Adam(lr), lr.momentum_schedule())

    scaled = keras_train(keras.optimizers.LossScaleOptimizer(driven(), initial_scale=64.0), jit)
    plain = keras_train(driven(), jit)
    for a, b in zip(weights(scaled), weights(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert current_momentum(scaled.optimizer) == pytest.approx(0.95)


# ---------------------------------------------------------------- refusals


def _message(text):
    return "^" + re.escape(text)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: ScheduledMomentum(keras.optimizers.SGD(momentum=0.9), 1.0), ValueError,
         "Argument `momentum` must be in [0, 1). Received: momentum=1.0"),
        (lambda: ScheduledMomentum(keras.optimizers.SGD(momentum=0.9), -0.1), ValueError,
         "Argument `momentum` must be in [0, 1). Received: momentum=-0.1"),
        (lambda: ScheduledMomentum(keras.optimizers.Adam(), S.Constant(1.5)), ValueError,
         "Argument `momentum` must give momenta in [0, 1); at step 0 it gives 1.5. "
         "Received: momentum=Constant(learning_rate=1.5)"),
        (lambda: ScheduledMomentum(keras.optimizers.Adam(), "0.9"), TypeError,
         "Argument `momentum` must be a float in [0, 1) or a "
         "`keras.optimizers.schedules.LearningRateSchedule`. Received: momentum='0.9'"),
        (lambda: ScheduledMomentum(keras.optimizers.Adagrad(), 0.9), TypeError,
         "Argument `optimizer` must have a momentum to drive: a float `momentum` (SGD, "
         "RMSprop) or `beta_1` (Adam, AdamW, Nadam, Adamax, Lamb, Lion); Adagrad has neither"),
        (lambda: ScheduledMomentum(LRWrapper(keras.optimizers.Adadelta()), 0.9), TypeError,
         "Argument `optimizer` must have a momentum to drive"),
        (lambda: ScheduledMomentum("sgd", 0.9), TypeError,
         "Argument `optimizer` must be a `keras.optimizers.Optimizer` instance. "
         "Received: optimizer='sgd'"),
        (lambda: ScheduledMomentum(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()),
                                   0.9), TypeError,
         "ScheduledMomentum cannot wrap a `LossScaleOptimizer`; put the LossScaleOptimizer "
         "outside instead"),
    ],
)
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=_message(message)):
        make()


def test_refuses_a_built_or_already_driven_optimizer():
    sgd = keras.optimizers.SGD(momentum=0.9)
    ScheduledMomentum(sgd, 0.8)
    with pytest.raises(ValueError, match="already has its momentum driven"):
        ScheduledMomentum(sgd, 0.8)
    built = keras.optimizers.Adam()
    built.build([keras.Variable(np.zeros(2, "float32"))])
    with pytest.raises(ValueError, match="must not be built yet"):
        ScheduledMomentum(built, 0.8)
    assert BACKEND in ("tensorflow", "jax", "torch")
