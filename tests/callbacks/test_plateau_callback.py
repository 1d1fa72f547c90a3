"""ReduceLROnPlateau: Keras's logic (abs), PyTorch's (rel), schedules through lr_scale."""

import keras
import numpy as np
import pytest
from callback_helpers import Recorder, cosine, regression_data, tiny_model

from keras_lr.callbacks import LRMonitor, ReduceLROnPlateau
from keras_lr.optimizers import LRWrapper

# A metric that improves, stalls, improves a little (relatively less than 1%), stalls again.
METRIC = [1.0, 0.8, 0.8, 0.81, 0.79, 0.795, 0.7905, 0.79, 0.5, 0.5, 0.5, 0.5, 0.5, 0.4, 0.4]


def _drive(callback, metric, optimizer):
    """Feed `metric` epoch by epoch; return the float rate after each epoch."""
    model = tiny_model(optimizer)
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch, value in enumerate(metric):
        callback.on_epoch_end(epoch, {"val_loss": value})
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    return rates


def _torch_rates(metric, **kwargs):
    """PyTorch's ReduceLROnPlateau stepped on `metric` (eps=0): the rate after each epoch."""
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, eps=0.0, **kwargs)
    rates = []
    for value in metric:
        sched.step(value)
        rates.append(opt.param_groups[0]["lr"])
    return rates


CASES = [
    dict(factor=0.5, patience=1, min_delta=1e-2, cooldown=0, min_lr=0.0),
    dict(factor=0.5, patience=2, min_delta=1e-4, cooldown=1, min_lr=0.02),
    dict(factor=0.1, patience=0, min_delta=0.0, cooldown=2, min_lr=0.0),
]


@pytest.mark.parametrize("case", CASES)
def test_abs_mode_matches_keras(case):
    ours = _drive(ReduceLROnPlateau(**case), METRIC, keras.optimizers.SGD(0.1))
    theirs = _drive(keras.callbacks.ReduceLROnPlateau(**case), METRIC, keras.optimizers.SGD(0.1))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert min(ours) < 0.1  # the case does reduce


def test_a_nan_epoch_is_a_bad_epoch_never_the_best():
    """A NaN first value used to become `best` (Keras 3.15's own callback does that too), and
    nothing improves on NaN, so every later epoch counted as bad. PyTorch starts `best` at
    inf, where NaN is simply not an improvement: wait counts 1 at epoch 0, 0.9 at epoch 3
    improves, so the reductions come at epochs 5 and 8."""
    metric = [float("nan"), 1.0, 1.0, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5]
    case = dict(factor=0.5, patience=2, min_delta=1e-4, cooldown=0, min_lr=0.0)
    ours = _drive(ReduceLROnPlateau(**case), metric, keras.optimizers.SGD(0.1))
    np.testing.assert_allclose(ours, [0.1] * 5 + [0.05] * 3 + [0.025] * 2, rtol=1e-6)


TORCH_CASES = [
    dict(factor=0.5, patience=1, min_delta=1e-2, min_lr=0.0),
    dict(factor=0.5, patience=2, min_delta=1e-4, min_lr=0.02),
    dict(factor=0.1, patience=1, min_delta=0.0, min_lr=0.0),
    dict(factor=0.3, patience=3, min_delta=5e-3, min_lr=1e-3),
]


@pytest.mark.torch
@pytest.mark.parametrize("case", TORCH_CASES)
def test_rel_mode_matches_torch(case):
    """PyTorch reduces after `patience + 1` bad epochs, Keras after `patience`: shift by one.

    (Cooldown also counts differently, so the comparison uses cooldown=0.)
    """
    ours = _drive(ReduceLROnPlateau(threshold_mode="rel", **case), METRIC,
                  keras.optimizers.SGD(0.1))
    theirs = _torch_rates(METRIC, mode="min", factor=case["factor"],
                          patience=case["patience"] - 1, threshold=case["min_delta"],
                          threshold_mode="rel", cooldown=0, min_lr=case["min_lr"])
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert min(ours) < 0.1


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(4))
def test_rel_mode_with_cooldown_matches_torch(seed):
    """The porting rule with a cooldown: patience p -> p + 1, cooldown c -> c + 1 (c > 0)."""
    rng = np.random.default_rng(seed)
    metric = list(np.cumsum(rng.normal(-0.01, 0.05, 40)) + 2.0)
    p, c, threshold = int(rng.integers(0, 3)), int(rng.integers(1, 4)), 0.01
    ours = _drive(ReduceLROnPlateau(factor=0.5, patience=p + 1, min_delta=threshold,
                                    threshold_mode="rel", cooldown=c + 1, min_lr=1e-3),
                  metric, keras.optimizers.SGD(0.1))
    theirs = _torch_rates(metric, factor=0.5, patience=p, threshold=threshold,
                          threshold_mode="rel", cooldown=c, min_lr=1e-3)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert min(ours) < 0.1


def test_rel_and_abs_differ_on_small_relative_gains():
    case = dict(factor=0.5, patience=1, min_delta=1e-2)
    absolute = _drive(ReduceLROnPlateau(**case), [1.0, 0.995, 0.99, 0.985, 0.98],
                      keras.optimizers.SGD(0.1))
    relative = _drive(ReduceLROnPlateau(threshold_mode="rel", **case),
                      [100.0, 99.5, 99.0, 98.5, 98.0], keras.optimizers.SGD(0.1))
    assert absolute == relative  # same relative progress, same decisions
    assert absolute[-1] < 0.1


def test_cosine_schedule_is_scaled_and_monitored():
    opt = LRWrapper(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.1, 40)))
    plateau = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=1e3)
    spy = Recorder()
    tiny_model(opt).fit(*regression_data(), batch_size=16, epochs=3, verbose=0,
                        callbacks=[plateau, LRMonitor(), spy])
    # The first epoch sets `best`; each later epoch fails to improve by 1e3 and halves.
    scales = [1.0, 0.5, 0.25]
    expected = [s * cosine(0.1, 40, 4 * (e + 1)) for e, s in enumerate(scales)]
    np.testing.assert_allclose([e["learning_rate"] for e in spy.epochs], expected, rtol=1e-6)
    assert float(opt.lr_scale) == 0.25


def _states(callback, optimizer):
    """Drive a flat `loss` for 8 epochs; return (wait, cooldown) after each and the rates."""
    model = tiny_model(optimizer)
    callback.set_model(model)
    callback.on_train_begin()
    states = []
    for epoch in range(8):
        callback.on_epoch_end(epoch, {"loss": 1.0})
        states.append((callback.wait, callback.cooldown_counter))
    return states


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.optimizers.SGD(0.4),
        lambda: LRWrapper(keras.optimizers.SGD(0.4)),
        lambda: LRWrapper(keras.optimizers.SGD(
            keras.optimizers.schedules.ExponentialDecay(0.4, 1000, 0.9))),
    ],
    ids=["float", "scale", "schedule"],
)
def test_a_rate_at_min_lr_is_not_reduced_again(make, capsys):
    """float32(0.1) > 0.1: a rate read back at `min_lr` is at the floor (Keras compares in
    float32), so no second message and no cooldown restart once it is there."""
    case = dict(monitor="loss", factor=0.5, patience=1, min_lr=0.1, cooldown=2, mode="min")
    ours = ReduceLROnPlateau(verbose=1, **case)
    states = _states(ours, make())
    messages = capsys.readouterr().out.count("reducing learning rate")
    theirs = _states(keras.callbacks.ReduceLROnPlateau(**case), keras.optimizers.SGD(0.4))
    assert states == theirs
    assert messages == 2  # 0.4 -> 0.2 after epoch 2, 0.2 -> 0.1 after epoch 4, then nothing
    rate = float(ours.model.optimizer.learning_rate)
    scale = float(getattr(ours.model.optimizer, "lr_scale", 1.0))
    assert rate * scale == pytest.approx(0.1)


def test_changes_below_eps_are_no_reduction():
    """A factor so close to 1 that the change is below PyTorch's eps does nothing."""
    opt = LRWrapper(keras.optimizers.SGD(0.1))
    plateau = ReduceLROnPlateau(monitor="loss", factor=1 - 1e-9, patience=1, cooldown=3)
    plateau.set_model(tiny_model(opt))
    plateau.on_train_begin()
    for epoch in range(3):
        plateau.on_epoch_end(epoch, {"loss": 1.0})
    assert float(opt.lr_scale) == 1.0
    assert plateau.cooldown_counter == 0 and plateau.wait == 2


def test_plain_optimizer_with_schedule_raises_type_error():
    opt = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.1, 40))
    with pytest.raises(TypeError, match="keras_lr.optimizers.LRWrapper"):
        tiny_model(opt).fit(*regression_data(), epochs=1, verbose=0,
                            callbacks=[ReduceLROnPlateau(monitor="loss")])


def _scheduled():
    return LRWrapper(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.1, 40)))


def test_scale_survives_save_load(tmp_path):
    model = tiny_model(_scheduled())
    model.fit(*regression_data(), batch_size=16, epochs=2, verbose=0,
              callbacks=[ReduceLROnPlateau(monitor="loss", patience=0, min_delta=1e3)])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert float(loaded.optimizer.lr_scale) == pytest.approx(0.1)


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")


def test_scale_survives_backup_and_restore(tmp_path):
    backup = str(tmp_path / "backup")
    plateau = dict(monitor="loss", patience=0, min_delta=1e3, factor=0.5)
    with pytest.raises(RuntimeError, match="interrupted"):
        tiny_model(_scheduled()).fit(
            *regression_data(), batch_size=16, epochs=4, verbose=0,
            callbacks=[ReduceLROnPlateau(**plateau),
                       keras.callbacks.BackupAndRestore(backup), _Interrupt()])
    resumed = tiny_model(_scheduled())
    spy = Recorder()
    resumed.fit(*regression_data(), batch_size=16, epochs=4, verbose=0,
                callbacks=[keras.callbacks.BackupAndRestore(backup), LRMonitor(), spy])
    # Epochs 0-1 ran before the interruption (one reduction, after epoch 1); 2-3 resume.
    assert len(spy.epochs) == 2
    assert [e["lr_scale"] for e in spy.epochs] == [0.5, 0.5]
    np.testing.assert_allclose(spy.epochs[0]["learning_rate"], 0.5 * cosine(0.1, 40, 12),
                               rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"factor": 1.0}, "factor"),
        ({"factor": 0.0}, "factor"),
        ({"patience": -1}, "patience"),
        ({"min_delta": -1e-3}, "min_delta"),
        ({"cooldown": -2}, "cooldown"),
        ({"min_lr": -1.0}, "min_lr"),
        ({"threshold_mode": "relative"}, "threshold_mode"),
        ({"mode": "down"}, "mode"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReduceLROnPlateau(**kwargs)
