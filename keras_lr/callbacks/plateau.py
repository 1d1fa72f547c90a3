"""`ReduceLROnPlateau` that also works when the optimizer holds a schedule."""

from __future__ import annotations

import math
import warnings

import keras

from keras_lr._validation import check_choice, check_float, check_int, check_open_interval, fail
from keras_lr.callbacks._lr import (
    FreshCopy,
    effective_learning_rate,
    multiply_learning_rate,
    target_optimizers,
)

__all__ = ["ReduceLROnPlateau"]


def _direction(model, monitor):
    """"min" or "max" for mode="auto", the way Keras's MonitorCallback decides it."""
    name = monitor.removeprefix("val_")
    if name == "loss":
        return "min"
    for metric in getattr(model, "metrics", []):
        for m in getattr(metric, "metrics", [metric]):
            if m.name == name and hasattr(m, "_direction"):
                return "max" if m._direction == "up" else "min"
    raise ValueError(
        f"ReduceLROnPlateau cannot tell whether `{monitor}` should be minimized or maximized. "
        "Pass mode='min' or mode='max'."
    )


class ReduceLROnPlateau(FreshCopy, keras.callbacks.Callback):
    """Lower the learning rate when a metric stops improving, schedules included.

    The arguments and the logic are Keras's `keras.callbacks.ReduceLROnPlateau` (wait
    `patience` epochs without improvement, multiply the rate by `factor`, never below
    `min_lr`, then `cooldown` epochs of rest), with two additions:

    * it works when the optimizer holds a `LearningRateSchedule`: the effective rate is
      lowered through the shared, saved `lr_scale` of keras-lr wrappers (`LRWrapper`,
      `GradientGuard`, `LayerwiseLR`), so the schedule keeps its shape and the reduction
      survives `model.save()` and `BackupAndRestore`. A plain optimizer with a float rate gets
      the rate assigned (as Keras does); a plain optimizer holding a schedule raises a
      `TypeError` that says to wrap it in `keras_lr.optimizers.LRWrapper`.
    * ``threshold_mode="rel"`` is PyTorch's relative threshold: with mode "min" an epoch
      improves when ``current < best * (1 - min_delta)`` ("max": ``current > best *
      (1 + min_delta)``). The default ``"abs"`` is Keras's ``current < best - min_delta``.

    Counting is Keras's: a reduction happens after `patience` epochs without improvement
    (PyTorch's ``patience=p`` waits ``p + 1`` epochs, so it is our ``patience=p + 1``), and
    the cooldown counter is decremented before the improvement test (PyTorch's ``cooldown=c``
    is our ``cooldown=c + 1`` when ``c > 0``).

    `min_lr` bounds the rate at the moment of a reduction; a schedule may decay it further
    afterwards. Rates are float32, so a rate within a relative 1e-6 of `min_lr` counts as at
    the floor (Keras compares with ``np.float32(min_lr)``), and a change smaller than 1e-8 of
    the rate (PyTorch's `eps`) is no reduction: neither prints a message nor starts a
    cooldown; `wait` keeps counting, as in Keras. With a `keras.optimizers.MultiOptimizer`
    every sub-optimizer is reduced. Writes ``learning_rate`` (the effective rate during the
    epoch, before any reduction, as Keras does) into the epoch logs.

    Args:
        monitor: the logs entry to watch (default "val_loss").
        factor: float in (0, 1), ``new_lr = lr * factor``.
        patience: int >= 0, epochs without improvement before a reduction.
        verbose: int, 1 prints a message on each reduction.
        mode: "auto", "min" or "max".
        min_delta: float >= 0, the threshold of a significant improvement.
        cooldown: int >= 0, epochs to wait after a reduction before counting again.
        min_lr: float >= 0, lower bound on the effective rate.
        threshold_mode: "abs" (Keras, default) or "rel" (PyTorch).

    Example:

    ```python
    opt = keras_lr.optimizers.LRWrapper(
        keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, 10_000)))
    model.compile(optimizer=opt, loss="mse")
    model.fit(x, y, validation_split=0.1, epochs=50,
              callbacks=[keras_lr.callbacks.ReduceLROnPlateau(factor=0.5, patience=3)])
    ```
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
        threshold_mode="abs",
    ):
        super().__init__()
        if not isinstance(monitor, str):
            fail("monitor", "must be a string", monitor, TypeError)
        self.monitor = monitor
        self.factor = check_open_interval("factor", factor, 0.0, 1.0)
        self.patience = check_int("patience", patience, minimum=0)
        self.verbose = check_int("verbose", verbose, minimum=0)
        self.mode = check_choice("mode", mode, ("auto", "min", "max"))
        self.min_delta = check_float("min_delta", min_delta, minimum=0.0)
        self.cooldown = check_int("cooldown", cooldown, minimum=0)
        self.min_lr = check_float("min_lr", min_lr, minimum=0.0)
        self.threshold_mode = check_choice("threshold_mode", threshold_mode, ("abs", "rel"))
        self._remember(monitor=monitor, factor=factor, patience=patience, verbose=verbose,
                       mode=mode, min_delta=min_delta, cooldown=cooldown, min_lr=min_lr,
                       threshold_mode=threshold_mode)
        self._reset()

    def _reset(self):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0
        self._direction = None

    def on_train_begin(self, logs=None):
        self._reset()
        for _, opt in target_optimizers(self.model.optimizer):
            # Refuse a plain optimizer holding a schedule now, not after `patience` epochs.
            multiply_learning_rate(opt, 1.0, caller="ReduceLROnPlateau")

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def is_improvement(self, current, best):
        """Whether `current` improves on `best` under `mode` and `threshold_mode`.

        The first finite value always does; NaN never does, so a NaN epoch counts as a bad
        one and never becomes a `best` that nothing could improve on (PyTorch's behaviour,
        whose `best` starts at inf; Keras 3.15's callback keeps a NaN first value as best).
        """
        if not math.isfinite(current):
            return False
        if best is None:
            return True
        d = self.min_delta
        if self._direction == "min":
            return current < (best * (1.0 - d) if self.threshold_mode == "rel" else best - d)
        return current > (best * (1.0 + d) if self.threshold_mode == "rel" else best + d)

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        if self._direction is None:
            self._direction = self.mode if self.mode != "auto" else _direction(
                self.model, self.monitor
            )
        # Like Keras: the rate used during this epoch, before any reduction.
        for suffix, opt in target_optimizers(self.model.optimizer):
            logs[f"learning_rate{suffix}"] = effective_learning_rate(opt)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"ReduceLROnPlateau is conditioned on `{self.monitor}`, which is not in the "
                f"logs. Available: {', '.join(logs)}.",
                stacklevel=2,
            )
        else:
            current = float(current)
            if self.in_cooldown():
                self.cooldown_counter -= 1
                self.wait = 0
            if self.is_improvement(current, self.best):
                self.best = current
                self.wait = 0
            elif not self.in_cooldown():
                self.wait += 1
                if self.wait >= self.patience and self._reduce(epoch):
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    def _reduce(self, epoch):
        reduced = False
        for suffix, opt in target_optimizers(self.model.optimizer):
            # Keras's `old_lr > np.float32(min_lr)`, with a float32 tolerance and PyTorch's
            # `eps`: a rate already at `min_lr` is left alone (no message, no cooldown).
            old, new = multiply_learning_rate(
                opt, self.factor, min_lr=self.min_lr, caller="ReduceLROnPlateau"
            )
            if not new < old:
                continue
            reduced = True
            if self.verbose:
                print(
                    f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate"
                    f"{suffix.replace('_', ' ', 1)} to {new:.6g}."
                )
        return reduced
