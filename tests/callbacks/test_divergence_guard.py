"""DivergenceGuard: restore the verified snapshot, lower the rate, bring it back, stop after N.

Runs on every backend (torch skips steps_per_execution > 1, which Keras 3.15 refuses there).
"""

import warnings

import keras
import numpy as np
import pytest
from callback_helpers import Recorder, regression_data, tiny_model, values

from keras_lr.callbacks import DivergenceGuard, LRMonitor
from keras_lr.guards import GradientGuard
from keras_lr.optimizers import LRWrapper

NO_TORCH_SPE = pytest.mark.backends(
    "tensorflow", "jax", reason="Keras 3.15's torch trainer refuses steps_per_execution > 1")
EPOCH = {"snapshot_every": "epoch"}


def _state(model):
    """Weights and optimizer variables except the rate and the step counts, as NumPy."""
    opt = model.optimizer
    skip = {id(opt._learning_rate), id(opt.iterations)}
    return values(model.weights) + values([v for v in opt.variables if id(v) not in skip])


class Saboteur(keras.callbacks.Callback):
    """Poison the weights at the start of the given epochs (NaN, or x`factor`)."""

    def __init__(self, epochs, factor=None, batch=None):
        super().__init__()
        self.epochs, self.factor, self.batch = set(epochs), factor, batch
        self.good = {}  # epoch -> the state (`_state`) at the start of that epoch

    def _poison(self):
        for v in self.model.trainable_variables:
            value = keras.ops.convert_to_numpy(v)
            v.assign(value * np.nan if self.factor is None else value * self.factor)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.good[epoch] = _state(self.model)
        if epoch in self.epochs:
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


def test_nan_restores_the_verified_snapshot_and_halves_float_rate():
    """Epoch checks: the state at the end of epoch 1 is only a candidate (epoch 2 measures
    it, and diverged): the rollback goes to the end of epoch 0, verified by epoch 1."""
    sab = Saboteur([2])
    guard = DivergenceGuard(lr_factor=0.5, **EPOCH)
    model, history = _fit(keras.optimizers.SGD(0.05, momentum=0.9), [sab, guard, Recorder()],
                          epochs=3)
    for a, b in zip(_state(model), sab.good[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations) == 3 * 4  # keep_step: the count moves on
    assert float(model.optimizer.learning_rate) == pytest.approx(0.025)
    assert history.history["divergence_recoveries"] == [0, 0, 1]
    assert history.history["divergence_steps_skipped"] == [0, 0, 8]
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.05, 0.025])
    [recovery] = guard.recoveries
    assert (recovery.epoch, recovery.step, recovery.steps_skipped) == (2, None, 8)
    assert np.isnan(recovery.value) and recovery.learning_rate == pytest.approx(0.025)


def test_keep_step_false_restores_the_step_count():
    sab = Saboteur([2])
    model, _ = _fit(keras.optimizers.SGD(0.05), [sab, DivergenceGuard(keep_step=False, **EPOCH)],
                    epochs=3)
    assert int(model.optimizer.iterations) == 4


def test_spike_triggers_recovery_through_lr_scale_with_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 10, 0.9)
    opt = LRWrapper(keras.optimizers.Adam(schedule))
    guard = DivergenceGuard(spike_factor=3.0, lr_factor=0.25, restore_after=None, **EPOCH)
    model, history = _fit(opt, [Saboteur([2], factor=50.0), guard, LRMonitor()], epochs=4)
    assert float(opt.lr_scale) == pytest.approx(0.25)
    assert history.history["divergence_recoveries"] == [0, 0, 1, 1]
    assert np.isfinite(guard.recoveries[0].value)  # a spike, not a NaN
    assert history.history["lr_scale"] == [1.0, 1.0, 0.25, 0.25]
    assert all(np.isfinite(v).all() for v in values(model.weights))


def test_plain_optimizer_holding_a_schedule_is_refused():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 10, 0.9)
    with pytest.raises(TypeError, match="LRWrapper"):
        _fit(keras.optimizers.Adam(schedule), [DivergenceGuard()], epochs=1)


def test_stops_cleanly_after_max_recoveries():
    sab = Saboteur([1, 2, 3])
    guard = DivergenceGuard(max_recoveries=2, lr_factor=0.5, **EPOCH)
    with pytest.warns(UserWarning, match="max_recoveries=2"):
        model, history = _fit(keras.optimizers.SGD(0.05), [sab, guard], epochs=6)
    assert len(history.history["loss"]) == 4 and guard.stopped
    assert history.history["divergence_recoveries"] == [0, 1, 2, 2]
    # The end of epoch 0 was never verified (epoch 1 diverged): every rollback goes back to
    # the start of training.
    for a, b in zip(_state(model), sab.good[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05 * 0.25)


@pytest.mark.parametrize("steps_per_execution", [
    1, pytest.param(2, marks=NO_TORCH_SPE)])
def test_step_checks_roll_back_mid_epoch(steps_per_execution):
    """4 steps an epoch, checks every 2; NaN from batch 2 of epoch 1: the check after its
    batch 3 (at the epoch's end) diverges. The state after 4 steps (the end of epoch 0) was
    verified by batches 0-1 of epoch 1; the one after 6 steps (a candidate) is discarded: 4
    steps skipped. (The guard checks at a batch's begin: it goes before the saboteur, which
    poisons there.)"""
    sab = Saboteur([1], batch=2)
    guard = DivergenceGuard(snapshot_every=2)
    model, history = _fit(keras.optimizers.SGD(0.05), [guard, sab], epochs=2,
                          steps_per_execution=steps_per_execution)
    assert [(r.epoch, r.step, r.steps_skipped) for r in guard.recoveries] == [(1, 3, 4)]
    assert all(np.isfinite(v).all() for v in values(model.weights))
    assert history.history["divergence_recoveries"] == [0, 1]
    assert history.history["divergence_steps_skipped"] == [0, 4]


class StateAfter(keras.callbacks.Callback):
    """Records `_state` at every batch begin (put it after the guard: on JAX its read of
    `self.model` syncs after the guard's check, so the guard still sees an unsynced state)."""

    def __init__(self):
        super().__init__()
        self.states = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.states[self.epoch, batch] = _state(self.model)


def _count_syncs(model, guard):
    """The batches at which the guard synced the JAX trainer's state (the state was not synced
    when it called `model.jax_state_sync`; Keras's own syncs at epoch ends are not counted)."""
    synced, inside = [], []
    sync, batch_begin = model.jax_state_sync, guard.on_train_batch_begin

    def counting_sync():
        if inside and not model._jax_state_synced:
            synced.append(inside[-1])
        sync()

    def counting_batch_begin(batch, logs=None):
        inside.append(batch)
        try:
            batch_begin(batch, logs)
        finally:
            inside.pop()

    model.jax_state_sync = counting_sync
    guard.on_train_batch_begin = counting_batch_begin
    return synced


def test_step_checks_leave_keras_batch_ends_asynchronous():
    """No batch-end hook: with the guard alone Keras dispatches batch ends asynchronously on
    the backends that allow it (JAX, torch), as with no callback at all."""
    from keras.src.callbacks.callback_list import CallbackList
    from keras.src.utils.python_utils import is_default

    assert is_default(DivergenceGuard().on_train_batch_end)
    assert not is_default(DivergenceGuard().on_train_batch_begin)
    plain = CallbackList([])._async_train
    assert CallbackList([DivergenceGuard()])._async_train == plain
    assert CallbackList([DivergenceGuard(), Recorder()])._async_train is False


def _classifier(metrics):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=metrics)
    x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
    return model, x, np.arange(64) % 3


@pytest.mark.parametrize("metrics", [None, ["accuracy"]], ids=["loss-only", "compiled"])
def test_step_checks_without_a_mean_metric_of_that_name_raise_with_the_model_untouched(
        metrics):
    """Before training; on TensorFlow with compiled metrics (built in the first step's
    trace) after the first step, with the weights and the momentum put back."""
    model, x, y = _classifier(metrics)
    model.optimizer.build(model.trainable_variables)
    before = _state(model)
    with pytest.raises(ValueError, match=r"no such metric.*snapshot_every=\"epoch\""):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0,
                  callbacks=[DivergenceGuard(monitor="val_loss")])
    for a, b in zip(_state(model), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_step_checks_watch_a_compiled_metric():
    """A compiled metric as `monitor` (on TensorFlow found after the first step, when Keras
    has built it): the checks read its running sums (the best is set after 20 steps), and no
    warning says they differ from the logs."""
    name = "sparse_categorical_crossentropy"
    model, x, y = _classifier(["accuracy", name])
    guard = DivergenceGuard(monitor=name, snapshot_every=2)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="DivergenceGuard")
        history = model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[guard])
    assert guard._metric.name == name and guard.recoveries == []
    assert 0 < guard.best < history.history[name][0]


def test_a_mid_epoch_stop_after_max_recoveries_ends_on_the_verified_state():
    """max_recoveries=0, 8 steps an epoch, NaN from batch 2 of epoch 1: the check at the
    begin of batch 4 restores the state verified at the end of epoch 0 and stops; Keras still
    runs batch 4, so the epoch's end restores that state once more."""
    sab = Saboteur([1], batch=2)
    guard = DivergenceGuard(snapshot_every=2, max_recoveries=0)
    model = tiny_model(keras.optimizers.SGD(0.05))
    with pytest.warns(UserWarning, match="max_recoveries=0"):
        model.fit(*regression_data(), batch_size=8, epochs=3, verbose=0, shuffle=False,
                  callbacks=[guard, sab])
    assert guard.stopped
    for a, b in zip(_state(model), sab.good[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_mid_epoch_rollback_restores_the_state_of_the_verified_check_exactly():
    """8 steps an epoch, checks every 2 (at the begin of batches 2, 4, 6 and at the epoch's
    end), momentum, NaN from batch 2 of epoch 1: the check at the begin of batch 4 diverges
    (after step 3) and returns to the state verified by batches 0-1, the end of epoch 0:
    the state batch 4 starts from is the one batch 0 of epoch 1 started from, bit for bit.
    On JAX the checks read the trainer's state without syncing it; the recovery syncs once."""
    sab, guard, after = Saboteur([1], batch=2), DivergenceGuard(snapshot_every=2), StateAfter()
    model = tiny_model(keras.optimizers.SGD(0.05, momentum=0.9))
    synced = _count_syncs(model, guard) if keras.backend.backend() == "jax" else None
    model.fit(*regression_data(), batch_size=8, epochs=2, verbose=0, shuffle=False,
              callbacks=[guard, sab, after])
    assert [(r.epoch, r.step, r.steps_skipped) for r in guard.recoveries] == [(1, 3, 4)]
    for a, b in zip(after.states[1, 4], after.states[1, 0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(after.states[1, 0][0], after.states[0, 1][0])  # it trained
    if synced is not None:
        assert synced == [4]


@pytest.mark.backends("jax", reason="the JAX trainer's state sync")
@pytest.mark.parametrize("snapshot_every", [1, 10])
def test_step_checks_on_jax_read_the_trainers_state_without_syncing_it(snapshot_every):
    """Healthy training (rate 0: a constant loss), a `GradientGuard` with a skip limit (its
    counter is read at each check): no check syncs the state back to the variables, and the
    checks did run (the best is set; the metric's running sums were found)."""
    guard = DivergenceGuard(snapshot_every=snapshot_every)
    targets = np.ones((8 * 40, 1), "float32")
    model = keras.Sequential([keras.Input((1,)),
                              keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer=GradientGuard(keras.optimizers.SGD(0.0, momentum=0.9),
                                          max_consecutive_skips=3), loss="mse")
    synced = _count_syncs(model, guard)
    model.fit(np.ones_like(targets), targets, batch_size=8, epochs=2, shuffle=False, verbose=0,
              callbacks=[guard])
    assert synced == []
    assert guard.recoveries == [] and guard.best == pytest.approx(1.0)
    assert guard._metric is not None and guard._candidate is not None


def _drive(guard, losses, optimizer=None, steps=10):
    """Epoch checks fed with `losses`; before the check of epoch k the hidden bias is set to
    k + 1, so a rollback's target can be read off the weights (0: the initial state)."""
    model = tiny_model(optimizer or keras.optimizers.SGD(0.05))
    guard.set_model(model)
    guard.set_params({"steps": steps, "epochs": len(losses)})
    guard.on_train_begin()
    bias = model.get_layer("hidden").bias
    rates = []
    for epoch, loss in enumerate(losses):
        guard.on_epoch_begin(epoch)
        bias.assign(np.full(bias.shape, epoch + 1, "float32"))
        logs = {"loss": loss}
        guard.on_epoch_end(epoch, logs)
        rates.append(logs["learning_rate"])
    return model, float(keras.ops.convert_to_numpy(bias)[0]), rates


def test_a_window_not_near_the_best_does_not_verify_the_snapshot_before_it():
    """The epoch after a check measures the state taken there. 1.5 is 50% above the best
    0.9 (tolerance 0.25): it does not verify the state before it; 0.9 does."""
    guard = DivergenceGuard(**EPOCH)
    _, bias, _ = _drive(guard, [1.0, 1.5, 0.9, 50.0])
    assert len(guard.recoveries) == 1 and bias == 2.0  # the end of epoch 1, verified by 0.9
    guard = DivergenceGuard(**EPOCH)
    _, bias, _ = _drive(guard, [1.0, 0.9, 1.5, 50.0])
    assert len(guard.recoveries) == 1 and bias == 1.0  # 1.5 did not verify epoch 1's end
    guard = DivergenceGuard(tolerance=1.0, **EPOCH)
    _, bias, _ = _drive(guard, [1.0, 0.9, 1.5, 50.0])
    assert bias == 2.0  # within tolerance=1.0 it did


def test_a_lasting_rise_is_a_divergence_after_patience_checks():
    guard = DivergenceGuard(patience=3, **EPOCH)
    _drive(guard, [1.0, 0.9, 1.5, 1.6, 1.7])
    assert [r.epoch for r in guard.recoveries] == [4]
    guard = DivergenceGuard(patience=None, **EPOCH)
    _drive(guard, [1.0, 0.9, 1.5, 1.6, 1.7, 1.8])
    assert guard.recoveries == []


def test_training_that_ends_during_an_unconfirmed_rise_returns_to_the_verified_state():
    guard = DivergenceGuard(**EPOCH)
    model, _, _ = _drive(guard, [1.0, 0.9, 1.5])
    with pytest.warns(UserWarning, match="rise"):
        guard.on_train_end()
    bias = keras.ops.convert_to_numpy(model.get_layer("hidden").bias)
    assert bias[0] == 1.0 and guard.recoveries == []  # the end of epoch 0, verified by 0.9
    guard = DivergenceGuard(**EPOCH)
    model, _, _ = _drive(guard, [1.0, 0.9, 0.95])
    guard.on_train_end()  # ended near the best: nothing changes
    assert keras.ops.convert_to_numpy(model.get_layer("hidden").bias)[0] == 3.0


def test_a_final_rollback_needs_a_rise_as_long_as_one_check():
    """Checks every 10 steps, 40 steps at loss 1 then loss 1.69 (69% above the best, no 3x
    spike): a 5-step tail window is not enough to throw steps away; a 10-step one is (the
    candidate at step 30 was verified by steps 30-39: 20 steps back)."""
    guard = DivergenceGuard()
    _constant_loss_fit([1.0] * 8 * 40 + [1.3] * 8 * 5, guard)
    assert guard.recoveries == [] and guard.final_rollback_steps == 0
    guard = DivergenceGuard()
    with pytest.warns(UserWarning, match="rise"):
        _constant_loss_fit([1.0] * 8 * 40 + [1.3] * 8 * 10, guard)
    assert guard.recoveries == [] and guard.final_rollback_steps == 20


def test_the_rate_comes_back_exactly_after_restore_after_good_checks():
    guard = DivergenceGuard(lr_factor=0.3, restore_after=2, **EPOCH)
    losses = [1.0, 0.9, 50.0, 0.9, 0.85, 0.8, 0.8, 0.8]
    model, _, rates = _drive(guard, losses, keras.optimizers.SGD(0.05))
    lowered = float(np.float32(np.float32(0.05) * 0.3))
    assert rates == [pytest.approx(0.05)] * 2 + [lowered] * 2 + [pytest.approx(0.05)] * 4
    # bit-exact, never above the original
    assert keras.ops.convert_to_numpy(model.optimizer.learning_rate) == np.float32(0.05)
    assert [(r.epoch, r.learning_rate) for r in guard.restores] == [(4, pytest.approx(0.05))]


def test_a_restored_rate_that_diverges_again_stays_lowered():
    guard = DivergenceGuard(restore_after=2, lr_factor=0.5, **EPOCH)
    losses = [1.0, 0.9, 50.0, 0.9, 0.85, 40.0, 0.9, 0.85, 0.8, 0.8, 0.8]
    _, _, rates = _drive(guard, losses, keras.optimizers.SGD(0.08))
    assert len(guard.recoveries) == 2 and len(guard.restores) == 1
    assert rates[-1] == pytest.approx(0.04)  # the level that diverged after its restore


def test_another_callbacks_reduction_is_kept_when_the_rate_comes_back():
    guard = DivergenceGuard(restore_after=1, lr_factor=0.5, **EPOCH)
    model = tiny_model(keras.optimizers.SGD(0.08))
    guard.set_model(model)
    guard.set_params({"steps": 10})
    guard.on_train_begin()
    for epoch, loss in enumerate([1.0, 0.9, 50.0]):
        guard.on_epoch_begin(epoch)
        guard.on_epoch_end(epoch, {"loss": loss})
    model.optimizer.learning_rate = 0.01  # ReduceLROnPlateau, from 0.04
    guard.on_epoch_begin(3)
    guard.on_epoch_end(3, {"loss": 0.9})
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)


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
                          [DivergenceGuard(**EPOCH), keras.callbacks.BackupAndRestore(backup),
                           sab], epochs=3)
    # The resumed epoch 2 diverged: back to the checkpoint of epoch 1, not to the fresh weights.
    for a, b in zip(_state(model), sab.good[2], strict=True):
        np.testing.assert_array_equal(a, b)
    assert history.history["divergence_recoveries"] == [1]


def _constant_loss_fit(targets, guard, batch_size=8, steps_per_execution=1, callbacks=(),
                       **fit_kwargs):
    """A zero Dense with rate 0: each sample's loss is its target squared, whatever happens."""
    targets = np.asarray(targets, dtype="float32").reshape(-1, 1)
    model = keras.Sequential([keras.Input((1,)),
                              keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse",
                  steps_per_execution=steps_per_execution)
    x = np.ones_like(targets)
    return model.fit(x, targets, batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
                     callbacks=[guard, *callbacks], **fit_kwargs)


def test_the_epochs_last_steps_are_checked_on_training_sums_not_validations(recwarn):
    """Validation resets the metrics and sums its own loss before `on_epoch_end`: the check
    of the epoch's last 4 steps (loss 1) runs at validation's start. Read after it, it saw
    the validation loss (100) as a 100x spike and rolled back a healthy run."""
    guard = DivergenceGuard()
    val = (np.ones((16, 1), "float32"), np.full((16, 1), 10.0, "float32"))
    history = _constant_loss_fit([1.0] * 192, guard, validation_data=val)
    assert guard.recoveries == []
    assert history.history["loss"] == [pytest.approx(1.0)]
    assert history.history["val_loss"] == [pytest.approx(100.0)]
    assert not [w for w in recwarn if "DivergenceGuard" in str(w.message)]


@NO_TORCH_SPE
def test_step_window_on_a_partial_last_execution():
    """26 steps, steps_per_execution=3: Keras reports the last call as steps 24-26 though it
    runs 24-25 only. 24 steps of loss 1 (the best is set once 20 steps are averaged) then two
    of loss 4: the last window's mean is 4. (Two steps are fewer than `snapshot_every`, so the
    epoch-end check is the one that sees them.)"""
    guard = DivergenceGuard(snapshot_every=3, spike_factor=3.5)
    _constant_loss_fit([1.0] * 192 + [2.0] * 16, guard, steps_per_execution=3)
    assert [(r.step, r.value) for r in guard.recoveries] == [(None, pytest.approx(4.0))]


def test_the_first_batches_of_a_fit_do_not_set_the_best():
    """snapshot_every=1: a lucky first batch (loss 0.09) then batches at 1.0. The best is the
    plain mean once 20 steps are averaged, (0.09 + 19) / 20, not 0.09: 1.0 is no 3x spike."""
    guard = DivergenceGuard(snapshot_every=1)
    _constant_loss_fit([0.3] * 8 + [1.0] * 8 * 29, guard)
    assert guard.recoveries == []
    assert guard.best == pytest.approx((0.09 + 19 * 1.0) / 20, rel=1e-6)


def test_step_window_with_a_short_last_batch_is_weighted_by_samples():
    """Keras's loss mean is weighted by batch size: 23 batches of 8 at loss 1, then 4 samples
    at loss 9. The last window's mean is 9 (> 6 x 1), not the 1.3 of step weighting."""
    guard = DivergenceGuard(snapshot_every=1, spike_factor=6.0)
    _constant_loss_fit([1.0] * 184 + [3.0] * 4, guard)
    assert [(r.step, r.value) for r in guard.recoveries] == [(23, pytest.approx(9.0))]


def test_recovery_on_the_last_step_does_not_log_a_zero_loss():
    """No step runs after the reset: the epoch logs the means from before it, not 0.0."""
    guard = DivergenceGuard(snapshot_every=1)
    spy = Recorder()
    history = _constant_loss_fit([1.0] * 184 + [10.0] * 8, guard, callbacks=[spy])
    assert [r.step for r in guard.recoveries] == [23]
    assert history.history["loss"] == [pytest.approx((23 * 1.0 + 100.0) / 24)]
    assert spy.epochs[0]["loss"] == history.history["loss"][0]
    assert history.history["divergence_recoveries"] == [1]


def test_negative_losses_spike_relative_to_their_magnitude():
    """CosineSimilarity is negative: an improving (more negative) loss is never a spike."""
    guard = DivergenceGuard(spike_factor=5.0, **EPOCH)
    _drive(guard, [-0.03, -0.06, -0.1, -0.2], steps=None)
    assert guard.recoveries == []
    # A rise above best of more than (5 - 1) x |best| = 2.0 is one.
    _drive(guard, [-0.2, -0.5, 0.2, 1.6], steps=None)
    assert [r.epoch for r in guard.recoveries] == [3]
    # Near 0 the scale is 2% of the first value: 0.01 to 0.05 is no spike, 0.01 to 2.0 one.
    _drive(guard, [1.0, 0.01, 0.05, 2.0], steps=None)
    assert [r.epoch for r in guard.recoveries] == [3]
    # With best and the first value exactly 0 there is no scale: only non-finite counts.
    _drive(guard, [0.0, 0.0, 2.0], steps=None)
    assert guard.recoveries == []


def test_cosine_similarity_training_is_not_taken_for_a_divergence():
    x, _ = regression_data()
    y = x @ np.random.default_rng(1).standard_normal((5, 3)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.CosineSimilarity())
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0,
                        callbacks=[DivergenceGuard()])
    assert history.history["loss"][-1] < history.history["loss"][0] < 0
    assert history.history["divergence_recoveries"] == [0, 0, 0, 0]


class _PoisonAtEnd(keras.callbacks.Callback):
    """At the end of `epoch`: NaN in a weight; the logged loss NaN too unless `keep_loss`."""

    def __init__(self, epoch, keep_loss=False):
        super().__init__()
        self.epoch, self.keep_loss = epoch, keep_loss

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            kernel = self.model.layers[-1].kernel
            kernel.assign(keras.ops.convert_to_numpy(kernel) * np.nan)
            if not self.keep_loss:
                logs["loss"] = float("nan")


def test_a_non_finite_state_is_never_snapshotted():
    """A finite loss with NaN weights is a divergence: back to the last finite snapshot."""
    sab = Saboteur([2])  # records the state at the start of epoch 2 (the epoch-1 snapshot)
    guard = DivergenceGuard(**EPOCH)
    model, history = _fit(keras.optimizers.SGD(0.05), [_PoisonAtEnd(1, keep_loss=True), sab,
                                                        guard], epochs=2)
    assert history.history["divergence_recoveries"] == [0, 1]
    assert all(np.isfinite(v).all() for v in values(model.weights))


def test_a_gradient_guards_nan_grad_norm_is_not_a_divergence():
    # A GradientGuard's `grad_norm` is NaN after a skipped step, by design: not a divergence.
    guard = DivergenceGuard(**EPOCH)
    model = tiny_model(GradientGuard(keras.optimizers.SGD(0.05)))
    guard.set_model(model)
    guard.on_train_begin()
    guard.on_epoch_begin(0)
    model.optimizer.grad_norm.assign(float("nan"))
    guard.on_epoch_end(0, {"loss": 1.0})
    assert guard.recoveries == [] and guard.best == 1.0


def test_resuming_from_a_backup_written_after_a_divergence_raises(tmp_path):
    """[BackupAndRestore, DivergenceGuard]: the backup of a diverged epoch is saved before the
    guard rolls back. Resuming from it, the guard has no finite state and says so."""
    backup = str(tmp_path / "backup")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(keras.optimizers.SGD(0.05),
             [_PoisonAtEnd(1), keras.callbacks.BackupAndRestore(backup),
              DivergenceGuard(**EPOCH), Interrupt()])
    with pytest.raises(RuntimeError, match="put DivergenceGuard before those callbacks"):
        _fit(keras.optimizers.SGD(0.05),
             [keras.callbacks.BackupAndRestore(backup), DivergenceGuard(**EPOCH)])


def test_restores_batch_norm_statistics_after_a_nan_batch_that_gradient_guard_skipped():
    """GradientGuard skips the step, but BatchNormalization updated its moving statistics in
    the forward pass, before the optimizer ran: they are NaN. DivergenceGuard snapshots
    `model.weights` and puts them back."""
    x, y = regression_data()
    x[40, 0] = np.nan  # in the third batch of 16

    def fit(callbacks):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8),
                                  keras.layers.BatchNormalization(), keras.layers.Dense(1)])
        model.compile(optimizer=GradientGuard(keras.optimizers.Adam(1e-2)), loss="mse")
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0,
                  callbacks=callbacks)
        return model

    alone = fit([])
    assert int(alone.optimizer.skipped_steps) == 1
    assert np.isnan(keras.ops.convert_to_numpy(alone.layers[1].moving_mean)).all()
    guard = DivergenceGuard()
    guarded = fit([guard])
    assert len(guard.recoveries) == 1
    assert all(np.isfinite(v).all() for v in values(guarded.weights))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"lr_factor": 1.0}, "lr_factor"),
        ({"lr_factor": 0.0}, "lr_factor"),
        ({"spike_factor": 1.0}, "spike_factor"),
        ({"max_recoveries": -1}, "max_recoveries"),
        ({"snapshot_every": 0}, "snapshot_every"),
        ({"snapshot_every": "batch"}, "snapshot_every"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"patience": 0}, "patience"),
        ({"restore_after": 0}, "restore_after"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DivergenceGuard(**kwargs)


@pytest.mark.parametrize("kwargs", [{"keep_step": 1}, {"monitor": 3}, {"patience": 1.5}])
def test_bad_argument_types(kwargs):
    with pytest.raises(TypeError, match=next(iter(kwargs))):
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
    """Unguarded, the peak of 3.0 blows the loss up (torch: 38.7 in epoch 4) and the cosine
    decay only partly brings it back (torch: 0.54 at the end, 8.3x the tuned 0.065)."""
    tuned, _ = _digits_run(1.0)
    diverged, _ = _digits_run(3.0)
    guarded, weights = _digits_run(3.0, [DivergenceGuard(), LRMonitor()])
    assert diverged["loss"][-1] > 5 * tuned["loss"][-1]
    assert max(guarded["divergence_recoveries"]) >= 1
    assert min(guarded["lr_scale"]) < 1.0
    assert all(np.isfinite(w).all() for w in weights)
    assert guarded["loss"][-1] < 2 * tuned["loss"][-1] + 0.05


def test_history_rows_of_a_recovery_and_a_rate_restore():
    """NaN from batch 2 of epoch 1 (4 steps an epoch, checks every 2): one recovery that
    skips 4 steps and lowers the rate to a quarter; the next good check (restore_after=1)
    brings it back. History has one row per epoch of each counter and of the rate."""
    guard = DivergenceGuard(snapshot_every=2, restore_after=1)
    _, history = _fit(keras.optimizers.SGD(0.05), [guard, Saboteur([1], batch=2)], epochs=3)
    assert [(r.epoch, r.step, r.steps_skipped) for r in guard.recoveries] == [(1, 3, 4)]
    assert [(r.epoch, r.step) for r in guard.restores] == [(2, 1)]
    rows = history.history
    assert rows["divergence_recoveries"] == [0, 1, 1]
    assert rows["divergence_steps_skipped"] == [0, 4, 4]
    assert rows["divergence_rate_restores"] == [0, 0, 1]
    assert rows["learning_rate"] == [pytest.approx(0.05), pytest.approx(0.0125),
                                     pytest.approx(0.05)]


def test_keras_tuner_gives_every_trial_a_fresh_guard(tmp_path):
    """KerasTuner deep-copies the callbacks for each trial: the guard passed to search() stays
    unbound, and each trial's own copy rolls back a NaN in epoch 0 (a trial keeps its best
    epoch's metrics: one recovery, a finite score; without a guard the loss is NaN)."""
    keras_tuner = pytest.importorskip("keras_tuner")

    def build(hp):
        return tiny_model(keras.optimizers.SGD(hp.Choice("lr", [0.05, 0.02])))

    guard = DivergenceGuard(snapshot_every=2)
    tuner = keras_tuner.GridSearch(build, objective="loss", max_trials=2,
                                   directory=str(tmp_path), project_name="guard")
    tuner.search(*regression_data(), batch_size=16, epochs=2, verbose=0, shuffle=False,
                 callbacks=[Saboteur([0], batch=0), guard])
    assert guard.recoveries == [] and guard._verified is None  # the original never ran
    trials = tuner.oracle.get_best_trials(2)
    assert len(trials) == 2
    for trial in trials:
        assert trial.metrics.get_history("divergence_recoveries")[-1].value == [1.0]
        assert np.isfinite(trial.score)
