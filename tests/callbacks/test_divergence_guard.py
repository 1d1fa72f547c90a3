"""DivergenceGuard: restore the last good snapshot, lower the rate, record it, stop after N."""

import keras
import numpy as np
import pytest
from callback_helpers import Recorder, regression_data, tiny_model, values

from keras_lr.callbacks import DivergenceGuard, LRMonitor
from keras_lr.optimizers import LRWrapper


class Saboteur(keras.callbacks.Callback):
    """Poison the weights at the start of the given epochs (NaN, or x`factor`)."""

    def __init__(self, epochs, factor=None, batch=None):
        super().__init__()
        self.epochs, self.factor, self.batch = set(epochs), factor, batch
        self.good = {}  # epoch -> (weights, optimizer variables) just before the poisoning

    def _poison(self):
        for v in self.model.trainable_variables:
            value = keras.ops.convert_to_numpy(v)
            v.assign(value * np.nan if self.factor is None else value * self.factor)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if epoch in self.epochs:
            self.good[epoch] = (values(self.model.weights), values(self.model.optimizer.variables))
            if self.batch is None:
                self._poison()

    def on_train_batch_begin(self, batch, logs=None):
        if self.batch == batch and self.epoch in self.epochs:
            self._poison()


def _fit(optimizer, callbacks, epochs=4, **kwargs):
    model = tiny_model(optimizer, **kwargs)
    history = model.fit(*regression_data(), batch_size=16, epochs=epochs, verbose=0,
                        shuffle=False, callbacks=callbacks)
    return model, history


def test_nan_restores_snapshot_and_halves_float_rate():
    sab = Saboteur([2])
    guard = DivergenceGuard()
    spy = Recorder()
    model, history = _fit(keras.optimizers.SGD(0.05, momentum=0.9), [sab, guard, spy],
                          epochs=3)
    # Epoch 2 diverged: the state at its end is the snapshot taken at the end of epoch 1.
    weights, opt_vars = sab.good[2]
    for a, b in zip(values(model.weights), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    rate = model.optimizer._learning_rate
    restored = [v for v in model.optimizer.variables if v is not rate]
    expected = [o for v, o in zip(model.optimizer.variables, opt_vars, strict=True)
                if v is not rate]
    for a, b in zip(values(restored), expected, strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.025)
    assert history.history["divergence_recoveries"] == [0, 0, 1]
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.05, 0.025])
    assert [(e, s) for e, s, _, _ in guard.recoveries] == [(2, None)]
    assert np.isnan(guard.recoveries[0][2])


def test_spike_triggers_recovery_through_lr_scale_with_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 10, 0.9)
    opt = LRWrapper(keras.optimizers.Adam(schedule))
    guard = DivergenceGuard(spike_factor=3.0, lr_factor=0.25)
    model, history = _fit(opt, [Saboteur([2], factor=50.0), guard, LRMonitor()], epochs=4)
    assert float(opt.lr_scale) == pytest.approx(0.25)
    assert history.history["divergence_recoveries"] == [0, 0, 1, 1]
    assert np.isfinite(guard.recoveries[0][2])  # a spike, not a NaN
    assert history.history["lr_scale"] == [1.0, 1.0, 0.25, 0.25]
    assert all(np.isfinite(v).all() for v in values(model.weights))


def test_plain_optimizer_holding_a_schedule_is_refused():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 10, 0.9)
    with pytest.raises(TypeError, match="LRWrapper"):
        _fit(keras.optimizers.Adam(schedule), [DivergenceGuard()], epochs=1)


def test_stops_cleanly_after_max_recoveries():
    sab = Saboteur([1, 2, 3])
    guard = DivergenceGuard(max_recoveries=2)
    with pytest.warns(UserWarning, match="max_recoveries=2"):
        model, history = _fit(keras.optimizers.SGD(0.05), [sab, guard], epochs=6)
    assert len(history.history["loss"]) == 4 and guard.stopped
    assert history.history["divergence_recoveries"] == [0, 1, 2, 2]
    for a, b in zip(values(model.weights), sab.good[3][0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05 * 0.25)


def test_step_snapshots_with_steps_per_execution():
    sab = Saboteur([1], batch=2)
    guard = DivergenceGuard(snapshot_every=2)
    model, history = _fit(keras.optimizers.SGD(0.05), [sab, guard], epochs=2,
                          steps_per_execution=2)
    assert [(e, s) for e, s, _, _ in guard.recoveries] == [(1, 3)]
    assert all(np.isfinite(v).all() for v in values(model.weights))
    assert history.history["divergence_recoveries"] == [0, 1]


def test_first_snapshot_is_taken_after_backup_and_restore_resumes(tmp_path):
    backup = str(tmp_path / "backup")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        _fit(keras.optimizers.SGD(0.05), [keras.callbacks.BackupAndRestore(backup), Interrupt()])
    sab = Saboteur([2])
    model, history = _fit(keras.optimizers.SGD(0.05),
                          [DivergenceGuard(), keras.callbacks.BackupAndRestore(backup), sab],
                          epochs=3)
    # The resumed epoch 2 diverged: back to the checkpoint of epoch 1, not to the fresh weights.
    for a, b in zip(values(model.weights), sab.good[2][0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert history.history["divergence_recoveries"] == [1]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"lr_factor": 1.0}, "lr_factor"),
        ({"lr_factor": 0.0}, "lr_factor"),
        ({"spike_factor": 1.0}, "spike_factor"),
        ({"max_recoveries": -1}, "max_recoveries"),
        ({"snapshot_every": 0}, "snapshot_every"),
        ({"snapshot_every": "batch"}, "snapshot_every"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DivergenceGuard(**kwargs)


def _digits_run(peak, callbacks=()):
    """A tanh MLP on 600 digits, SGD with a warmup (Keras CosineDecay) to `peak`."""
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x, y = (digits.data[:600] / 16).astype("float32"), digits.target[:600]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="tanh"),
                              keras.layers.Dense(10)])
    schedule = keras.optimizers.schedules.CosineDecay(0.05, 150, warmup_target=peak,
                                                      warmup_steps=40)
    model.compile(optimizer=LRWrapper(keras.optimizers.SGD(schedule)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    history = model.fit(x, y, batch_size=32, epochs=10, verbose=0, callbacks=list(callbacks))
    return history.history, values(model.weights)


@pytest.mark.slow
def test_digits_with_a_too_high_peak_rate_recovers_to_a_tuned_runs_loss():
    tuned, _ = _digits_run(1.0)
    diverged, _ = _digits_run(3.0)
    guarded, weights = _digits_run(3.0, [DivergenceGuard(), LRMonitor()])
    assert diverged["loss"][-1] > 10 * tuned["loss"][-1]
    assert max(guarded["divergence_recoveries"]) >= 1
    assert guarded["lr_scale"][-1] < 1.0
    assert all(np.isfinite(w).all() for w in weights)
    assert guarded["loss"][-1] < 2 * tuned["loss"][-1] + 0.05
