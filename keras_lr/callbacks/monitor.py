"""`LRMonitor`: write the real learning rate (and guard counters) into the training logs."""

from __future__ import annotations

import keras
from keras import ops

from keras_lr._validation import check_choice
from keras_lr.callbacks._lr import (
    FreshCopy,
    check_guards,
    effective_learning_rate,
    target_optimizers,
)
from keras_lr.optimizers.base import base_optimizer, find_lr_scale, unwrap

__all__ = ["LRMonitor", "learning_rate_logs"]


def _layerwise_entries(optimizer, rate):
    """``{"learning_rate/x<m>": rate * m}`` per distinct multiplier of a LayerwiseLR."""
    from keras_lr.optimizers.layerwise import LayerwiseLR

    entries = {}
    for opt in unwrap(optimizer):
        if not isinstance(opt, LayerwiseLR) or not opt.built:
            continue
        for row in opt.describe(print_fn=None):
            multiplier = row.multiplier
            if hasattr(multiplier, "shape") and getattr(multiplier, "ndim", 0) > 0:
                # Per-unit arrays: one entry per rule, at the largest multiplier.
                entries[f"learning_rate/{row.rule}"] = rate * float(multiplier.max())
            else:
                entries[f"learning_rate/x{float(multiplier):g}"] = rate * float(multiplier)
    return entries


def learning_rate_logs(optimizer) -> dict:
    """The entries `LRMonitor` writes, as a dict of Python numbers.

    * ``learning_rate``: the schedule (or float rate) at the optimizer's current step, times the
      shared `lr_scale` of keras-lr wrappers; ``lr_scale`` itself when there is one;
    * with `LayerwiseLR`: ``learning_rate/x<m>`` for every distinct multiplier `m` (per-unit
      array multipliers: ``learning_rate/<rule>`` at the largest value);
    * with `ScheduledMomentum`: ``momentum``, the momentum (or ``beta_1``) of the last step;
    * with a learning-rate-free optimizer (`Prodigy`, `DAdaptAdam`): ``d``, its estimate,
      and ``effective_learning_rate``, ``d x learning_rate``;
    * with `GradientGuard`: ``grad_norm`` (global gradient norm of the last step, before
      clipping), ``clipped_steps`` and ``skipped_steps`` (totals since the guard was built).

    With a `keras.optimizers.MultiOptimizer`, every entry is written once per sub-optimizer,
    its name suffixed like Keras's and `ReduceLROnPlateau`'s per-optimizer keys:
    ``learning_rate_<name>``, ``lr_scale_<name>``, ``learning_rate_<name>/x<m>``,
    ``grad_norm_<name>``, ...
    """
    logs = {}
    for suffix, opt in target_optimizers(optimizer):
        for key, value in _single_logs(opt).items():
            head, sep, tail = key.partition("/")
            logs[f"{head}{suffix}{sep}{tail}"] = value
    return logs


def _single_logs(optimizer):
    """`learning_rate_logs` of one optimizer chain (not a MultiOptimizer)."""
    from keras_lr.guards.guard import find_guard

    rate = effective_learning_rate(optimizer)
    logs = {"learning_rate": rate}
    scale = find_lr_scale(optimizer)
    if scale is not None:
        logs["lr_scale"] = float(ops.convert_to_numpy(scale))
    estimate = getattr(base_optimizer(optimizer), "lr_estimate", None)
    if estimate is not None:
        # A learning-rate-free optimizer (Prodigy, DAdaptAdam) steps with estimate x rate.
        logs["d"] = float(ops.convert_to_numpy(estimate))
        logs["effective_learning_rate"] = rate * logs["d"]
    logs.update(_layerwise_entries(optimizer, rate))
    from keras_lr.optimizers.momentum import current_momentum

    momentum = current_momentum(optimizer)
    if momentum is not None:
        logs["momentum"] = momentum
    guard = find_guard(optimizer)
    if guard is not None:
        stats = guard.stats()
        logs.update(
            grad_norm=stats["grad_norm"],
            clipped_steps=stats["clipped_steps"],
            skipped_steps=stats["skipped_steps"],
        )
    return logs


class LRMonitor(FreshCopy, keras.callbacks.Callback):
    """Record the real learning rate in `logs`, so History and TensorBoard see it.

    Writes the entries of `learning_rate_logs` (``learning_rate``; per-group rates of
    `LayerwiseLR`; ``grad_norm``, ``clipped_steps``, ``skipped_steps`` of `GradientGuard`)
    into the logs at the end of every epoch, or of every batch with ``every="batch"``.
    It also calls `GradientGuard.check()`, which raises `NonFiniteGradientsError` once a guard
    reached `max_consecutive_skips` (the host-side check that XLA needs).

    Ordering: Keras appends its own `History` after the user's callbacks, so History always
    sees these entries; list `LRMonitor` *before* `keras.callbacks.TensorBoard` (or
    `CSVLogger`) in `callbacks=[...]` so that they see them too. Caveat: Keras's TensorBoard
    overwrites ``learning_rate`` in its own copy of the logs with the innermost optimizer's
    rate, which leaves out `lr_scale`; the real rate is ``learning_rate x lr_scale`` there
    (History and CSVLogger get the real rate).

    Cost: ``every="epoch"`` reads a few scalars once per epoch and keeps Keras's asynchronous
    batch dispatch. ``every="batch"`` reads them after every call of the train function (every
    `steps_per_execution` steps), which is a host synchronisation per call.

    Args:
        every: "epoch" (default) or "batch".

    Example:

    ```python
    history = model.fit(x, y, epochs=10, callbacks=[keras_lr.callbacks.LRMonitor(),
                                                    keras.callbacks.TensorBoard("logs")])
    history.history["learning_rate"]
    ```
    """

    def __init__(self, every="epoch"):
        super().__init__()
        self.every = check_choice("every", every, ("epoch", "batch"))
        self._remember(every=every)
        if self.every == "batch":
            # Defined per instance so that the epoch mode keeps Keras's async batch dispatch.
            self.on_train_batch_end = self._write

    def _write(self, batch, logs=None):
        if logs is None:
            return
        optimizer = self.model.optimizer
        check_guards(optimizer)
        logs.update(learning_rate_logs(optimizer))

    def on_epoch_end(self, epoch, logs=None):
        self._write(epoch, logs)
