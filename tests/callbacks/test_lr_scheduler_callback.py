"""LRScheduler: per-epoch (PyTorch `scheduler.step()` per epoch) and per-step assignment."""

import keras
import numpy as np
import pytest
from callback_helpers import Recorder, regression_data, tiny_model

from keras_lr.callbacks import LRScheduler


class _RateAtBatch(keras.callbacks.Callback):
    """The float rate the optimizer holds while each batch runs."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append((batch, float(self.model.optimizer.learning_rate)))


def _step_decay(epoch):
    return 0.1 * 0.5 ** (epoch // 2)


@pytest.mark.torch
def test_per_epoch_matches_torch_steplr():
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    expected = []
    for _ in range(5):
        expected.append(opt.param_groups[0]["lr"])  # the rate used during this epoch
        opt.step()
        sched.step()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5, staircase=True)
    spy = _RateAtBatch()
    history = tiny_model(keras.optimizers.SGD(1.0)).fit(
        *regression_data(), batch_size=32, epochs=5, verbose=0,
        callbacks=[LRScheduler(schedule), spy])
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-6)
    np.testing.assert_allclose([r for _, r in spy.rates[::2]], expected, rtol=1e-6)


@pytest.mark.backends("tensorflow", "jax", reason="Keras 3.15's torch trainer refuses "
                      "steps_per_execution > 1")
def test_per_step_with_steps_per_execution():
    spy = _RateAtBatch()
    model = tiny_model(keras.optimizers.SGD(1.0), steps_per_execution=2)
    model.fit(*regression_data(), batch_size=8, epochs=2, verbose=0,
              callbacks=[LRScheduler(lambda step: 0.01 * (step + 1), unit="step"), spy])
    # One assignment per train-function call, at the iteration count before the call.
    assert [b for b, _ in spy.rates] == [1, 3, 5, 7] * 2
    expected = [0.01 * (1 + 2 * i) for i in range(8)]
    np.testing.assert_allclose([r for _, r in spy.rates], expected, rtol=1e-6)


def test_multi_optimizer_sub_optimizers():
    a, b = keras.optimizers.SGD(1.0), keras.optimizers.Adam(1.0)
    multi = keras.optimizers.MultiOptimizer(
        keras.optimizers.OptimizerMap(default_optimizer=a, optimizer_map={"out/.*": b}))
    spy = Recorder()
    model = tiny_model(multi)
    model.fit(*regression_data(), epochs=2, verbose=0, callbacks=[LRScheduler(_step_decay), spy])
    for logs in spy.epochs:
        assert logs[f"learning_rate_{a.name}"] == pytest.approx(0.1)
        assert logs[f"learning_rate_{b.name}"] == pytest.approx(0.1)
    only_b = LRScheduler(lambda epoch: 0.02, optimizer=b)
    model.fit(*regression_data(), epochs=1, verbose=0, callbacks=[only_b])
    assert float(b.learning_rate) == pytest.approx(0.02)
    assert float(a.learning_rate) == pytest.approx(0.1)


def test_resume_with_backup_and_restore_uses_the_epoch_index(tmp_path):
    backup = str(tmp_path / "backup")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        tiny_model(keras.optimizers.SGD(1.0)).fit(
            *regression_data(), epochs=5, verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup), LRScheduler(_step_decay),
                       Interrupt()])
    history = tiny_model(keras.optimizers.SGD(1.0)).fit(
        *regression_data(), epochs=5, verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup), LRScheduler(_step_decay)])
    np.testing.assert_allclose(history.history["learning_rate"],
                               [_step_decay(3), _step_decay(4)])


def test_refuses_an_optimizer_that_holds_a_schedule_and_bad_arguments():
    opt = keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5))
    with pytest.raises(TypeError, match="holds a learning-rate schedule"):
        tiny_model(opt).fit(*regression_data(), epochs=1, verbose=0,
                            callbacks=[LRScheduler(_step_decay)])
    with pytest.raises(ValueError, match="unit"):
        LRScheduler(_step_decay, unit="batch")
    with pytest.raises(TypeError, match="schedule"):
        LRScheduler(0.1)


def test_optimizer_argument_is_checked_at_construction():
    with pytest.raises(TypeError, match=r"Argument `optimizer` must be a `keras.optimizers."
                                        r"Optimizer` or None. Received: optimizer='adam'"):
        LRScheduler(_step_decay, optimizer="adam")
    opt = keras.optimizers.SGD(1.0)
    assert LRScheduler(_step_decay, optimizer=opt).optimizer is opt
