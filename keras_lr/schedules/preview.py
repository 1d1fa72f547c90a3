"""Preview a schedule: its values over a range of steps, or a matplotlib plot of them."""

from __future__ import annotations

import numbers

import numpy as np
from keras import ops

from keras_lr._validation import check_int
from keras_lr.schedules.base import Schedule, as_schedule, call_float64

__all__ = ["plot", "values"]


def _steps_array(steps) -> np.ndarray:
    if isinstance(steps, numbers.Real) and not isinstance(steps, bool):  # a count N
        return np.arange(check_int("steps", steps, minimum=0), dtype=np.int64)
    return np.asarray(steps)


def values(schedule, steps) -> np.ndarray:
    """The learning rates of `schedule` at `steps`, computed in one vectorised call.

    Args:
        schedule: float, keras-lr schedule or Keras `LearningRateSchedule`.
        steps: an int ``N`` (meaning ``range(N)``) or an array of steps.

    Returns:
        A NumPy array with the shape of the steps: float32, or float64 for float64 steps
        (the keras-lr dtype rule). Keras built-ins are mapped over the steps with
        `ops.vectorized_map` (they may branch on a scalar step) and returned as float32.

    Example:
        >>> from keras_lr.schedules import StepDecay, values
        >>> values(StepDecay(1.0, step_size=2, gamma=0.5), 5)
        array([1.  , 1.  , 0.5 , 0.5 , 0.25], dtype=float32)
    """
    schedule = as_schedule(schedule)
    steps = _steps_array(steps)
    if isinstance(schedule, Schedule):
        return ops.convert_to_numpy(schedule(steps))
    t = ops.convert_to_tensor(steps.astype(np.float64))
    return ops.convert_to_numpy(call_float64(schedule, t)).astype(np.float32)


def plot(schedule, steps, ax=None):
    """Plot the learning rate of `schedule` against the step with matplotlib.

    Args:
        schedule: float, keras-lr schedule or Keras `LearningRateSchedule`.
        steps: an int ``N`` (meaning ``range(N)``) or an array of steps.
        ax: a matplotlib ``Axes`` to draw on; a new figure when None.

    Returns:
        The matplotlib ``Axes``.

    Example:
        ```python
        ax = plot(Warmup(CosineDecay(1e-3, 1000), 100), 1100)
        ax.figure.savefig("schedule.png")
        ```
    """
    import matplotlib.pyplot as plt

    schedule = as_schedule(schedule)
    steps = _steps_array(steps)
    lrs = values(schedule, steps)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, lrs, label=type(schedule).__name__)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(type(schedule).__name__)
    return ax
