"""`LRScheduler`: drive the float rate of an optimizer from any schedule, per epoch or step."""

from __future__ import annotations

import keras
from keras import ops

from keras_lr._validation import check_choice, check_int, fail
from keras_lr.callbacks._lr import (
    FreshCopy,
    effective_learning_rate,
    holds_schedule,
    target_optimizers,
)
from keras_lr.optimizers.base import base_optimizer

__all__ = ["LRScheduler"]


class LRScheduler(FreshCopy, keras.callbacks.Callback):
    """The callback form of a schedule, for optimizers that keep a float rate.

    Before each epoch (``unit="epoch"``) or each call of the train function (``unit="step"``)
    the callback evaluates the schedule and assigns the rate::

        unit="epoch":  optimizer.learning_rate = schedule(epoch)          # epoch from 0
        unit="step":   optimizer.learning_rate = schedule(optimizer.iterations)

    This is PyTorch's ``scheduler.step()`` once per epoch, in callback form: epoch 0 runs at
    ``schedule(0)``. Use it when the schedule cannot live inside the optimizer: a model compiled
    elsewhere, or each sub-optimizer of a `keras.optimizers.MultiOptimizer` (the default target
    is every sub-optimizer; pass `optimizer=` to drive just one, one `LRScheduler` each).
    Prefer putting the schedule in the optimizer otherwise: it is evaluated in graph every step.

    With ``unit="step"`` and ``steps_per_execution=k`` the rate is assigned once per train-
    function call and held for its `k` steps (a host read of `iterations` per call). A keras-lr
    wrapper's `lr_scale` still multiplies the assigned rate. The effective rate is written to
    the epoch logs as ``learning_rate`` (``learning_rate_<name>`` per sub-optimizer).

    Args:
        schedule: a `keras.optimizers.schedules.LearningRateSchedule` (keras-lr schedules
            included) or a callable ``index -> float``.
        unit: "epoch" (default) or "step".
        optimizer: optional `keras.optimizers.Optimizer` to drive (default: the model's
            optimizer, or every sub-optimizer of a MultiOptimizer). It must hold a float
            rate; anything else but None (a string such as "adam") raises a `TypeError`.
        verbose: int, 1 prints the rate at each epoch start.

    Example:

    ```python
    # torch: StepLR(opt, step_size=30, gamma=0.1), scheduler.step() once per epoch
    sched = keras_lr.schedules.StepDecay(0.1, step_size=30, gamma=0.1)
    model.fit(x, y, epochs=90, callbacks=[keras_lr.callbacks.LRScheduler(sched)])
    ```
    """

    _shared_arguments = ("optimizer",)

    def __init__(self, schedule, unit="epoch", optimizer=None, verbose=0):
        super().__init__()
        if not callable(schedule):
            fail("schedule", "must be a LearningRateSchedule or a callable", schedule,
                 TypeError)
        self.schedule = schedule
        self.unit = check_choice("unit", unit, ("epoch", "step"))
        if optimizer is not None and not isinstance(optimizer, keras.optimizers.Optimizer):
            fail("optimizer", "must be a `keras.optimizers.Optimizer` or None", optimizer,
                 TypeError)
        self.optimizer = optimizer
        self.verbose = check_int("verbose", verbose, minimum=0)
        self._remember(schedule=schedule, unit=unit, optimizer=optimizer, verbose=verbose)

    def _targets(self):
        # `self.model` first, always: on JAX reading it syncs the training state back into the
        # variables (mid-epoch they are empty), so that an `optimizer=` given by reference is
        # read and assigned for real (an assignment through it is otherwise lost).
        model = self.model
        if self.optimizer is not None:
            return [("", self.optimizer)]
        return target_optimizers(model.optimizer)

    def on_train_begin(self, logs=None):
        for _, opt in self._targets():
            if holds_schedule(opt):
                raise TypeError(
                    f"LRScheduler assigns a float rate, but {type(opt).__name__} "
                    f"{opt.name!r} holds a learning-rate schedule already. Either give the "
                    "optimizer a float rate, or drop this callback and keep the schedule in "
                    "the optimizer."
                )

    def _assign(self, index):
        rate = float(ops.convert_to_numpy(self.schedule(index)))
        for _, opt in self._targets():
            base_optimizer(opt).learning_rate = rate
        return rate

    def on_epoch_begin(self, epoch, logs=None):
        if self.unit != "epoch":
            return
        rate = self._assign(epoch)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LRScheduler setting learning rate to {rate:.6g}.")

    def on_train_batch_begin(self, batch, logs=None):
        if self.unit != "step":
            return
        targets = self._targets()  # (syncs the JAX state first)
        iterations = targets[0][1].iterations if self.optimizer is not None else (
            self.model.optimizer.iterations
        )
        self._assign(int(ops.convert_to_numpy(iterations)))

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for suffix, opt in self._targets():
            logs[f"learning_rate{suffix}"] = effective_learning_rate(opt)
