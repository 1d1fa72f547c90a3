"""LRMonitor writes the real rate (schedule x scale), group rates and guard counters."""

import csv

import keras
import numpy as np
import pytest
from callback_helpers import Recorder, cosine, regression_data, tiny_model
from keras.src.utils.python_utils import is_default

from keras_lr import guards
from keras_lr.callbacks import LRMonitor
from keras_lr.optimizers import LRWrapper


def _scaled_cosine_optimizer(scale=0.5):
    opt = LRWrapper(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.1, 20)))
    opt.lr_scale.assign(scale)
    return opt


def test_epoch_logs_hold_schedule_times_scale_for_history_and_csv(tmp_path):
    model = tiny_model(_scaled_cosine_optimizer(0.5))
    log = tmp_path / "log.csv"
    history = model.fit(*regression_data(), batch_size=16, epochs=3, verbose=0,
                        callbacks=[LRMonitor(), keras.callbacks.CSVLogger(str(log))])
    expected = [0.5 * cosine(0.1, 20, 4 * (e + 1)) for e in range(3)]
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-6)
    assert history.history["lr_scale"] == [0.5] * 3
    with open(log) as f:
        rows = list(csv.DictReader(f))
    np.testing.assert_allclose([float(r["learning_rate"]) for r in rows], expected, rtol=1e-6)


@pytest.mark.backends("tensorflow", "jax", reason="Keras 3.15's torch trainer refuses "
                      "steps_per_execution > 1")
def test_batch_logs_with_steps_per_execution():
    model = tiny_model(_scaled_cosine_optimizer(1.0), steps_per_execution=2)
    spy = Recorder()
    model.fit(*regression_data(), batch_size=8, epochs=1, verbose=0,
              callbacks=[LRMonitor(every="batch"), spy])
    assert [b for b, _ in spy.batches] == [1, 3, 5, 7]
    for batch, logs in spy.batches:
        assert logs["learning_rate"] == pytest.approx(cosine(0.1, 20, batch + 1), rel=1e-6)


def test_epoch_mode_keeps_async_batch_dispatch():
    assert is_default(LRMonitor().on_train_batch_end)
    assert not is_default(LRMonitor(every="batch").on_train_batch_end)


def test_guard_counters_are_logged():
    guard = guards.GradientGuard(keras.optimizers.SGD(0.01), clip=guards.GlobalNorm(1e-4))
    x, y = regression_data()
    x[3, 0] = np.nan
    model = tiny_model(guard)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
                        callbacks=[LRMonitor()])
    assert history.history["skipped_steps"] == [1, 2]
    assert history.history["clipped_steps"] == [3, 6]
    assert np.all(np.isfinite(history.history["grad_norm"]))
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.01])


def test_layerwise_groups_are_logged():
    layerwise = pytest.importorskip("keras_lr.optimizers.layerwise")
    opt = layerwise.LayerwiseLR(keras.optimizers.SGD(0.2), {"hidden/": 0.25})
    history = tiny_model(opt).fit(*regression_data(), epochs=1, verbose=0,
                                  callbacks=[LRMonitor()])
    assert history.history["learning_rate/x0.25"] == pytest.approx([0.05])
    assert history.history["learning_rate/x1"] == pytest.approx([0.2])


def test_plain_optimizer_and_bad_argument():
    history = tiny_model(keras.optimizers.SGD(0.03)).fit(
        *regression_data(), epochs=1, verbose=0, callbacks=[LRMonitor()])
    assert history.history["learning_rate"] == pytest.approx([0.03])
    assert "lr_scale" not in history.history
    with pytest.raises(ValueError, match="every"):
        LRMonitor(every="step")


def test_multi_optimizer_logs_one_entry_per_sub_optimizer():
    wrapped = LRWrapper(keras.optimizers.Adam(0.01), name="enc_opt")
    wrapped.lr_scale.assign(0.5)
    guard = guards.GradientGuard(keras.optimizers.SGD(0.1), name="head_opt")
    multi = keras.optimizers.MultiOptimizer(
        lambda v: wrapped if "hidden" in v.path else guard)
    model = tiny_model(multi)
    history = model.fit(*regression_data(), batch_size=16, epochs=2, verbose=0,
                        callbacks=[LRMonitor()])
    logs = history.history
    assert "learning_rate" not in logs
    assert logs["learning_rate_enc_opt"] == pytest.approx([0.005, 0.005])
    assert logs["lr_scale_enc_opt"] == [0.5, 0.5]
    assert logs["learning_rate_head_opt"] == pytest.approx([0.1, 0.1])
    assert logs["skipped_steps_head_opt"] == [0, 0]
    assert np.all(np.isfinite(logs["grad_norm_head_opt"]))
    assert "grad_norm_enc_opt" not in logs


def test_guards_are_found_inside_a_loss_scaled_multi_optimizer():
    """LossScaleOptimizer(MultiOptimizer(...)): the guards of the sub-optimizers are checked
    (`check_guards` used to look at the top-level chain only and missed them)."""
    from keras_lr.callbacks._lr import check_guards, guards_in

    head = guards.GradientGuard(keras.optimizers.SGD(0.1), max_consecutive_skips=2)
    body = guards.GradientGuard(keras.optimizers.SGD(0.1))
    multi = keras.optimizers.MultiOptimizer(lambda v: body if "hidden" in v.path else head)
    scaled = keras.optimizers.LossScaleOptimizer(multi)
    model = tiny_model(scaled)
    model.fit(*regression_data(), batch_size=16, epochs=1, verbose=0)
    assert {id(g) for g in guards_in(scaled)} == {id(head), id(body)}
    check_guards(scaled)  # nothing stuck
    head.consecutive_skips.assign(2)
    with pytest.raises(guards.NonFiniteGradientsError, match="max_consecutive_skips=2"):
        check_guards(scaled)
