"""Cosine schedules: `CosineDecay` (held at its floor) and `CosineRestarts` (SGDR).

Reference:
    Loshchilov & Hutter, 2017, "SGDR: Stochastic Gradient Descent with Warm Restarts",
    https://arxiv.org/abs/1608.03983 (equation 5).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_lr._validation import check_float, check_int, fail
from keras_lr.schedules.base import Schedule, floor, floor_divmod, maximum

__all__ = ["CosineDecay", "CosineRestarts"]

_register = keras.saving.register_keras_serializable(package="keras_lr")


def check_floor(name, value, ceiling_name, ceiling):
    """Check ``0 <= value <= ceiling`` with a message naming the ceiling's argument."""
    value = check_float(name, value, minimum=0.0)
    if not value <= ceiling:
        fail(name, f"must be <= {ceiling_name}={ceiling:g}", value)
    return value


def _half_cosine(fraction):
    """``(1 + cos(pi * fraction)) / 2``: 1 at 0, 0 at 1."""
    return 0.5 * (1.0 + ops.cos(math.pi * fraction))


@_register
class CosineDecay(Schedule):
    """Cosine annealing from `initial_learning_rate` to `min_learning_rate`, then held.

    ```python
    p = min(t, decay_steps) / decay_steps
    lr(t) = min_learning_rate + (initial_learning_rate - min_learning_rate)
            * (1 + cos(pi * p)) / 2
    ```

    Up to ``t == decay_steps`` this is PyTorch's ``CosineAnnealingLR(T_max=decay_steps,
    eta_min=min_learning_rate)``; after it, PyTorch climbs back up while this schedule (like
    Keras and optax) holds the minimum. Keras's ``CosineDecay`` takes ``alpha``, the floor as a
    fraction of the initial rate; this class takes the floor itself. For warmup, wrap it:
    ``Warmup(CosineDecay(1e-3, 1000), 100)`` lasts 1100 steps.

    Reference:
        Loshchilov & Hutter, 2017, SGDR, https://arxiv.org/abs/1608.03983.

    Example:
        ```python
        schedule = CosineDecay(1e-3, decay_steps=10_000, min_learning_rate=1e-5)
        model.compile(optimizer=keras.optimizers.AdamW(schedule), loss="mse")
        ```

    Args:
        initial_learning_rate: float >= 0.
        decay_steps: int >= 1.
        min_learning_rate: float in [0, initial_learning_rate]. Defaults to 0.
    """

    def __init__(self, initial_learning_rate, decay_steps, min_learning_rate=0.0):
        self.initial_learning_rate = check_float(
            "initial_learning_rate", initial_learning_rate, minimum=0.0
        )
        self.decay_steps = check_int("decay_steps", decay_steps, minimum=1)
        self.min_learning_rate = check_floor(
            "min_learning_rate", min_learning_rate, "initial_learning_rate", self.initial_learning_rate
        )

    def _compute(self, t):
        p = ops.clip(t / self.decay_steps, 0.0, 1.0)
        span = self.initial_learning_rate - self.min_learning_rate
        return self.min_learning_rate + span * _half_cosine(p)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "min_learning_rate": self.min_learning_rate,
        }


@_register
class CosineRestarts(Schedule):
    """Cosine annealing with warm restarts (SGDR).

    Cycle ``i`` lasts ``T_i = first_cycle_steps * cycle_mult ** i`` steps and starts at
    ``S_i = first_cycle_steps * (cycle_mult ** i - 1) / (cycle_mult - 1)`` (``i *
    first_cycle_steps`` when ``cycle_mult == 1``)::

        i = the cycle holding t,  t_i = t - S_i
        peak_i = min_learning_rate + (initial_learning_rate - min_learning_rate) * peak_decay ** i
        lr(t) = min_learning_rate + (peak_i - min_learning_rate) * (1 + cos(pi * t_i / T_i)) / 2

    With an integer `cycle_mult` and ``peak_decay=1`` it equals PyTorch's
    ``CosineAnnealingWarmRestarts(T_0=first_cycle_steps, T_mult=cycle_mult,
    eta_min=min_learning_rate)`` (restarts at 10, 30, 70 for ``T_0=10, T_mult=2``). A float
    `cycle_mult` is allowed (cycle starts are then real numbers, as in Keras). `peak_decay`
    scales the height of each cycle above the floor, as Keras's ``CosineDecayRestarts`` scales
    its cosine term by ``m_mul ** i``: with ``min_learning_rate=0`` the peak of cycle ``i`` is
    ``initial_learning_rate * peak_decay ** i``, and the floor never moves.

    Reference:
        Loshchilov & Hutter, 2017, SGDR, https://arxiv.org/abs/1608.03983.

    Example:
        ```python
        schedule = CosineRestarts(1e-3, first_cycle_steps=1000, cycle_mult=2, peak_decay=0.8)
        ```

    Args:
        initial_learning_rate: float >= 0, the peak of the first cycle.
        first_cycle_steps: int >= 1.
        cycle_mult: float >= 1, the growth factor of the cycle length. Defaults to 1.
        peak_decay: float in [0, 1], the factor applied to the peak at each restart.
            Defaults to 1.
        min_learning_rate: float in [0, initial_learning_rate]. Defaults to 0.
    """

    def __init__(
        self,
        initial_learning_rate,
        first_cycle_steps,
        cycle_mult=1.0,
        peak_decay=1.0,
        min_learning_rate=0.0,
    ):
        self.initial_learning_rate = check_float(
            "initial_learning_rate", initial_learning_rate, minimum=0.0
        )
        self.first_cycle_steps = check_int("first_cycle_steps", first_cycle_steps, minimum=1)
        self.cycle_mult = check_float("cycle_mult", cycle_mult, minimum=1.0)
        self.peak_decay = check_float("peak_decay", peak_decay, minimum=0.0, maximum=1.0)
        self.min_learning_rate = check_floor(
            "min_learning_rate", min_learning_rate, "initial_learning_rate", self.initial_learning_rate
        )

    def _cycle(self, t):
        """(cycle index, position in the cycle, cycle length) as float64 tensors."""
        t0, mult = float(self.first_cycle_steps), self.cycle_mult
        if mult == 1.0:
            i, position = floor_divmod(t, t0)
            return i, position, ops.full_like(t, t0)

        def start(i):
            return t0 * (ops.power(ops.full_like(t, mult), i) - 1.0) / (mult - 1.0)

        i = floor(ops.log(maximum(t, 0.0) / t0 * (mult - 1.0) + 1.0) / math.log(mult))
        # the logarithm can land one cycle off at a restart: check against the starts
        i = ops.where(t < start(i), i - 1.0, ops.where(t >= start(i + 1.0), i + 1.0, i))
        return i, t - start(i), t0 * ops.power(ops.full_like(t, mult), i)

    def _compute(self, t):
        i, position, length = self._cycle(t)
        span = (self.initial_learning_rate - self.min_learning_rate) * ops.power(
            ops.full_like(t, self.peak_decay), i
        )
        return self.min_learning_rate + span * _half_cosine(position / length)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_cycle_steps": self.first_cycle_steps,
            "cycle_mult": self.cycle_mult,
            "peak_decay": self.peak_decay,
            "min_learning_rate": self.min_learning_rate,
        }
