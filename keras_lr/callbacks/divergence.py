"""`DivergenceGuard`: roll back to the last good state and lower the rate when training diverges."""

from __future__ import annotations

import math
import warnings

import keras
import numpy as np

from keras_lr._validation import check_float, check_int, check_open_interval, fail
from keras_lr.callbacks._lr import (
    FreshCopy,
    check_guards,
    effective_learning_rate,
    guards_in,
    multiply_learning_rate,
    rate_variables,
)

__all__ = ["DivergenceGuard"]


def _host(value):
    """A metric result as a Python float (scalars) or a NumPy array, as Keras logs it."""
    value = np.asarray(keras.ops.convert_to_numpy(value))
    return float(value) if value.ndim == 0 else value


class DivergenceGuard(FreshCopy, keras.callbacks.Callback):
    """Recover from divergence: restore the last good snapshot, lower the rate, go on.

    At every check (the end of each epoch, or every `snapshot_every` training steps) the
    monitored value `x` is compared with `best`, the lowest value seen at a good check::

        diverged = not isfinite(x) or x - best > (spike_factor - 1) * abs(best)

    For a positive `best` this is ``x > spike_factor * best``; measuring the rise against
    ``abs(best)`` keeps the test meaningful for losses that can be negative (Keras's
    `CosineSimilarity`, a Gaussian negative log-likelihood), where an improving, more negative
    value is never a spike. When `best` is exactly 0 there is no scale to measure a spike
    against, so only a non-finite value counts. (The reference is the best value rather than a
    moving average so that a loss that climbs steadily, which a moving average would follow,
    is caught too. With warm restarts that can raise a tiny loss several-fold, use a larger
    `spike_factor`.)

    On a good check the guard takes a snapshot, in host memory, of every variable in
    `model.weights` (trainable weights and non-trainable state such as BatchNormalization's
    moving statistics) and every optimizer variable (slots, iteration counts, guard counters)
    except the rate itself. A snapshot is only ever taken of a finite state: a good check that
    finds a NaN or inf in the weights or the optimizer slots (a `GradientGuard`'s
    `grad_norm`, NaN by design after a skipped step, is not tested) counts as a divergence.
    If the state is already non-finite when training starts (a checkpoint restored by
    `BackupAndRestore` that holds diverged weights), there is nothing good to return to and
    the guard raises a `RuntimeError` at the start of the first epoch.

    On a divergence it restores the snapshot, multiplies the effective learning rate by
    `lr_factor` and training continues. A plain optimizer with a float rate gets its rate
    assigned; an optimizer wrapped by keras-lr (`LRWrapper`, `GradientGuard`, `LayerwiseLR`)
    gets its shared `lr_scale` lowered, so a schedule keeps its shape; a plain optimizer
    holding a schedule is refused with a `TypeError` at the start of training.

    After `max_recoveries` recoveries, the next divergence restores the last good state and
    stops training cleanly (``model.stop_training = True``) with a warning. Each check writes
    ``divergence_recoveries`` (the count so far) and ``learning_rate`` into the logs, so History
    shows every recovery; `recoveries` keeps ``(epoch, step, value, new_learning_rate)`` rows.

    Epoch checks (the default) watch the epoch's value in the logs (for ``loss``, the mean over
    the epoch, so a NaN anywhere in the epoch is caught) and add no host synchronisation during
    the epoch. Step checks (`snapshot_every` an int) read the logs after every train-function
    call (every `steps_per_execution` steps) and, once `snapshot_every` steps have passed,
    check the mean over those steps. The mean is read off the running sums of the monitored
    Keras metric (``total`` and ``count``, so it is weighted by batch size as Keras's epoch
    mean is, and a short last batch or a partial last call of ``steps_per_execution`` counts
    what really ran); for a logs entry that is not such a metric it is recovered from the
    running means and the step count (clamped to the epoch's steps when Keras knows them).

    A recovery in the middle of an epoch resets the model's metrics, so the epoch's logged
    metrics are then the means since the recovery. When the recovery falls on the epoch's
    last step no step runs after the reset, and the empty metrics would read 0.0, a perfect
    loss for `ModelCheckpoint(save_best_only=True)` or `EarlyStopping`. The guard then writes
    back the training metrics as they stood just before the reset: the epoch's means
    including the diverged steps, what the logs would hold without the guard and what an
    epoch check logs for a diverged epoch (validation metrics, measured after the rollback,
    are left alone). A spike so logs a large value, never an improvement, rather than NaN,
    which Keras's monitor callbacks would take as their first "best" and never beat (a
    non-finite divergence logs NaN, as it would without the guard).

    Callback order: Keras runs callbacks in list order, so put `DivergenceGuard` **before**
    `keras.callbacks.BackupAndRestore` and `ModelCheckpoint`. Placed after them, a checkpoint
    is written at the end of a diverged epoch, before the guard rolls back.

    Args:
        monitor: the logs entry to watch (default "loss"; "val_loss" works with epoch checks).
        spike_factor: float > 1; a rise above the best value of more than
            ``(spike_factor - 1) * abs(best)`` is a divergence.
        lr_factor: float in (0, 1), the factor applied to the learning rate on each recovery.
        max_recoveries: int >= 0, recoveries allowed before stopping.
        snapshot_every: "epoch" or an int >= 1 (training steps).

    Raises:
        RuntimeError: at the start of training, when the model's weights or optimizer
            variables are already non-finite (no good state to snapshot).

    Example:

    ```python
    opt = keras_lr.optimizers.LRWrapper(keras.optimizers.SGD(schedule))
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=20, callbacks=[keras_lr.callbacks.DivergenceGuard()])
    history.history["divergence_recoveries"]
    ```
    """

    def __init__(
        self,
        monitor="loss",
        spike_factor=5.0,
        lr_factor=0.5,
        max_recoveries=3,
        snapshot_every="epoch",
    ):
        super().__init__()
        if not isinstance(monitor, str):
            fail("monitor", "must be a string", monitor, TypeError)
        self.monitor = monitor
        self.spike_factor = check_float("spike_factor", spike_factor, minimum=1.0, strict=True)
        self.lr_factor = check_open_interval("lr_factor", lr_factor, 0.0, 1.0)
        self.max_recoveries = check_int("max_recoveries", max_recoveries, minimum=0)
        if snapshot_every != "epoch":
            if isinstance(snapshot_every, str):
                fail("snapshot_every", "must be 'epoch' or an int >= 1", snapshot_every)
            snapshot_every = check_int("snapshot_every", snapshot_every, minimum=1)
        self.snapshot_every = snapshot_every
        self._remember(monitor=monitor, spike_factor=spike_factor, lr_factor=lr_factor,
                       max_recoveries=max_recoveries, snapshot_every=snapshot_every)
        if snapshot_every != "epoch":
            self.on_train_batch_end = self._batch_end
        self._reset()

    def _reset(self):
        self.recoveries = []
        self.best = None
        self.stopped = False
        self._snapshot = None
        self._epoch = 0
        self._metric = None  # the Keras metric behind `monitor` (step checks), once resolved
        self._metric_resolved = False
        # False between a mid-epoch recovery (which resets the metrics) and the next step.
        self._measured = True
        self._before_reset = {}  # the metrics' results just before that reset
        self._reset_window(-1)

    def _reset_window(self, base):
        """Batch checks: `base` is the last batch NOT in the metrics' running mean."""
        self._base = base
        self._last_batch = base
        self._steps_since_check = 0
        self._prev_total = 0.0
        self._prev_count = 0.0

    # ------------------------------------------------------------------ snapshots
    def _state_variables(self):
        excluded = {id(v) for v in rate_variables(self.model.optimizer)}
        optimizer_vars = [v for v in self.model.optimizer.variables if id(v) not in excluded]
        return list(self.model.weights) + optimizer_vars

    def _untested_variables(self):
        """Variables that may be non-finite in a good state: a guard's last `grad_norm`."""
        return {id(guard.grad_norm) for guard in guards_in(self.model.optimizer)
                if isinstance(getattr(guard, "grad_norm", None), keras.Variable)}

    def _capture(self):
        """``(variables, values)`` of the current state, or None when it is not finite."""
        variables = self._state_variables()
        values = [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
        untested = self._untested_variables()
        for variable, value in zip(variables, values, strict=True):
            if (
                id(variable) not in untested
                and np.issubdtype(value.dtype, np.inexact)
                and not np.isfinite(value).all()
            ):
                return None
        return variables, values

    def _restore(self):
        variables, values = self._snapshot
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)

    # ------------------------------------------------------------------ training hooks
    def on_train_begin(self, logs=None):
        self._reset()
        optimizer = self.model.optimizer
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        # Refuse an optimizer whose rate cannot be lowered before any training happens.
        multiply_learning_rate(optimizer, 1.0, caller="DivergenceGuard")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._snapshot is None:
            # Taken here rather than in on_train_begin, after every callback's on_train_begin
            # (BackupAndRestore loads its checkpoint there, wherever it sits in the list).
            self._snapshot = self._capture()
            if self._snapshot is None:
                raise RuntimeError(
                    "DivergenceGuard: the model's weights or optimizer variables contain NaN "
                    f"or inf at the start of epoch {epoch}, so there is no good state to "
                    "return to. If training resumed from a checkpoint "
                    "(keras.callbacks.BackupAndRestore, ModelCheckpoint), that checkpoint was "
                    "written after the model diverged: put DivergenceGuard before those "
                    "callbacks in the `callbacks` list so that it rolls back before they "
                    "save, and restart from an earlier checkpoint or from scratch."
                )
        self._measured = True
        self._reset_window(-1)

    def _resolve_metric(self, value):
        """The Keras mean metric named `monitor` whose running sums give `value`, or None."""
        for metric in getattr(self.model, "metrics", []):
            for m in getattr(metric, "metrics", [metric]):
                if m.name != self.monitor:
                    continue
                total, count = getattr(m, "total", None), getattr(m, "count", None)
                if not (
                    isinstance(total, keras.Variable) and isinstance(count, keras.Variable)
                    and len(total.shape) == 0 and len(count.shape) == 0
                ):
                    continue
                total, count = self._read(total), self._read(count)
                if count > 0 and (
                    math.isclose(total / count, value, rel_tol=1e-5, abs_tol=1e-12)
                    or (math.isnan(value) and not math.isfinite(total))
                ):
                    return m
        return None

    @staticmethod
    def _read(variable):
        return float(keras.ops.convert_to_numpy(variable))

    def _window_value(self, logs):
        """The mean of the monitored value over the batches since the previous check.

        Keras logs hold the running mean since the epoch start (or the last metrics reset).
        The metric's own running sums (``total``, ``count``) give the window's mean exactly;
        otherwise differencing two running means weighted by step counts gives it.
        """
        value = self._lookup(logs)
        if value is None:
            return None
        if not self._metric_resolved:
            self._metric = self._resolve_metric(value)
            self._metric_resolved = True
        if self._metric is not None:
            total, count = self._read(self._metric.total), self._read(self._metric.count)
        else:
            count = float(self._last_batch - self._base)
            total = count * value
        if count <= self._prev_count:
            return value
        window = (total - self._prev_total) / (count - self._prev_count)
        self._prev_total, self._prev_count = total, count
        return window

    def _batch_end(self, batch, logs=None):
        # Keras reports `end = begin + steps_per_execution - 1` even when the last call of
        # the epoch runs fewer steps: clamp to the epoch's step count when it is known.
        steps = (self.params or {}).get("steps")
        if steps:
            batch = min(batch, steps - 1)
        self._steps_since_check += batch - self._last_batch
        self._last_batch = batch
        self._measured = True
        if self._steps_since_check >= self.snapshot_every:
            self._steps_since_check = 0
            self._check(self._window_value(logs), step=batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.snapshot_every == "epoch":
            self._check(self._lookup(logs), step=None)
        elif self._steps_since_check > 0:
            self._steps_since_check = 0
            self._check(self._window_value(logs), step=None, reset_metrics=False)
        if logs is not None:
            if not self._measured:
                # A recovery on the epoch's last step reset the metrics and no step ran
                # since: they read 0.0, a perfect loss. Log what they held before the reset.
                for key, value in self._before_reset.items():
                    if key in logs:
                        logs[key] = value
            logs["divergence_recoveries"] = len(self.recoveries)
            logs["learning_rate"] = effective_learning_rate(self.model.optimizer)

    def _lookup(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"DivergenceGuard: the logs have no `{self.monitor}` entry (available: "
                f"{sorted(logs or {})}); nothing is checked.",
                stacklevel=2,
            )
            return None
        return float(value)

    def _is_spike(self, value):
        if self.best is None or self.best == 0.0:
            return False
        return value - self.best > (self.spike_factor - 1.0) * abs(self.best)

    def _check(self, value, step, reset_metrics=True):
        if self.stopped:
            return
        check_guards(self.model.optimizer)
        if value is None:
            return
        reason = None
        if not math.isfinite(value) or self._is_spike(value):
            reason = f"`{self.monitor}` diverged ({value:.4g})"
        else:
            snapshot = self._capture()
            if snapshot is not None:
                self.best = value if self.best is None else min(self.best, value)
                self._snapshot = snapshot
                return
            # A finite value but NaN/inf in the state (say BatchNorm statistics after a NaN
            # batch the optimizer skipped): never snapshot it, roll back instead.
            reason = f"the model state became non-finite (`{self.monitor}`={value:.4g})"
        self._restore()
        where = f"epoch {self._epoch}" + ("" if step is None else f", step {step}")
        if len(self.recoveries) >= self.max_recoveries:
            self.stopped = True
            self.model.stop_training = True
            warnings.warn(
                f"DivergenceGuard: {reason} at {where} after "
                f"{len(self.recoveries)} recoveries (max_recoveries={self.max_recoveries}); "
                "training stopped with the last good weights restored.",
                stacklevel=2,
            )
            return
        _, new_rate = multiply_learning_rate(
            self.model.optimizer, self.lr_factor, caller="DivergenceGuard"
        )
        self.recoveries.append((self._epoch, step, value, new_rate))
        if step is not None and reset_metrics:
            # Mid-epoch: the running means hold the diverged batches; restart them.
            self._before_reset = {
                key: _host(value) for key, value in self.model.get_metrics_result().items()
            }
            self.model.reset_metrics()
            self._measured = False
            self._reset_window(step)
