"""The learning-rate-free optimizers with LayerwiseLR, GradientGuard and DivergenceGuard."""

import keras
import numpy as np
import pytest
from lrfree_oracles import _data, assert_close, keras_model, numpy_params, teacher_forced

from keras_lr.callbacks import DivergenceGuard, ScheduleFreeEval, schedule_free_train
from keras_lr.guards import GradientGuard
from keras_lr.optimizers import (
    DAdaptAdam,
    LayerwiseLR,
    Prodigy,
    ScheduleFreeAdamW,
    ScheduleFreeSGD,
)


def _values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_layerwise_multiplier_is_a_schedulefree_param_group(kind):
    schedulefree = pytest.importorskip("schedulefree")
    lr, multiplier = (0.01, 0.25) if kind == "adamw" else (0.1, 0.25)
    model = keras_model("lstm")
    inner = (ScheduleFreeAdamW(lr, warmup_steps=5, weight_decay=0.01) if kind == "adamw"
             else ScheduleFreeSGD(lr, warmup_steps=5, weight_decay=0.01))
    optimizer = LayerwiseLR(inner, {model.layers[0]: multiplier})
    cls = schedulefree.AdamWScheduleFree if kind == "adamw" else schedulefree.SGDScheduleFree
    variables, _, params = teacher_forced(
        "lstm", optimizer, lambda groups: cls(groups, lr=lr, warmup_steps=5, weight_decay=0.01),
        60, variables=model.trainable_variables,
        param_groups=[([0, 1, 2], {"lr": lr * multiplier}), ([3, 4], {})])
    assert_close(_values(variables), numpy_params(params))


@pytest.mark.parametrize("make", [Prodigy, DAdaptAdam, lambda: ScheduleFreeAdamW(0.01)],
                         ids=["prodigy", "dadapt", "schedule_free"])
def test_gradient_guard_skip_leaves_every_variable_untouched(make):
    model = keras_model("dense")
    guarded = GradientGuard(make())
    variables = model.trainable_variables
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=v.shape).astype("float32") for v in variables]
    for _ in range(3):
        guarded.apply(grads, variables)
    before = _values(guarded.variables) + _values(variables)
    bad = [g.copy() for g in grads]
    bad[1][0] = np.nan
    guarded.apply(bad, variables)
    after = _values(guarded.variables) + _values(variables)
    skipped = {id(guarded.skipped_steps)} if hasattr(guarded, "skipped_steps") else set()
    for var, a, b in zip(list(guarded.variables) + list(variables), before, after):
        if id(var) in skipped or "grad_norm" in var.name or "skip" in var.name:
            continue
        np.testing.assert_array_equal(a, b, err_msg=var.name)


class _Spike(keras.callbacks.Callback):
    """Record the state at the start of training and at each epoch end; blow the rate up at
    the start of epoch 1."""

    def __init__(self):
        super().__init__()
        self.states = []

    def _record(self):
        optimizer = self.model.optimizer
        rate = {id(optimizer.learning_rate)} if hasattr(optimizer, "learning_rate") else set()
        self.states.append(
            ([v for v in optimizer.variables if id(v) not in rate],
             _values([v for v in optimizer.variables if id(v) not in rate]),
             _values(self.model.weights)))

    def on_train_begin(self, logs=None):
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self._record()

    def on_epoch_end(self, epoch, logs=None):
        self._record()

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            self.model.optimizer.learning_rate.assign(1e4)


@pytest.mark.parametrize("make", [Prodigy, lambda: ScheduleFreeAdamW(0.01)],
                         ids=["prodigy", "schedule_free"])
def test_divergence_guard_rollback_restores_d_and_z_exactly(make):
    x, y = _data("dense", 20)
    model = keras_model("dense")
    model.compile(optimizer=make(), loss="mse")
    spike = _Spike()
    callbacks = [DivergenceGuard(snapshot_every="epoch", keep_step=False), spike]
    if isinstance(model.optimizer, ScheduleFreeAdamW):
        callbacks.append(ScheduleFreeEval())
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
    guard = callbacks[0]
    assert guard.recoveries, "the spike was not caught"
    if isinstance(model.optimizer, ScheduleFreeAdamW):
        schedule_free_train(model)
    variables, *_ = spike.states[0]
    now_opt = _values(variables)
    now_weights = _values(model.weights)
    # The final state is one of the good states recorded before the spike, all of it.
    matches = []
    for _, opt_values, weights in spike.states[:2]:
        same = all(np.allclose(a, b, rtol=1e-6, atol=0) for a, b in zip(now_opt, opt_values))
        same_w = all(np.allclose(a, b, rtol=1e-6, atol=1e-9)
                     for a, b in zip(now_weights, weights))
        matches.append(same and same_w)
    assert any(matches), "weights and optimizer state (d, z, ...) do not match one snapshot"
    assert np.all(np.isfinite(np.concatenate([w.ravel() for w in now_opt])))
