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
    multiply_learning_rate,
    rate_variables,
)

__all__ = ["DivergenceGuard"]


class DivergenceGuard(FreshCopy, keras.callbacks.Callback):
    """Recover from divergence: restore the last good snapshot, lower the rate, go on.

    At every check (the end of each epoch, or every `snapshot_every` training steps) the
    monitored value `x` is compared with `best`, the lowest value seen at a good check::

        diverged = not isfinite(x) or x > spike_factor * best

    (The reference is the best value rather than a moving average so that a loss that climbs
    steadily, which a moving average would follow, is caught too. With warm restarts that
    can raise a tiny loss several-fold, use a larger `spike_factor`.)

    On a good check the guard takes a snapshot, in host memory, of every model variable and
    every optimizer variable (slots, iteration counts, guard counters) except the rate itself.
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
    check the mean over those steps (recovered from Keras's running means); a recovery in the
    middle of an epoch resets the model's metrics, so the epoch's logged loss is then the mean
    since the recovery.

    Args:
        monitor: the logs entry to watch (default "loss"; "val_loss" works with epoch checks).
        spike_factor: float > 1; a value above `spike_factor` times the running value is a
            divergence.
        lr_factor: float in (0, 1), the factor applied to the learning rate on each recovery.
        max_recoveries: int >= 0, recoveries allowed before stopping.
        snapshot_every: "epoch" or an int >= 1 (training steps).

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
        self._reset_window(-1)

    def _reset_window(self, base):
        """Batch checks: `base` is the last batch NOT in the metrics' running mean."""
        self._base = base
        self._last_batch = base
        self._steps_since_check = 0
        self._prev_total = 0.0
        self._prev_count = 0

    # ------------------------------------------------------------------ snapshots
    def _state_variables(self):
        excluded = {id(v) for v in rate_variables(self.model.optimizer)}
        optimizer_vars = [v for v in self.model.optimizer.variables if id(v) not in excluded]
        return list(self.model.weights) + optimizer_vars

    def _take_snapshot(self):
        variables = self._state_variables()
        self._snapshot = (variables, [np.array(keras.ops.convert_to_numpy(v)) for v in variables])

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
            self._take_snapshot()
        self._reset_window(-1)

    def _window_value(self, logs):
        """The mean of the monitored value over the batches since the previous check.

        Keras logs hold the running mean since the epoch start (or the last metrics reset);
        differencing two running means gives the mean of the window in between.
        """
        value = self._lookup(logs)
        if value is None:
            return None
        count = self._last_batch - self._base
        total = count * value
        window = (total - self._prev_total) / max(count - self._prev_count, 1)
        self._prev_total, self._prev_count = total, count
        return window

    def _batch_end(self, batch, logs=None):
        self._steps_since_check += batch - self._last_batch
        self._last_batch = batch
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

    def _check(self, value, step, reset_metrics=True):
        if self.stopped:
            return
        check_guards(self.model.optimizer)
        if value is None:
            return
        diverged = not math.isfinite(value) or (
            self.best is not None and value > self.spike_factor * self.best
        )
        if not diverged:
            self.best = value if self.best is None else min(self.best, value)
            self._take_snapshot()
            return
        self._restore()
        where = f"epoch {self._epoch}" + ("" if step is None else f", step {step}")
        if len(self.recoveries) >= self.max_recoveries:
            self.stopped = True
            self.model.stop_training = True
            warnings.warn(
                f"DivergenceGuard: `{self.monitor}` diverged ({value:.4g}) at {where} after "
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
            self.model.reset_metrics()
            self._reset_window(step)
