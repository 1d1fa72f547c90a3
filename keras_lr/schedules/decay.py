"""Decay schedules: constant, step, multistep, exponential, linear, polynomial, inverse square
root and piecewise linear.

Every class is a pure function of the optimizer step ``t`` (0 for the first update), so a
schedule stepped by Keras matches a PyTorch scheduler stepped once per ``optimizer.step()``:
Keras evaluates ``schedule(iterations)`` before each update, PyTorch reads the learning rate
set at ``last_epoch == t``. Boundaries follow PyTorch: a change scheduled "at" step ``m``
takes effect for the update with ``t == m`` (Keras's ``PiecewiseConstantDecay`` switches one
step later, optax at ``t == m`` like us).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_lr._validation import (
    check_float,
    check_increasing,
    check_int,
    check_list,
    check_same_length,
    fail,
)
from keras_lr.schedules.base import Schedule, floor, full, maximum, minimum

__all__ = [
    "Constant",
    "ExponentialDecay",
    "InverseSqrtDecay",
    "LinearDecay",
    "MultiStepDecay",
    "PiecewiseLinear",
    "PolynomialDecay",
    "StepDecay",
]

_register = keras.saving.register_keras_serializable(package="keras_lr")


def _rate(name, value):
    return check_float(name, value, minimum=0.0)


@_register
class Constant(Schedule):
    """A constant learning rate, as a schedule (useful inside `Sequence` and `Warmup`).

    ```python
    lr(t) = learning_rate
    ```

    Example:
        ```python
        schedule = Sequence([Constant(1e-3), CosineDecay(1e-3, 5000)], boundaries=[1000])
        ```

    Args:
        learning_rate: float >= 0.
    """

    def __init__(self, learning_rate):
        self.learning_rate = _rate("learning_rate", learning_rate)

    def _compute(self, t):
        return ops.full_like(t, self.learning_rate)

    def get_config(self):
        return {"learning_rate": self.learning_rate}


@_register
class StepDecay(Schedule):
    """Multiply the rate by `gamma` every `step_size` steps (PyTorch ``StepLR``).

    ```python
    lr(t) = initial_learning_rate * gamma ** floor(t / step_size)
    ```

    Boundary convention (PyTorch): the first decay applies at ``t == step_size``. Keras's
    ``ExponentialDecay(staircase=True)`` agrees; optax's ``exponential_decay(staircase=True)``
    too.

    Example:
        ```python
        schedule = StepDecay(0.1, step_size=30 * steps_per_epoch, gamma=0.1)
        model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
        ```

    Args:
        initial_learning_rate: float >= 0.
        step_size: int >= 1, steps between two decays.
        gamma: float > 0, the multiplicative factor. Defaults to 0.1.
    """

    def __init__(self, initial_learning_rate, step_size, gamma=0.1):
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.step_size = check_int("step_size", step_size, minimum=1)
        self.gamma = check_float("gamma", gamma, minimum=0.0, strict=True)

    def _compute(self, t):
        k = floor(t / self.step_size)
        k = ops.where(k * self.step_size > t, k - 1, k)  # guard a rounded-up quotient
        return self.initial_learning_rate * ops.power(ops.full_like(t, self.gamma), k)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "step_size": self.step_size,
            "gamma": self.gamma,
        }


@_register
class MultiStepDecay(Schedule):
    """Multiply the rate by `gamma` at each milestone (PyTorch ``MultiStepLR``).

    ```python
    lr(t) = initial_learning_rate * gamma ** count(m <= t for m in milestones)
    ```

    Boundary convention (PyTorch, optax): the rate changes at ``t == m``. Keras's
    ``PiecewiseConstantDecay`` keeps the old value until ``t == m + 1``.

    A milestone listed ``k`` times applies `gamma` ``k`` times at once, as in PyTorch (which
    keeps its milestones in a ``Counter``): ``MultiStepDecay(0.05, [2, 5, 5, 9], 0.1)`` gives
    0.05, 0.05, 0.005, 0.005, 0.005, 5e-05, ... A decreasing list is refused (PyTorch would
    sort it silently).

    Reference:
        PyTorch ``torch.optim.lr_scheduler.MultiStepLR``.

    Example:
        ```python
        schedule = MultiStepDecay(0.1, milestones=[3000, 6000], gamma=0.1)
        ```

    Args:
        initial_learning_rate: float >= 0.
        milestones: non-decreasing ints >= 0 (repeats allowed).
        gamma: float > 0. Defaults to 0.1.
    """

    def __init__(self, initial_learning_rate, milestones, gamma=0.1):
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        milestones = check_list("milestones", milestones)
        for i, m in enumerate(milestones):
            check_int(f"milestones[{i}]", m, minimum=0)
        self.milestones = [int(m) for m in milestones]
        check_increasing("milestones", self.milestones, strict=False)
        self.gamma = check_float("gamma", gamma, minimum=0.0, strict=True)

    def _compute(self, t):
        if not self.milestones:
            return ops.full_like(t, self.initial_learning_rate)
        milestones = ops.convert_to_tensor(self.milestones, dtype="float64")
        passed = ops.expand_dims(t, -1) >= milestones
        k = ops.sum(ops.cast(passed, "float64"), axis=-1)
        return self.initial_learning_rate * ops.power(ops.full_like(t, self.gamma), k)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "milestones": list(self.milestones),
            "gamma": self.gamma,
        }


@_register
class ExponentialDecay(Schedule):
    """Multiply the rate by `gamma` every step (PyTorch ``ExponentialLR``).

    ```python
    lr(t) = initial_learning_rate * gamma ** t
    ```

    Unlike Keras's ``ExponentialDecay(initial, decay_steps, decay_rate)``, which computes
    ``decay_rate ** (t / decay_steps)``, the factor here is per step.

    Example:
        ```python
        schedule = ExponentialDecay(1e-2, gamma=0.9995)
        ```

    Args:
        initial_learning_rate: float >= 0.
        gamma: float > 0, the per-step factor.
    """

    def __init__(self, initial_learning_rate, gamma):
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.gamma = check_float("gamma", gamma, minimum=0.0, strict=True)

    def _compute(self, t):
        return self.initial_learning_rate * ops.power(ops.full_like(t, self.gamma), t)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "gamma": self.gamma}


@_register
class PolynomialDecay(Schedule):
    """Polynomial decay to `end_learning_rate` over `decay_steps`, then held.

    ```python
    p = min(t, decay_steps) / decay_steps
    lr(t) = (initial_learning_rate - end_learning_rate) * (1 - p) ** power + end_learning_rate
    ```

    With ``end_learning_rate=0`` this is PyTorch's ``PolynomialLR(total_iters=decay_steps)``;
    it equals Keras's ``PolynomialDecay(cycle=False)``.

    Example:
        ```python
        schedule = PolynomialDecay(1e-3, decay_steps=10_000, power=2.0)
        ```

    Args:
        initial_learning_rate: float >= 0.
        decay_steps: int >= 1.
        end_learning_rate: float >= 0. Defaults to 0.
        power: float > 0. Defaults to 1 (linear).
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0, power=1.0):
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.decay_steps = check_int("decay_steps", decay_steps, minimum=1)
        self.end_learning_rate = _rate("end_learning_rate", end_learning_rate)
        self.power = check_float("power", power, minimum=0.0, strict=True)

    def _compute(self, t):
        p = ops.clip(t / self.decay_steps, 0.0, 1.0)
        span = self.initial_learning_rate - self.end_learning_rate
        return span * ops.power(1.0 - p, self.power) + self.end_learning_rate

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
        }


@_register
class LinearDecay(PolynomialDecay):
    """Linear interpolation to `end_learning_rate` over `decay_steps`, then held.

    ```python
    lr(t) = initial + (end_learning_rate - initial) * min(t, decay_steps) / decay_steps
    ```

    PyTorch ``LinearLR(start_factor=1, end_factor=end/initial, total_iters=decay_steps)``.

    Example:
        ```python
        schedule = LinearDecay(1e-3, decay_steps=10_000, end_learning_rate=1e-5)
        ```

    Args:
        initial_learning_rate: float >= 0.
        decay_steps: int >= 1.
        end_learning_rate: float >= 0 (may exceed the initial rate for a ramp). Defaults to 0.
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0):
        super().__init__(initial_learning_rate, decay_steps, end_learning_rate, power=1.0)

    def _compute(self, t):
        p = ops.clip(t / self.decay_steps, 0.0, 1.0)
        start, end = self.initial_learning_rate, self.end_learning_rate
        return start + (end - start) * p

    def get_config(self):
        config = super().get_config()
        del config["power"]
        return config


@_register
class InverseSqrtDecay(Schedule):
    """Flat until `timescale`, then decays as the inverse square root of the step.

    ```python
    lr(t) = initial_learning_rate * sqrt(timescale / max(t, timescale))
    ```

    The T5 schedule ``1 / sqrt(max(t, k))`` normalised to `initial_learning_rate` at its
    plateau. Hugging Face's ``inverse_sqrt`` instead uses ``sqrt(timescale / (t + shift))``.
    Combine with `Warmup` for the Transformer's warmup-then-rsqrt shape.

    Reference:
        Raffel et al., 2020, "Exploring the Limits of Transfer Learning with a Unified
        Text-to-Text Transformer" (T5), section 3.1.2.

    Example:
        ```python
        schedule = InverseSqrtDecay(1e-2, timescale=10_000)
        ```

    Args:
        initial_learning_rate: float >= 0.
        timescale: int >= 1, the step at which the decay starts.
    """

    def __init__(self, initial_learning_rate, timescale):
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.timescale = check_int("timescale", timescale, minimum=1)

    def _compute(self, t):
        return self.initial_learning_rate * ops.sqrt(
            self.timescale / maximum(t, float(self.timescale))
        )

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "timescale": self.timescale}


@_register
class PiecewiseLinear(Schedule):
    """Linear interpolation through the points ``(boundaries[i], values[i])``, flat outside.

    ```python
    lr(t) = numpy.interp(t, boundaries, values)
    ```

    Computed as ``values[j] + slope_j * (t - b_j)`` on the segment ``j`` that holds `t` (found
    with one vectorised comparison whatever the number of points), so every point's value is
    returned exactly and the rate never leaves the range of its segment's two values.

    Example:
        ```python
        # warm up to 1e-3 in 500 steps, hold, then decay linearly to 1e-5 at step 10k
        schedule = PiecewiseLinear([0, 500, 8000, 10_000], [0.0, 1e-3, 1e-3, 1e-5])
        ```

    Args:
        boundaries: strictly increasing steps >= 0 (at least one).
        values: learning rates >= 0, one per boundary.
    """

    def __init__(self, boundaries, values):
        boundaries = check_list("boundaries", boundaries)
        values = check_list("values", values)
        if not boundaries:
            fail("boundaries", "must hold at least one point", boundaries)
        check_same_length("boundaries", boundaries, "values", values)
        self.boundaries = [
            check_float(f"boundaries[{i}]", b, minimum=0.0) for i, b in enumerate(boundaries)
        ]
        check_increasing("boundaries", self.boundaries)
        self.values = [_rate(f"values[{i}]", v) for i, v in enumerate(values)]

    def _compute(self, t):
        b, v = self.boundaries, self.values
        if len(b) == 1:
            return ops.full_like(t, v[0])

        def table(numbers):
            return ops.convert_to_tensor(numbers, dtype="float64")

        starts = table(b[:-1])
        # j: the segment [b_j, b_{j+1}) that holds t (0 before the first point)
        j = ops.sum(ops.cast(ops.expand_dims(t, -1) >= starts, "int32"), axis=-1) - 1
        j = maximum(j, 0)
        slopes = [(v1 - v0) / (b1 - b0) for b0, b1, v0, v1 in zip(b, b[1:], v, v[1:])]
        inside = ops.take(table(v[:-1]), j) + ops.take(table(slopes), j) * (
            t - ops.take(starts, j))
        # rounding must not carry the rate outside its segment (below 0 when a value is 0)
        low = ops.take(table([min(p) for p in zip(v, v[1:])]), j)
        high = ops.take(table([max(p) for p in zip(v, v[1:])]), j)
        inside = minimum(maximum(inside, low), high)
        return ops.where(t <= b[0], full(t, v[0]), ops.where(t >= b[-1], full(t, v[-1]), inside))

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values)}
