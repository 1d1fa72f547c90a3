"""Composition wrappers: `Warmup`, `Sequence`, `Product` and `PerEpoch`.

Each accepts a float, any keras-lr schedule or any Keras built-in schedule (or a serialized
one) and serializes it nested. `Sequence` joins schedules in time, by selecting with
``ops.where``, which keeps the graph branch-free (XLA friendly) and vectorised over a batch of
steps; `Product` multiplies them at the same step. Wrapped Keras built-ins receive an int64
step, like the optimizer's ``iterations``.

Reference:
    optax ``join_schedules`` (composition by boundaries), PyTorch ``SequentialLR`` and
    ``ChainedScheduler`` (composition by product).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_lr._validation import (
    check_choice,
    check_float,
    check_increasing,
    check_int,
    check_list,
    check_same_length,
    fail,
)
from keras_lr.schedules.base import (
    Schedule,
    as_schedule,
    call_float64,
    floor_divmod,
    maximum,
    serialize,
)

__all__ = ["PerEpoch", "Product", "Sequence", "Warmup"]

_register = keras.saving.register_keras_serializable(package="keras_lr")


@_register
class Warmup(Schedule):
    """Ramp from `start_learning_rate` to ``schedule(0)`` over `warmup_steps`, then run it.

    ```python
    W, target = warmup_steps, schedule(0)
    if t >= W: lr = schedule(t - W)          # the inner schedule starts after warmup
    else:
        f = t / W
        linear:      lr = start + (target - start) * f
        cosine:      lr = start + (target - start) * (1 - cos(pi * f)) / 2
        exponential: lr = start * (target / start) ** f
    ```

    ``Warmup(CosineDecay(1e-3, 1000), 100)`` therefore lasts 1100 steps, like Keras's
    ``CosineDecay(warmup_steps=...)`` and unlike optax's ``warmup_cosine_decay_schedule``,
    whose ``decay_steps`` include the warmup. The linear shape equals PyTorch's
    ``SequentialLR([LinearLR(start/target, 1, W), inner], milestones=[W])``.

    Reference:
        Goyal et al., 2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour",
        https://arxiv.org/abs/1706.02677 (gradual warmup).

    Example:
        ```python
        schedule = Warmup(CosineDecay(1e-3, decay_steps=10_000), warmup_steps=500)
        ```

    Args:
        schedule: float, keras-lr schedule or Keras `LearningRateSchedule`.
        warmup_steps: int >= 1.
        start_learning_rate: float >= 0 (> 0 for the exponential shape). Defaults to 0.
        shape: "linear", "exponential" or "cosine". Defaults to "linear".
    """

    def __init__(self, schedule, warmup_steps, start_learning_rate=0.0, shape="linear"):
        self.schedule = as_schedule(schedule)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, minimum=1)
        self.start_learning_rate = check_float(
            "start_learning_rate", start_learning_rate, minimum=0.0
        )
        self.shape = check_choice("shape", shape, ("linear", "exponential", "cosine"))
        if self.shape == "exponential" and not self.start_learning_rate > 0:
            fail("start_learning_rate", 'must be > 0 when shape="exponential"', start_learning_rate)

    def _compute(self, t):
        warmup, start = float(self.warmup_steps), self.start_learning_rate
        target = call_float64(self.schedule, ops.zeros((), dtype="float64"))
        f = ops.clip(t / warmup, 0.0, 1.0)
        if self.shape == "linear":
            ramp = start + (target - start) * f
        elif self.shape == "cosine":
            ramp = start + (target - start) * 0.5 * (1.0 - ops.cos(math.pi * f))
        else:
            ramp = start * ops.power(target / start, f)
        after = call_float64(self.schedule, maximum(t - warmup, 0.0))
        return ops.where(t < warmup, ramp, after)

    def get_config(self):
        return {
            "schedule": serialize(self.schedule),
            "warmup_steps": self.warmup_steps,
            "start_learning_rate": self.start_learning_rate,
            "shape": self.shape,
        }


@_register
class Sequence(Schedule):
    """Run `schedules` one after another, switching at `boundaries`.

    ```python
    lr(t) = schedules[i](t - boundaries[i - 1])   # boundaries[i-1] <= t < boundaries[i]
    ```

    with ``boundaries[-1] = 0`` for the first schedule. Same semantics as optax's
    ``join_schedules`` and PyTorch's ``SequentialLR`` (each schedule restarts its own count
    at its boundary; the switch happens at ``t == boundary``).

    Example:
        ```python
        schedule = Sequence(
            [LinearDecay(1e-4, 500, end_learning_rate=1e-3), 1e-3, CosineDecay(1e-3, 5000)],
            boundaries=[500, 2000],
        )
        ```

    Args:
        schedules: list of floats, keras-lr schedules or Keras `LearningRateSchedule`s.
        boundaries: strictly increasing ints >= 1, ``len(schedules) - 1`` of them.
    """

    def __init__(self, schedules, boundaries):
        schedules = check_list("schedules", schedules)
        boundaries = check_list("boundaries", boundaries)
        if not schedules:
            fail("schedules", "must hold at least one schedule", schedules)
        check_same_length("schedules", schedules, "boundaries", boundaries, offset=1)
        self.schedules = [as_schedule(s, f"schedules[{i}]") for i, s in enumerate(schedules)]
        self.boundaries = [
            check_int(f"boundaries[{i}]", b, minimum=1) for i, b in enumerate(boundaries)
        ]
        check_increasing("boundaries", self.boundaries)

    def _compute(self, t):
        out = call_float64(self.schedules[0], t)
        for boundary, schedule in zip(self.boundaries, self.schedules[1:]):
            value = call_float64(schedule, maximum(t - boundary, 0.0))
            out = ops.where(t < boundary, out, value)
        return out

    def get_config(self):
        return {
            "schedules": [serialize(s) for s in self.schedules],
            "boundaries": list(self.boundaries),
        }


@_register
class Product(Schedule):
    """The learning rate of the first schedule times the factors of the others, at each step.

    ```python
    lr(t) = schedules[0](t) * schedules[1](t) * ... * schedules[-1](t)
    ```

    Every schedule sees the same step (unlike `Sequence`, which hands over from one to the
    next). Write the first as the learning rate and the others as factors that start at 1:
    this is PyTorch's ``ChainedScheduler`` (and its "compound" recipes that step several
    schedulers on one optimizer), whose schedulers each multiply the rate by their own factor.
    The PyTorch factors port as:

    * ``StepLR(step_size, gamma)``: ``StepDecay(1.0, step_size, gamma)``;
    * ``MultiStepLR(milestones, gamma)``: ``MultiStepDecay(1.0, milestones, gamma)``;
    * ``ExponentialLR(gamma)``: ``ExponentialDecay(1.0, gamma)``;
    * ``LinearLR(start_factor, end_factor, total_iters)``:
      ``LinearDecay(start_factor, total_iters, end_factor)``;
    * ``ConstantLR(factor, total_iters)``: ``Sequence([factor, 1.0], [total_iters])``;
    * ``CosineAnnealingLR(T_max, eta_min=0)``: ``CosineDecay(1.0, T_max)`` (with
      ``eta_min > 0`` PyTorch's chained recursion is not a product of closed forms: port
      that floor as ``CosineDecay(lr, T_max, eta_min)`` in the first place instead).

    Reference:
        PyTorch ``torch.optim.lr_scheduler.ChainedScheduler``.

    Example:
        ```python
        # torch: ChainedScheduler([StepLR(opt, 3, gamma=0.1), ExponentialLR(opt, 0.9)])
        schedule = Product([StepDecay(0.05, 3, 0.1), ExponentialDecay(1.0, 0.9)])
        # a cosine decay under a linear warmup that overlaps it (torch: LinearLR + cosine)
        schedule = Product([CosineDecay(0.05, 10), LinearDecay(0.4, 4, 1.0)])
        ```

    Args:
        schedules: a non-empty list of floats, keras-lr schedules or Keras
            `LearningRateSchedule`s; a float is a constant factor.
    """

    def __init__(self, schedules):
        schedules = check_list("schedules", schedules)
        if not schedules:
            fail("schedules", "must hold at least one schedule", schedules)
        self.schedules = [as_schedule(s, f"schedules[{i}]") for i, s in enumerate(schedules)]

    def _compute(self, t):
        out = call_float64(self.schedules[0], t)
        for schedule in self.schedules[1:]:
            out = out * call_float64(schedule, t)
        return out

    def get_config(self):
        return {"schedules": [serialize(s) for s in self.schedules]}


@_register
class PerEpoch(Schedule):
    """Step the inner schedule once per epoch: it sees ``floor(t / steps_per_epoch)``.

    ```python
    lr(t) = schedule(floor(t / steps_per_epoch))
    ```

    PyTorch recipes that call ``scheduler.step()`` once per epoch port exactly: build the
    schedule with durations in epochs and wrap it.

    Example:
        ```python
        # torch: StepLR(opt, step_size=30, gamma=0.1), stepped every epoch
        schedule = PerEpoch(StepDecay(0.1, step_size=30, gamma=0.1), steps_per_epoch=391)
        ```

    Args:
        schedule: float, keras-lr schedule or Keras `LearningRateSchedule`.
        steps_per_epoch: int >= 1.
    """

    def __init__(self, schedule, steps_per_epoch):
        self.schedule = as_schedule(schedule)
        self.steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, minimum=1)

    def _compute(self, t):
        epoch, _ = floor_divmod(t, float(self.steps_per_epoch))
        return call_float64(self.schedule, epoch)

    def get_config(self):
        return {"schedule": serialize(self.schedule), "steps_per_epoch": self.steps_per_epoch}
