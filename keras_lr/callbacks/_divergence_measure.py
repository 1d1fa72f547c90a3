"""What `DivergenceGuard` measures: the monitored metric's window means and the best so far.

`Baseline` is the guard's bar: the lowest value of a moving average of the checked values,
and the rise of a value above it in units of its scale. `find_mean_metric` finds the Keras
mean metric that step checks read (its running ``total`` and ``count``), `Window` turns those
running sums into the mean over the steps since the previous check, and `check_logged_mean`
warns once when the logs disagree with that metric (a custom ``train_step``).
"""

from __future__ import annotations

import math
import warnings

import keras
import numpy as np

__all__ = ["SCALE_FLOOR", "SMOOTHING_STEPS", "WARMUP_STEPS", "Baseline", "Window",
           "check_logged_mean", "find_mean_metric", "host"]

SMOOTHING_STEPS = 20.0
"""Time constant, in training steps, of the moving average whose lowest value is `best`."""
SCALE_FLOOR = 0.02
"""Rises are measured against ``max(|best|, SCALE_FLOOR * |first checked value|)``: a loss
that has fallen close to 0 (a training loss late in training) varies by large factors that
are no divergence (0.001 to 0.004 is 4x)."""
WARMUP_STEPS = SMOOTHING_STEPS
"""`best` is set once the average covers this many steps (epoch checks: at once). Before, with
snapshot_every=1 the first batch of a `fit` became the best, and the batches after it
"diverged" from it (measured: 10 recoveries in 2 epochs of healthy Adam 1e-3 training)."""


def host(value):
    """A metric result as a Python float (scalars) or a NumPy array, as Keras logs it."""
    value = np.asarray(keras.ops.convert_to_numpy(value))
    return float(value) if value.ndim == 0 else value


class Baseline:
    """The best so far of the checked values, and a value's rise above it.

    ``best`` is the lowest value of a moving average: a plain mean until it covers
    `SMOOTHING_STEPS` steps (one lucky first window does not become the best), then an
    exponential average of that time constant; it is set once the average covers
    `WARMUP_STEPS` steps, or at once for epoch checks (`epochs=True`: epoch means are
    smooth)::

        scale = max(abs(best), SCALE_FLOOR * abs(first checked value))
        rise  = (value - best) / scale

    Example:
        >>> b = Baseline(epochs=True)
        >>> b.update(2.0, float("inf")), b.update(1.0, float("inf"))  # two epoch checks
        (None, None)
        >>> b.best, b.rise(1.5)
        (1.0, 0.5)
    """

    def __init__(self, epochs: bool):
        self.epochs = epochs
        self.best = None
        self.first = None
        self._average = None
        self._seen = 0.0  # steps folded into the average

    def rise(self, value: float):
        """``(value - best) / scale``, or None without a scale (no best yet, or all 0)."""
        if self.best is None:
            return None
        scale = max(abs(self.best), SCALE_FLOOR * abs(self.first))
        return None if scale == 0.0 else (value - self.best) / scale

    def update(self, value: float, steps: float) -> None:
        """Fold in a checked `value` that covered `steps` steps (inf: an epoch of unknown
        length)."""
        if self.first is None:
            self.first = value
        self._seen += steps
        weight = 1.0 if math.isinf(steps) else max(
            steps / self._seen, 1.0 - math.exp(-steps / SMOOTHING_STEPS))
        self._average = value if self._average is None else (
            self._average + weight * (value - self._average))
        if self.epochs or self._seen >= WARMUP_STEPS:
            self.best = self._average if self.best is None else min(self.best, self._average)


def find_mean_metric(model, monitor: str, snapshot_every, required: bool = True):
    """The Keras mean metric named `monitor` (running sums ``total`` and ``count``).

    Step checks read it at the next batch's begin, where Keras passes no logs.

    Raises:
        ValueError: the model has no such metric (None instead when not `required`).
    """
    names = []
    for metric in getattr(model, "metrics", []):
        for m in getattr(metric, "metrics", [metric]):
            names.append(m.name)
            total, count = getattr(m, "total", None), getattr(m, "count", None)
            if (m.name == monitor and isinstance(total, keras.Variable)
                    and isinstance(count, keras.Variable)
                    and len(total.shape) == 0 and len(count.shape) == 0):
                return m
    if not required:
        return None
    raise ValueError(
        f"DivergenceGuard: step checks (snapshot_every={snapshot_every}) read the "
        f"running sums of the Keras mean metric named `{monitor}`, and the model has "
        f"no such metric (its metrics: {names}). Monitor one of the mean metrics (the "
        "loss, MAE, ...; lower is better) or use snapshot_every=\"epoch\" (validation metrics "
        "need epoch checks)."
    )


class Window:
    """The mean of a Keras mean metric over the steps since the previous reading.

    The metric's running sums give the window's mean exactly, weighted by batch size as
    Keras's mean is; after a reset of the metric (fewer samples than at the last reading)
    the window is the metric's whole mean.

    Example:
        >>> w = Window()
        >>> w.value(6.0, 3.0), w.value(10.0, 4.0), w.value(2.0, 1.0)
        (2.0, 4.0, 2.0)
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._total = self._count = 0.0

    def value(self, total: float, count: float):
        """The window's mean from the metric's running `total` and `count` (None: empty)."""
        if count <= self._count:
            return None if count <= 0 else total / count
        window = (total - self._total) / (count - self._count)
        self._total, self._count = total, count
        return window


def check_logged_mean(monitor: str, logged, epoch_mean) -> None:
    """Warn when the logs' `monitor` (`logged`) is not ``epoch_mean = (mean, total)`` of the
    metric the checks read (a custom `train_step` that does not update it?)."""
    mean, total = epoch_mean
    if not (math.isclose(mean, float(logged), rel_tol=1e-5, abs_tol=1e-12)
            or (math.isnan(float(logged)) and not math.isfinite(total))):
        warnings.warn(
            f"DivergenceGuard: the logs' `{monitor}` ({float(logged):.6g}) is not the "
            f"running mean of the metric named `{monitor}` ({mean:.6g}) that the step "
            "checks read (a custom `train_step` that does not update it?); use "
            "snapshot_every=\"epoch\" to check the logged value.",
            stacklevel=3,
        )
