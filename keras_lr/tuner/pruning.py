"""`DivergencePruning`: end a KerasTuner trial as soon as its loss diverges.

KerasTuner has no pruning besides Hyperband's rounds: a trial whose rate is far too high trains
all its epochs on a NaN or exploding loss. This callback stops it inside the first bad batch
and reports it as a **completed, worst-scored** trial (not a failed one), because:

* a failed trial counts towards the oracle's ``max_consecutive_failed_trials`` (3 by default),
  and a search over a wide range of rates, where many legitimately diverge, would be killed
  (in distributed mode the chief would then never exit);
* the Bayesian oracle and Hyperband learn only from completed trials: a completed trial with
  a bad score teaches them to stay away from diverging rates, a failed one teaches nothing;
* the score must be finite: KerasTuner turns a NaN score into an invalid (then failed)
  trial, and the Bayesian oracle maps infinities to 0, which would read as a perfect loss.

The pruned epoch's logs are rewritten in place before KerasTuner's callbacks and `History` see
them, so every metric of that epoch reads as a finite penalty:

* a metric KerasTuner maximizes (accuracy, AUC, ...): ``min(0, worst value it logged in the
  trial's earlier epochs)``, i.e. 0 for accuracies;
* any other metric (losses, errors): ``spike_factor * max(first batch loss, worst value it
  logged in the trial's earlier epochs)`` (for a 10-class classifier pruned in its first
  epoch: ``10 * ln(10) = 23``).

KerasTuner scores a trial by its best epoch. A trial pruned in its first epoch therefore gets
the penalty score (the worst of the search); one that trained well for some epochs and then
diverged keeps the score of its best epoch, whose weights KerasTuner's checkpoint holds. Every
epoch also logs ``pruned`` (1.0 for the pruned epoch, else 0.0), which the trial summary shows.

Reference:
    The smoothed, debiased loss is the one of the range test: Smith, "Cyclical Learning Rates
    for Training Neural Networks", WACV 2017, https://arxiv.org/abs/1506.01186.
"""

from __future__ import annotations

import math
import warnings

import keras

from keras_lr._validation import check_float, check_int, fail
from keras_lr.callbacks._lr import FreshCopy

__all__ = ["DivergencePruning", "penalty"]


def penalty(name: str, worst: float | None, first_loss: float, spike_factor: float) -> float:
    """The finite value a pruned epoch logs for metric `name` (see the module docstring).

    Args:
        name: the logs key, e.g. ``"val_accuracy"``.
        worst: the metric's worst value in the trial's earlier epochs (None if none).
        first_loss: the loss of the trial's first training batch.
        spike_factor: the pruning factor.

    Example:
        >>> penalty("val_loss", None, 2.3, 10.0)
        23.0
        >>> penalty("val_accuracy", 0.4, 2.3, 10.0)
        0.0
    """
    from keras_tuner.engine.metrics_tracking import infer_metric_direction

    if infer_metric_direction(name) == "max":
        return min(0.0, worst) if worst is not None else 0.0
    reference = first_loss if worst is None else max(first_loss, worst)
    return spike_factor * reference


class DivergencePruning(FreshCopy, keras.callbacks.Callback):
    """Stop a trial whose training loss becomes non-finite or explodes; score it worst.

    After every call of the train function (every batch, or every `steps_per_execution`
    batches) the mean loss of the batches since the previous check (recovered from Keras's
    running mean) updates a smoothed loss, as the range test does::

        avg = smoothing * avg + (1 - smoothing) * loss
        smoothed = avg / (1 - smoothing ** n)          # n batches so far

    The trial is pruned (``model.stop_training = True``, inside the epoch) when

    * the loss is NaN or infinite (at once: the weights are then NaN for good), or
    * ``smoothed > spike_factor * best`` (``best``: the lowest smoothed loss so far) at
      `patience` consecutive checks.

    At the end of every epoch a non-finite value anywhere in the logs (e.g. ``val_loss``)
    prunes the trial too. The pruned epoch's logs then carry the penalty values described in
    `keras_lr.tuner.pruning` (a finite, worst score; the trial ends as COMPLETED and never
    counts towards ``max_consecutive_failed_trials``). `LRHyperModel` adds one to every
    trial; with your own hypermodel pass one to ``tuner.search(callbacks=[...])`` (KerasTuner
    deep-copies it per trial; a copy starts fresh).

    Args:
        patience: int >= 1, consecutive spiking checks before pruning.
        spike_factor: float > 1, how far above its best the smoothed loss may go.
        smoothing: float in [0, 1), the smoothing coefficient (0: raw batch means).
        verbose: 1 prints one line when a trial is pruned, 0 is silent.

    Attributes:
        pruned: True once the trial was pruned.
        pruned_at: ``(epoch, batch)`` of the pruning (0-based; batch None at an epoch end).
        reason: why, e.g. ``"loss is nan"``.
        epochs_run: epochs that ran (the pruned one included).
        raw_logs: the pruned epoch's logs before they were replaced by penalties.

    Example:

    ```python
    tuner = keras_tuner.RandomSearch(build, objective="val_accuracy", max_trials=20)
    tuner.search(x, y, epochs=10, validation_data=(x_val, y_val),
                 callbacks=[keras_lr.tuner.DivergencePruning()])
    ```
    """

    def __init__(self, patience=1, spike_factor=10.0, smoothing=0.98, verbose=1):
        super().__init__()
        self.patience = check_int("patience", patience, minimum=1)
        self.spike_factor = check_float("spike_factor", spike_factor, minimum=1.0, strict=True)
        self.smoothing = check_float("smoothing", smoothing, minimum=0.0)
        if not self.smoothing < 1.0:
            fail("smoothing", "must be < 1", smoothing)
        self.verbose = check_int("verbose", verbose, minimum=0)
        self._remember(patience=patience, spike_factor=spike_factor, smoothing=smoothing,
                       verbose=verbose)
        self._reset()

    def _reset(self):
        self.pruned = False
        self.pruned_at = None
        self.reason = None
        self.epochs_run = 0
        self.raw_logs = None
        self.best = None
        self._warned = False
        self._first_loss = None
        self._worst = {}
        self._avg = 0.0
        self._count = 0
        self._bad = 0
        self._epoch = 0
        self._start_window()

    def _start_window(self):
        self._prev_total = 0.0
        self._prev_count = 0

    # ------------------------------------------------------------------ training hooks
    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start_window()

    def on_train_batch_end(self, batch, logs=None):
        if self.pruned:
            return
        if not logs or "loss" not in logs:
            if not self._warned:
                self._warned = True
                warnings.warn("DivergencePruning: the batch logs have no `loss` entry "
                              f"(available: {sorted(logs or {})}); batches are not checked.",
                              stacklevel=2)
            return
        count = batch + 1  # Keras logs the running mean over the epoch's batches 0..batch
        total = float(logs["loss"]) * count
        steps = count - self._prev_count
        if steps <= 0:
            return
        loss = (total - self._prev_total) / steps
        self._prev_total, self._prev_count = total, count
        if not math.isfinite(loss):
            self._prune(f"loss is {loss}", batch)
            return
        if self._first_loss is None:
            self._first_loss = loss
        decay = self.smoothing ** steps
        self._avg = decay * self._avg + (1.0 - decay) * loss
        self._count += steps
        smoothed = self._avg / (1.0 - self.smoothing ** self._count)
        if self.best is not None and self.best > 0 and smoothed > self.spike_factor * self.best:
            self._bad += 1
            if self._bad >= self.patience:
                self._prune(f"smoothed loss {smoothed:.4g} > {self.spike_factor:g} x best "
                            f"{self.best:.4g}", batch)
            return
        self._bad = 0
        self.best = smoothed if self.best is None else min(self.best, smoothed)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_run += 1
        if logs is None:
            return
        numbers = {k: float(v) for k, v in logs.items() if _is_number(v)}
        if not self.pruned:
            bad = sorted(k for k, v in numbers.items() if not math.isfinite(v))
            if bad:
                self._prune(f"{bad[0]} is {numbers[bad[0]]}", None)
        pruned_now = self.pruned and self.pruned_at[0] == epoch
        if pruned_now:
            self.raw_logs = dict(logs)
            first = self._first_loss if self._first_loss is not None else 1.0
            for key in numbers:  # the diverged values themselves never set the penalty
                logs[key] = penalty(key, self._worst.get(key), first, self.spike_factor)
        else:
            for key, value in numbers.items():
                self._note(key, value)
        logs["pruned"] = 1.0 if pruned_now else 0.0

    # ------------------------------------------------------------------ helpers
    def _note(self, key, value):
        """Remember the worst finite value of each metric (in KerasTuner's direction)."""
        from keras_tuner.engine.metrics_tracking import infer_metric_direction

        worst = self._worst.get(key)
        if infer_metric_direction(key) == "max":
            self._worst[key] = value if worst is None else min(worst, value)
        else:
            self._worst[key] = value if worst is None else max(worst, value)

    def _prune(self, reason, batch):
        self.pruned = True
        self.pruned_at = (self._epoch, batch)
        self.reason = reason
        if self.model is not None:
            self.model.stop_training = True
        if self.verbose:
            where = f"epoch {self._epoch + 1}" + ("" if batch is None else f", batch {batch + 1}")
            print(f"DivergencePruning: trial pruned at {where}: {reason}")


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)
