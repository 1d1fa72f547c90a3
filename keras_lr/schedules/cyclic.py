"""Cyclical schedules: `CyclicalLR` (Smith 2017) and `OneCycle` (Smith & Topin 2019), and the
momentum curves that go with them, `CyclicalMomentum` and `OneCycleMomentum`.

The rate schedules reproduce the learning-rate curve of PyTorch's ``CyclicLR`` and
``OneCycleLR`` stepped once per batch; the momentum schedules reproduce the momentum those
schedulers set with ``cycle_momentum=True`` (inverse to the rate: high when the rate is low).
A momentum schedule is applied to an optimizer by `keras_lr.optimizers.ScheduledMomentum`;
``schedule.momentum_schedule()`` builds the one that matches a rate schedule.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_lr._validation import check_choice, check_float, check_int, check_open_interval, fail
from keras_lr.schedules.base import Schedule, floor_divmod

__all__ = ["CyclicalLR", "CyclicalMomentum", "OneCycle", "OneCycleMomentum"]

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
        height = _cycle_height(t, self.step_size_up, self.step_size_down, self.mode, self.gamma)
        return self.base_learning_rate + (self.max_learning_rate - self.base_learning_rate) * height

    def momentum_schedule(self, base_momentum=0.8, max_momentum=0.9):
        """The momentum PyTorch's ``CyclicLR(cycle_momentum=True)`` sets with this schedule.

        Args:
            base_momentum: float in [0, 1), the momentum at the top of the rate. Defaults to
                0.8 (PyTorch's default).
            max_momentum: float in [base_momentum, 1), the momentum at the bottom of the rate.
                Defaults to 0.9.

        Returns:
            A `CyclicalMomentum` with the same cycle.
        """
        return CyclicalMomentum(
            self.step_size_up, self.step_size_down, self.mode, self.gamma,
            base_momentum=base_momentum, max_momentum=max_momentum,
        )

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
        self.three_phase = _check_bool("three_phase", three_phase)
        self._ends = _one_cycle_ends(self.total_steps, self.pct_start, self.three_phase, pct_start)

    def _phases(self):
        initial = self.max_learning_rate / self.div_factor
        final = initial / self.final_div_factor
        top = self.max_learning_rate
        if self.three_phase:
            return list(zip(self._ends, [initial, top, initial], [top, initial, final]))
        return list(zip(self._ends, [initial, top], [top, final]))

    def _compute(self, t):
        return _one_cycle_curve(t, self._phases(), self.anneal)

    def momentum_schedule(self, base_momentum=0.85, max_momentum=0.95):
        """The momentum PyTorch's ``OneCycleLR(cycle_momentum=True)`` sets with this schedule.

        Args:
            base_momentum: float in [0, 1), the momentum at the peak rate. Defaults to 0.85
                (PyTorch's default).
            max_momentum: float in [base_momentum, 1), the momentum at the start and the end.
                Defaults to 0.95.

        Returns:
            A `OneCycleMomentum` with the same phases.
        """
        return OneCycleMomentum(
            self.total_steps, self.pct_start, self.anneal, self.three_phase,
            base_momentum=base_momentum, max_momentum=max_momentum,
        )

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


def _check_bool(name, value):
    if not isinstance(value, bool):
        fail(name, "must be a bool", value, TypeError)
    return value


def _check_momentum_range(base_momentum, max_momentum):
    """Validate a (base, max) momentum pair: both in [0, 1), base <= max."""
    pair = []
    for name, value in (("base_momentum", base_momentum), ("max_momentum", max_momentum)):
        value = check_float(name, value)
        if not 0.0 <= value < 1.0:
            fail(name, "must be in [0, 1)", value)
        pair.append(value)
    if not pair[1] >= pair[0]:
        fail("max_momentum", f"must be >= base_momentum={pair[0]:g}", max_momentum)
    return pair


def _cycle_height(t, step_size_up, step_size_down, mode, gamma):
    """CyclicLR's triangle in [0, 1] times the mode's scale (Smith 2017, PyTorch)."""
    up = float(step_size_up)
    down = up if step_size_down is None else float(step_size_down)
    total, ratio = up + down, up / (up + down)
    cycle, position = floor_divmod(t, total)
    x = position / total
    height = ops.where(x <= ratio, x / ratio, (x - 1.0) / (ratio - 1.0))
    if mode == "triangular2":
        height = height / ops.power(ops.full_like(t, 2.0), cycle)
    elif mode == "exp_range" and gamma != 1.0:
        height = height * ops.power(ops.full_like(t, gamma), t)
    return height


def _one_cycle_ends(total_steps, pct_start, three_phase, given_pct_start):
    """The last step of each 1cycle phase (PyTorch's layout), refusing empty phases."""
    top, last = pct_start * total_steps - 1.0, total_steps - 1.0
    ends = [top, 2.0 * top, last] if three_phase else [top, last]
    if not ends[0] > 0:
        fail(
            "pct_start",
            f"must leave more than one warmup step (pct_start * total_steps > 1 with "
            f"total_steps={total_steps})",
            given_pct_start,
        )
    if not all(b > a for a, b in zip(ends, ends[1:])):
        fail(
            "pct_start",
            f"must leave every phase at least one step (three_phase=True needs "
            f"2 * pct_start * total_steps - 2 < total_steps - 1 with "
            f"total_steps={total_steps})",
            given_pct_start,
        )
    return ends


def _one_cycle_curve(t, phases, anneal):
    """Anneal through ``phases = [(end_step, start_value, end_value), ...]``, hold after."""
    begin = 0.0
    values = []
    for end, start_value, end_value in phases:
        p = ops.clip((t - begin) / (end - begin), 0.0, 1.0)
        if anneal == "cos":
            value = end_value + (start_value - end_value) * 0.5 * (1.0 + ops.cos(math.pi * p))
        else:
            value = start_value + (end_value - start_value) * p
        values.append((end, value))
        begin = end
    out = values[-1][1]
    for end, value in reversed(values[:-1]):
        out = ops.where(t <= end, value, out)
    return out


@_register
class CyclicalMomentum(Schedule):
    """The momentum of `CyclicalLR`'s cycle: down while the rate goes up, and back.

    ```python
    momentum(t) = max_momentum - (max_momentum - base_momentum) * height(t) * scale(t)
    ```

    with ``height`` and ``scale`` those of `CyclicalLR` (same `step_size_up`,
    `step_size_down`, `mode`, `gamma`): the momentum is `max_momentum` when the rate is at its
    base and `base_momentum` at its peak. This is what PyTorch's ``CyclicLR`` writes into the
    optimizer's ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam-type) with
    ``cycle_momentum=True``. Give it to `keras_lr.optimizers.ScheduledMomentum`;
    ``CyclicalLR(...).momentum_schedule()`` builds the one that matches a rate schedule.

    Reference:
        Smith, 2018, "A disciplined approach to neural network hyper-parameters: Part 1",
        https://arxiv.org/abs/1803.09820 (cyclical momentum), and PyTorch ``CyclicLR``.

    Example:
        ```python
        lr = CyclicalLR(1e-4, 1e-2, step_size_up=2000)
        optimizer = keras_lr.optimizers.ScheduledMomentum(
            keras.optimizers.SGD(lr, momentum=0.9), lr.momentum_schedule(0.8, 0.9))
        ```

    Args:
        step_size_up: int >= 1, steps from the top of the momentum to its bottom.
        step_size_down: int >= 1 or None (same as `step_size_up`).
        mode: "triangular", "triangular2" or "exp_range". Defaults to "triangular".
        gamma: float in (0, 1], the per-step factor of "exp_range". Defaults to 1.
        base_momentum: float in [0, 1), the momentum at the rate's peak. Defaults to 0.8.
        max_momentum: float in [base_momentum, 1), the momentum at the rate's base.
            Defaults to 0.9.
    """

    def __init__(
        self,
        step_size_up,
        step_size_down=None,
        mode="triangular",
        gamma=1.0,
        base_momentum=0.8,
        max_momentum=0.9,
    ):
        self.step_size_up = check_int("step_size_up", step_size_up, minimum=1)
        self.step_size_down = (
            None if step_size_down is None else check_int("step_size_down", step_size_down, minimum=1)
        )
        self.mode = check_choice("mode", mode, ("triangular", "triangular2", "exp_range"))
        self.gamma = check_float("gamma", gamma, minimum=0.0, strict=True, maximum=1.0)
        self.base_momentum, self.max_momentum = _check_momentum_range(base_momentum, max_momentum)

    def _compute(self, t):
        height = _cycle_height(t, self.step_size_up, self.step_size_down, self.mode, self.gamma)
        return self.max_momentum - (self.max_momentum - self.base_momentum) * height

    def get_config(self):
        return {
            "step_size_up": self.step_size_up,
            "step_size_down": self.step_size_down,
            "mode": self.mode,
            "gamma": self.gamma,
            "base_momentum": self.base_momentum,
            "max_momentum": self.max_momentum,
        }


@_register
class OneCycleMomentum(Schedule):
    """The momentum of the 1cycle policy: down while the rate rises, then back up.

    With `OneCycle`'s phase ends (same `total_steps`, `pct_start`, `three_phase`) and
    anneal, the momentum goes::

        two-phase:    (P - 1, max, base), (T - 1, base, max)
        three-phase:  (P - 1, max, base), (2P - 2, base, max), (T - 1, max, max)

    ``max`` and ``base`` being `max_momentum` and `base_momentum`; it holds `max_momentum`
    after ``T - 1``. This is what PyTorch's ``OneCycleLR`` writes into the optimizer's
    ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam-type) with ``cycle_momentum=True``
    (its default). Give it to `keras_lr.optimizers.ScheduledMomentum`;
    ``OneCycle(...).momentum_schedule()`` builds the one that matches a rate schedule.

    Reference:
        Smith & Topin, 2019, "Super-Convergence: Very Fast Training of Neural Networks Using
        Large Learning Rates", https://arxiv.org/abs/1708.07120, and PyTorch ``OneCycleLR``.

    Example:
        ```python
        lr = OneCycle(1e-2, total_steps=epochs * steps_per_epoch)
        optimizer = keras_lr.optimizers.ScheduledMomentum(
            keras.optimizers.SGD(lr, momentum=0.9), lr.momentum_schedule())
        ```

    Args:
        total_steps: int >= 2.
        pct_start: float in (0, 1), the share of the steps spent lowering the momentum.
            Defaults to 0.3.
        anneal: "cos" or "linear". Defaults to "cos".
        three_phase: bool, use the symmetric three-phase layout. Defaults to False.
        base_momentum: float in [0, 1), the momentum at the peak rate. Defaults to 0.85.
        max_momentum: float in [base_momentum, 1), the momentum at the start and the end.
            Defaults to 0.95.
    """

    def __init__(
        self,
        total_steps,
        pct_start=0.3,
        anneal="cos",
        three_phase=False,
        base_momentum=0.85,
        max_momentum=0.95,
    ):
        self.total_steps = check_int("total_steps", total_steps, minimum=2)
        self.pct_start = check_open_interval("pct_start", pct_start, 0.0, 1.0)
        self.anneal = check_choice("anneal", anneal, ("cos", "linear"))
        self.three_phase = _check_bool("three_phase", three_phase)
        self.base_momentum, self.max_momentum = _check_momentum_range(base_momentum, max_momentum)
        self._ends = _one_cycle_ends(self.total_steps, self.pct_start, self.three_phase, pct_start)

    def _compute(self, t):
        top, low = self.max_momentum, self.base_momentum
        values = [(top, low), (low, top), (top, top)] if self.three_phase else [(top, low), (low, top)]
        phases = [(end, a, b) for end, (a, b) in zip(self._ends, values)]
        return _one_cycle_curve(t, phases, self.anneal)

    def get_config(self):
        return {
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "anneal": self.anneal,
            "three_phase": self.three_phase,
            "base_momentum": self.base_momentum,
            "max_momentum": self.max_momentum,
        }
