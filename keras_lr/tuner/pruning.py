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
them, so every metric of that epoch reads as a finite penalty, **the worst value in the
direction the tuner optimizes it**. That direction comes, in this order, from

1. the objective of the KerasTuner tuner running the trial (``tuner.oracle.objective``: a
   ``keras_tuner.Objective``, or each of a list of them), which the callback finds on the call
   stack when its ``on_train_begin`` runs inside a tuner's trial;
2. the callback's `objective` argument (for a plain ``model.fit``, or a tuner it cannot find);
3. KerasTuner's guess from the name (``accuracy``, ``auc``, ... "max"; losses and errors
   "min"); a name it cannot guess (a custom metric) counts as "min".

A direction given for ``val_x`` also holds for ``x`` and the other way round. With ``first``
the metric's value at the trial's first checked batch (for a validation metric, the value of
its training counterpart; for a "min" metric without one, the first batch loss) and ``worst``
its worst value in the trial's earlier epochs, the penalty is

* for a metric to maximize: ``spike_factor * min(0, first, worst)``, i.e. 0 for accuracies
  and other scores >= 0, and ``spike_factor`` times as far below 0 for a score that starts
  negative (an R2 of -1.2 gives -12);
* for a metric to minimize: ``base + (spike_factor - 1) * abs(base)`` with
  ``base = max(first, worst)``, i.e. ``spike_factor * base`` for a positive loss (for a
  10-class classifier pruned in its first epoch: ``10 * ln(10) = 23``) and above 0 for a
  negative one (a cosine-similarity loss starting at -0.5 gives 4).

The values logged by the diverged epoch itself never set the penalty (they may be NaN or
astronomically large; a score such as 1e30 would swamp the Bayesian oracle's normalized model
of the scores). The penalty is thus ``spike_factor`` times (at least) as bad as the untrained
model's value; a real trial worse still would rank below the pruned one. A metric to maximize
with no reference (a trial whose very first batch is NaN) gets 0.

KerasTuner scores a trial by its best epoch. A trial pruned in its first epoch therefore gets
the penalty score (the worst of the search); one that trained well for some epochs and then
diverged keeps the score of its best epoch, whose weights KerasTuner's checkpoint holds. Every
epoch also logs ``pruned`` (1.0 for the pruned epoch, else 0.0), which the trial summary shows.

Reference:
    The smoothed, debiased loss is the one of the range test: Smith, "Cyclical Learning Rates
    for Training Neural Networks", WACV 2017, https://arxiv.org/abs/1506.01186.
"""

from __future__ import annotations

import inspect
import math
import warnings

import keras

from keras_lr._validation import check_float, check_int, fail
from keras_lr.callbacks._lr import FreshCopy

__all__ = ["DivergencePruning", "loss_ceiling", "objective_directions", "penalty"]


def penalty(name: str, worst: float | None, first: float | None, spike_factor: float,
            direction: str | None = None) -> float:
    """The finite value a pruned epoch logs for metric `name` (see the module docstring).

    The result is worse than `first` and `worst` in `direction`, by a margin that grows
    with their magnitude, whatever their sign.

    Args:
        name: the logs key, e.g. ``"val_accuracy"``.
        worst: the metric's worst value in the trial's earlier epochs (None if none).
        first: the metric's value at the trial's first checked batch (for a "min" metric
            without one, the first batch loss; None if unknown).
        spike_factor: the pruning factor.
        direction: ``"min"`` or ``"max"``, the direction the tuner optimizes the metric in;
            None guesses it from `name` as KerasTuner does ("min" when it cannot).

    Example:
        >>> penalty("val_loss", None, 2.3, 10.0)
        23.0
        >>> penalty("val_accuracy", 0.4, 0.1, 10.0)
        0.0
        >>> penalty("val_loss", None, -0.5, 10.0)  # a negative loss: cosine similarity
        4.0
        >>> penalty("val_r2", None, -1.2, 10.0, direction="max")
        -12.0
    """
    if direction is None:
        direction = _guess_direction(name)
    if direction not in ("min", "max"):
        fail("direction", "must be one of 'min', 'max', None", direction)
    known = [value for value in (first, worst) if value is not None]
    if direction == "max":  # base <= 0: base - (spike_factor - 1) * abs(base)
        return spike_factor * min([0.0, *known])
    base = max(known) if known else 1.0  # base + (spike_factor - 1) * abs(base):
    return spike_factor * base if base >= 0 else (2.0 - spike_factor) * base


def _guess_direction(name: str) -> str:
    """KerasTuner's direction for metric `name`; "min" when it cannot tell."""
    from keras_tuner.engine.metrics_tracking import infer_metric_direction

    return "max" if infer_metric_direction(name) == "max" else "min"


def _counterpart(name: str) -> str:
    """``val_x`` for ``x`` and ``x`` for ``val_x``."""
    return name[len("val_"):] if name.startswith("val_") else "val_" + name


def objective_directions(objective, name: str = "objective") -> dict[str, str]:
    """``{metric name: "min" | "max"}`` for a KerasTuner objective.

    Args:
        objective: what KerasTuner's tuners accept as `objective`: a metric name whose
            direction KerasTuner can guess (``"val_accuracy"``), a ``keras_tuner.Objective``,
            a list of these, or a multi-objective (anything with ``objectives``); None gives
            ``{}``.
        name: the argument's name, for the error messages.

    Raises:
        TypeError: `objective` is none of these.
        ValueError: a name whose direction cannot be guessed, or a direction other than
            "min" and "max".

    Example:
        >>> import keras_tuner as kt
        >>> objective_directions([kt.Objective("val_my_score", "max"), "val_loss"])
        {'val_my_score': 'max', 'val_loss': 'min'}
    """
    from keras_tuner.engine.metrics_tracking import infer_metric_direction

    if objective is None:
        return {}
    if isinstance(objective, str):
        direction = infer_metric_direction(objective)
        if direction is None:
            fail(name, "must give the direction of a custom metric, e.g. "
                 f"keras_tuner.Objective({objective!r}, direction='max')", objective)
        return {objective: direction}
    objectives = getattr(objective, "objectives", None)
    if objectives is None and isinstance(objective, (list, tuple)):
        objectives = objective
    if objectives is not None:
        directions = {}
        for item in objectives:
            directions.update(objective_directions(item, name))
        return directions
    metric, direction = getattr(objective, "name", None), getattr(objective, "direction", None)
    if not isinstance(metric, str):
        fail(name, "must be a metric name, a keras_tuner.Objective or a list of them",
             objective, TypeError)
    if direction not in ("min", "max"):
        fail(name, "must have direction 'min' or 'max'", objective)
    return {metric: direction}


def running_tuner_objective():
    """The objective of the KerasTuner tuner whose trial calls this, or None.

    KerasTuner gives callbacks no handle on the tuner: this looks for one as ``self`` of a
    calling frame (``Tuner.run_trial`` and ``_build_and_fit_model`` are methods of it; with
    distributed tuning the worker's oracle client forwards ``objective``).
    """
    try:
        from keras_tuner.engine.base_tuner import BaseTuner
    except ImportError:  # pragma: no cover - KerasTuner is optional
        return None
    frame = inspect.currentframe()
    try:
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, BaseTuner):
                return getattr(getattr(owner, "oracle", None), "objective", None)
            frame = frame.f_back
        return None
    finally:
        del frame


class DivergencePruning(FreshCopy, keras.callbacks.Callback):
    """Stop a trial whose training loss becomes non-finite or explodes; score it worst.

    After every call of the train function (every batch, or every `steps_per_execution`
    batches) the mean loss of the batches since the previous check (recovered from Keras's
    running mean) updates a smoothed loss, as the range test does::

        avg = smoothing * avg + (1 - smoothing) * loss
        smoothed = avg / (1 - smoothing ** n)          # n batches so far

    The trial is pruned (``model.stop_training = True``, inside the epoch) when

    * the loss is NaN or infinite (at once: the weights are then NaN for good), or
    * ``smoothed > threshold`` at `patience` consecutive checks, where ``best`` is the lowest
      smoothed loss so far and::

          threshold = spike_factor * best                                  # any loss
          threshold = min(spike_factor * best, best + (ceiling - best) / 3)  # clipped losses

    A crossentropy on probabilities (``from_logits=False``: Keras's sparse, categorical and
    binary crossentropies, by name or instance) clips the probabilities at
    ``keras.config.epsilon()``, so no sample can cost more than ``ceiling = -log(epsilon)``
    (16.1 at the default 1e-7). A model whose rate is far too high saturates there: its
    softmax puts all the mass on one class per sample and each wrong sample costs the
    ceiling, with zero gradient: the loss settles, finite, at the fraction of wrong samples
    times the ceiling (measured on JAX: 7.5 for a 3-class MLP at SGD(1e4), a third of the
    way up is 6.1), never 10x an untrained loss of ``log(classes)``. On JAX and torch Keras
    always computes these losses from the clipped probabilities; on TensorFlow it uses the
    softmax's logits when it can (unbounded), and the same rule keeps the decisions the
    same on every backend. A loss a third of the way from the best to the ceiling means
    that at least a third of the predictions are confidently wrong.

    At the end of every epoch a non-finite value anywhere in the logs (e.g. ``val_loss``)
    prunes the trial too. The pruned epoch's logs then carry the penalty values described in
    `keras_lr.tuner.pruning`: finite, and the worst values in the direction the tuner
    optimizes each metric in (taken from the running tuner's objective, else from
    `objective`, else guessed from the name), so the trial ends as COMPLETED with the worst
    score and never counts towards ``max_consecutive_failed_trials``. `LRHyperModel` adds one to every
    trial; with your own hypermodel pass one to ``tuner.search(callbacks=[...])`` (KerasTuner
    deep-copies it per trial; a copy starts fresh).

    Args:
        patience: int >= 1, consecutive spiking checks before pruning.
        spike_factor: float > 1, how far above its best the smoothed loss may go.
        smoothing: float in [0, 1), the smoothing coefficient (0: raw batch means).
        verbose: 1 prints one line when a trial is pruned, 0 is silent.
        objective: the objective the penalties must be worst for, as KerasTuner's tuners take
            it: a metric name, a ``keras_tuner.Objective`` such as
            ``Objective("val_my_score", "max")``, or a list of them. Only needed where the
            callback cannot find the tuner (a plain ``model.fit``): inside a tuner's trial
            the tuner's own objective is used (and wins over this one). None (default):
            directions are guessed from the metric names, a custom name counting as "min".

    Attributes:
        pruned: True once the trial was pruned.
        pruned_at: ``(epoch, batch)`` of the pruning (0-based; batch None at an epoch end).
        reason: why, e.g. ``"loss is nan"``.
        epochs_run: epochs that ran (the pruned one included).
        raw_logs: the pruned epoch's logs before they were replaced by penalties.
        ceiling: the loss's ceiling (`loss_ceiling` of the compiled loss) or None.
        directions: ``{metric name: "min" | "max"}`` from the tuner's objective and
            `objective` (set when training begins).

    Example:

    ```python
    tuner = keras_tuner.RandomSearch(build, objective="val_accuracy", max_trials=20)
    tuner.search(x, y, epochs=10, validation_data=(x_val, y_val),
                 callbacks=[keras_lr.tuner.DivergencePruning()])
    ```
    """

    def __init__(self, patience=1, spike_factor=10.0, smoothing=0.98, verbose=1,
                 objective=None):
        super().__init__()
        self.patience = check_int("patience", patience, minimum=1)
        self.spike_factor = check_float("spike_factor", spike_factor, minimum=1.0, strict=True)
        self.smoothing = check_float("smoothing", smoothing, minimum=0.0)
        if not self.smoothing < 1.0:
            fail("smoothing", "must be < 1", smoothing)
        self.verbose = check_int("verbose", verbose, minimum=0)
        self.objective = objective
        self._given = objective_directions(objective)
        self._remember(patience=patience, spike_factor=spike_factor, smoothing=smoothing,
                       verbose=verbose, objective=objective)
        self._reset()

    def _reset(self):
        self.pruned = False
        self.pruned_at = None
        self.reason = None
        self.epochs_run = 0
        self.raw_logs = None
        self.best = None
        self.ceiling = None
        self._warned = False
        self._first_loss = None
        self._first = {}
        self._worst = {}
        self.directions = dict(self._given)
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
        self.directions.update(objective_directions(running_tuner_objective(), "objective"))
        self.ceiling = loss_ceiling(getattr(self.model, "loss", None))

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
            self._first = {k: float(v) for k, v in logs.items()
                           if _is_number(v) and math.isfinite(float(v))}
            self._first["loss"] = loss
        decay = self.smoothing ** steps
        self._avg = decay * self._avg + (1.0 - decay) * loss
        self._count += steps
        smoothed = self._avg / (1.0 - self.smoothing ** self._count)
        if self.best is not None and self.best > 0 and smoothed > self._threshold():
            self._bad += 1
            if self._bad >= self.patience:
                self._prune(self._spike_reason(smoothed), batch)
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
            for key in numbers:  # the diverged values themselves never set the penalty
                direction = self._direction(key)
                first = self._first.get(key, self._first.get(_counterpart(key)))
                if first is None and direction == "min":
                    first = self._first_loss if self._first_loss is not None else 1.0
                logs[key] = penalty(key, self._worst.get(key), first, self.spike_factor,
                                    direction)
        else:
            for key, value in numbers.items():
                self._note(key, value)
        logs["pruned"] = 1.0 if pruned_now else 0.0

    # ------------------------------------------------------------------ helpers
    def _threshold(self):
        spike = self.spike_factor * self.best
        if self.ceiling is None or self.best >= self.ceiling:
            return spike
        return min(spike, self.best + (self.ceiling - self.best) / 3.0)

    def _spike_reason(self, smoothed):
        if self._threshold() < self.spike_factor * self.best:
            return (f"smoothed loss {smoothed:.4g} > a third of the way from best "
                    f"{self.best:.4g} to the clipped crossentropy's ceiling "
                    f"{self.ceiling:.4g} (saturated predictions)")
        return f"smoothed loss {smoothed:.4g} > {self.spike_factor:g} x best {self.best:.4g}"

    def _direction(self, key):
        """"min" or "max": the tuner's direction for metric `key` (see the module docstring)."""
        direction = self.directions.get(key, self.directions.get(_counterpart(key)))
        return direction if direction is not None else _guess_direction(key)

    def _note(self, key, value):
        """Remember the worst finite value of each metric (in the tuner's direction)."""
        worst = self._worst.get(key)
        if self._direction(key) == "max":
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


_PROBABILITY_LOSSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
}


def loss_ceiling(loss):
    """``-log(keras.config.epsilon())`` for a crossentropy on probabilities, else None.

    Keras clips the probabilities of these losses at ``epsilon``, so one sample costs at most
    the ceiling. A loss given by name, or as an instance with ``from_logits=False``, has one;
    logits, other losses, and several losses (a dict or list, one per output) have none.

    Example:
        >>> round(loss_ceiling("sparse_categorical_crossentropy"), 2)
        16.12
        >>> loss_ceiling(keras.losses.SparseCategoricalCrossentropy(from_logits=True)) is None
        True
    """
    if isinstance(loss, str):
        known = loss in _PROBABILITY_LOSSES
    else:
        known = (isinstance(loss, tuple(_PROBABILITY_LOSSES.values()))
                 and not getattr(loss, "from_logits", True))
    return -math.log(keras.config.epsilon()) if known else None


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)
