"""Cyclical schedules: `CyclicalLR` (Smith 2017) and `OneCycle` (Smith & Topin 2019).

Both reproduce the learning-rate curve of PyTorch's ``CyclicLR`` and ``OneCycleLR`` stepped
once per batch (momentum cycling is out of scope: it is an optimizer setting, not a rate).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_lr._validation import check_choice, check_float, check_int, check_open_interval, fail
from keras_lr.schedules.base import Schedule, floor_divmod

__all__ = ["CyclicalLR", "OneCycle"]

_register = keras.saving.register_keras_serializable(package="keras_lr")


@_register
class CyclicalLR(Schedule):
    """Triangular cycles between `base_learning_rate` and `max_learning_rate`.

    ```python
    total = step_size_up + step_size_down;  r = step_size_up / total
    cycle = floor(t / total)                 # 0-based
    x = (t - cycle * total) / total          # position in the cycle, in [0, 1)
    height = x / r if x <= r else (x - 1) / (r - 1)
    scale = {"triangular": 1, "triangular2": 1 / 2 ** cycle, "exp_range": gamma ** t}[mode]
    lr(t) = base_learning_rate + (max_learning_rate - base_learning_rate) * height * scale
    ```

    PyTorch ``CyclicLR`` (its ``cycle`` is ours + 1); with ``step_size_down == step_size_up``
    it equals TF Addons' symmetric ``CyclicalLearningRate``.

    Reference:
        Smith, 2017, "Cyclical Learning Rates for Training Neural Networks",
        https://arxiv.org/abs/1506.01186.

    Example:
        ```python
        schedule = CyclicalLR(1e-4, 1e-2, step_size_up=2000, mode="triangular2")
        ```

    Args:
        base_learning_rate: float >= 0, the bottom of each cycle.
        max_learning_rate: float >= base_learning_rate, the top of the first cycle.
        step_size_up: int >= 1, steps from bottom to top.
        step_size_down: int >= 1 or None (same as `step_size_up`).
        mode: "triangular", "triangular2" or "exp_range". Defaults to "triangular".
        gamma: float in (0, 1], the per-step factor of "exp_range". Defaults to 1.
    """

    def __init__(
        self,
        base_learning_rate,
        max_learning_rate,
        step_size_up,
        step_size_down=None,
        mode="triangular",
        gamma=1.0,
    ):
        self.base_learning_rate = check_float("base_learning_rate", base_learning_rate, minimum=0)
        self.max_learning_rate = check_float("max_learning_rate", max_learning_rate)
        if not self.max_learning_rate >= self.base_learning_rate:
            fail(
                "max_learning_rate",
                f"must be >= base_learning_rate={self.base_learning_rate:g}",
                max_learning_rate,
            )
        self.step_size_up = check_int("step_size_up", step_size_up, minimum=1)
        self.step_size_down = (
            None if step_size_down is None else check_int("step_size_down", step_size_down, minimum=1)
        )
        self.mode = check_choice("mode", mode, ("triangular", "triangular2", "exp_range"))
        self.gamma = check_float("gamma", gamma, minimum=0.0, strict=True, maximum=1.0)

    def _compute(self, t):
        up = float(self.step_size_up)
        down = up if self.step_size_down is None else float(self.step_size_down)
        total, ratio = up + down, up / (up + down)
        cycle, position = floor_divmod(t, total)
        x = position / total
        height = ops.where(x <= ratio, x / ratio, (x - 1.0) / (ratio - 1.0))
        if self.mode == "triangular2":
            height = height / ops.power(ops.full_like(t, 2.0), cycle)
        elif self.mode == "exp_range" and self.gamma != 1.0:
            height = height * ops.power(ops.full_like(t, self.gamma), t)
        return self.base_learning_rate + (self.max_learning_rate - self.base_learning_rate) * height

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "max_learning_rate": self.max_learning_rate,
            "step_size_up": self.step_size_up,
            "step_size_down": self.step_size_down,
            "mode": self.mode,
            "gamma": self.gamma,
        }


@_register
class OneCycle(Schedule):
    """The 1cycle policy: up to `max_learning_rate`, then down far below the start.

    ``initial = max_learning_rate / div_factor``, ``final = initial / final_div_factor``,
    ``T = total_steps``, ``P = pct_start * T``. Phases ``(end step, from, to)``::

        two-phase:    (P - 1, initial, max), (T - 1, max, final)
        three-phase:  (P - 1, initial, max), (2P - 2, max, initial), (T - 1, initial, final)

    Inside a phase from step ``s`` to ``e``, ``p = (t - s) / (e - s)`` and
    ``lr = end + (start - end) * (1 + cos(pi * p)) / 2`` ("cos") or
    ``lr = start + (end - start) * p`` ("linear"). After ``T - 1`` the final rate is held
    (PyTorch raises instead). This is PyTorch's ``OneCycleLR`` learning-rate curve; optax's
    ``cosine_onecycle_schedule`` puts its boundary at ``int(P)`` without the ``- 1``.

    Reference:
        Smith & Topin, 2019, "Super-Convergence: Very Fast Training of Neural Networks Using
        Large Learning Rates", https://arxiv.org/abs/1708.07120.

    Example:
        ```python
        schedule = OneCycle(1e-2, total_steps=epochs * steps_per_epoch)
        ```

    Args:
        max_learning_rate: float >= 0.
        total_steps: int >= 2.
        pct_start: float in (0, 1), the share of the steps spent rising. Defaults to 0.3.
        anneal: "cos" or "linear". Defaults to "cos".
        div_factor: float > 0. Defaults to 25.
        final_div_factor: float > 0. Defaults to 1e4.
        three_phase: bool, use the symmetric three-phase layout. Defaults to False.
    """

    def __init__(
        self,
        max_learning_rate,
        total_steps,
        pct_start=0.3,
        anneal="cos",
        div_factor=25.0,
        final_div_factor=1e4,
        three_phase=False,
    ):
        self.max_learning_rate = check_float("max_learning_rate", max_learning_rate, minimum=0)
        self.total_steps = check_int("total_steps", total_steps, minimum=2)
        self.pct_start = check_open_interval("pct_start", pct_start, 0.0, 1.0)
        self.anneal = check_choice("anneal", anneal, ("cos", "linear"))
        self.div_factor = check_float("div_factor", div_factor, minimum=0.0, strict=True)
        self.final_div_factor = check_float(
            "final_div_factor", final_div_factor, minimum=0.0, strict=True
        )
        if not isinstance(three_phase, bool):
            fail("three_phase", "must be a bool", three_phase, TypeError)
        self.three_phase = three_phase
        ends = [end for end, _, _ in self._phases()]
        if not ends[0] > 0:
            fail(
                "pct_start",
                f"must leave more than one warmup step (pct_start * total_steps > 1 with "
                f"total_steps={self.total_steps})",
                pct_start,
            )
        if not all(b > a for a, b in zip(ends, ends[1:])):
            fail(
                "pct_start",
                f"must leave every phase at least one step (three_phase=True needs "
                f"2 * pct_start * total_steps - 2 < total_steps - 1 with "
                f"total_steps={self.total_steps})",
                pct_start,
            )

    def _phases(self):
        initial = self.max_learning_rate / self.div_factor
        final = initial / self.final_div_factor
        top, last = self.pct_start * self.total_steps - 1.0, self.total_steps - 1.0
        if self.three_phase:
            return [
                (top, initial, self.max_learning_rate),
                (2.0 * top, self.max_learning_rate, initial),
                (last, initial, final),
            ]
        return [(top, initial, self.max_learning_rate), (last, self.max_learning_rate, final)]

    def _anneal(self, start, end, p):
        if self.anneal == "cos":
            return end + (start - end) * 0.5 * (1.0 + ops.cos(math.pi * p))
        return start + (end - start) * p

    def _compute(self, t):
        out = None
        begin = 0.0
        values = []
        for end, start_lr, end_lr in self._phases():
            p = ops.clip((t - begin) / (end - begin), 0.0, 1.0)
            values.append((end, self._anneal(start_lr, end_lr, p)))
            begin = end
        out = values[-1][1]
        for end, value in reversed(values[:-1]):
            out = ops.where(t <= end, value, out)
        return out

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "anneal": self.anneal,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "three_phase": self.three_phase,
        }
