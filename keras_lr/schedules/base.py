"""The common base of every keras-lr schedule: step casting, dtype rule, `as_schedule`.

Every keras-lr schedule is a pure function of the optimizer step. Subclasses implement
``_compute(t)``, where ``t`` is the step as a float64 tensor of any shape (a scalar inside an
optimizer, a vector when previewing a curve), and return a float64 tensor of the same shape.
`Schedule.__call__` converts the step and casts the result.

Step arithmetic (floor divisions, cycle indices, phase positions) runs in float64, which holds
every integer up to 2**53 exactly, so steps of 1e9 or 1e10 neither overflow (as int32 would)
nor lose precision (as float32 would). XLA compiles float64 on CPU and GPU (not on TPU).

Output dtype rule: the result is float64 when the step is a float64 tensor or NumPy array, or
when ``keras.config.floatx()`` is ``"float64"``; it is float32 otherwise (integer steps,
float32/float16 steps, Python numbers). Optimizers cast the learning rate to each variable's
dtype anyway.

Wrapped schedules (inside `Warmup`, `Sequence`, `PerEpoch`) that are not keras-lr schedules,
such as Keras's built-in schedules, receive the step as an int64 tensor (the floor of the
step they should see), like the optimizer's own ``iterations`` variable.
"""

from __future__ import annotations

import numbers

import keras
import numpy as np
from keras import ops

__all__ = ["Schedule", "as_schedule", "floor", "full", "maximum", "minimum", "output_dtype"]

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule


def _step_tensor(step):
    """Convert a step (Python number, NumPy value, tensor or variable) to a tensor."""
    if isinstance(step, bool):
        raise TypeError(f"A schedule step must be a number or a tensor. Received: step={step!r}")
    if isinstance(step, numbers.Integral):
        return ops.convert_to_tensor(np.int64(step))
    if isinstance(step, numbers.Real) and not isinstance(step, np.generic):
        return ops.convert_to_tensor(float(step), dtype="float32")
    return ops.convert_to_tensor(step)


def output_dtype(step_dtype) -> str:
    """The dtype rule: float64 for a float64 step or float64 floatx, else float32."""
    if keras.backend.standardize_dtype(step_dtype) == "float64" or keras.config.floatx() == "float64":
        return "float64"
    return "float32"


class Schedule(LearningRateSchedule):
    """Base class of keras-lr schedules.

    Subclasses implement ``_compute(t)`` on a float64 step tensor ``t`` (any shape) and
    ``get_config``. Calling the schedule accepts a scalar or an array of steps of any numeric
    dtype and returns the learning rate with the same shape (see the module docstring for the
    dtype rule).

    Example:
        >>> from keras_lr.schedules import CosineDecay
        >>> schedule = CosineDecay(1e-3, decay_steps=1000)
        >>> float(schedule(0))
        0.0010000000474974513
    """

    def __call__(self, step):
        step = _step_tensor(step)
        t = ops.cast(step, "float64")
        return ops.cast(self._compute(t), output_dtype(step.dtype))

    def _compute(self, t):  # pragma: no cover - abstract
        raise NotImplementedError(
            f"Schedule '{type(self).__name__}' must implement `_compute(self, t)`."
        )

    def __repr__(self):
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({args})"


def as_schedule(value, name: str = "schedule"):
    """Turn a float, a keras-lr schedule or a Keras `LearningRateSchedule` into a schedule.

    A real number becomes `Constant(value)`; a `LearningRateSchedule` (keras-lr or Keras
    built-in, or any serializable subclass) is returned unchanged; a serialized schedule
    (the dict written by `keras.saving.serialize_keras_object`) is deserialized.

    Args:
        value: the float, schedule or serialized schedule.
        name: the argument name used in error messages.

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule`.

    Raises:
        TypeError: `value` is none of the above (plain callables are refused because they
            cannot be serialized).

    Example:
        >>> as_schedule(1e-3)
        Constant(learning_rate=0.001)
    """
    from keras_lr import _validation
    from keras_lr.schedules.decay import Constant

    if isinstance(value, LearningRateSchedule):
        return value
    if isinstance(value, dict) and "class_name" in value:
        restored = keras.saving.deserialize_keras_object(value)
        if isinstance(restored, LearningRateSchedule):
            return restored
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return Constant(_validation.check_float(name, value, minimum=0.0))
    _validation.fail(
        name,
        "must be a float or a `keras.optimizers.schedules.LearningRateSchedule` (or the "
        "dict `keras.saving.serialize_keras_object` writes; plain callables cannot be "
        "serialized)",
        value,
        TypeError,
    )


def call_float64(schedule, t):
    """Evaluate any schedule at float64 steps `t` and return float64 values of t's shape.

    keras-lr schedules are evaluated directly (vectorised). Other schedules (Keras built-ins)
    get an int64 step; a non-scalar `t` is mapped with `ops.vectorized_map`, because some
    built-ins (e.g. `CosineDecay` with warmup) branch with `ops.cond` and need a scalar step.
    On torch, whose `vmap` refuses data-dependent control flow, the steps are mapped one by
    one (torch runs eagerly; a vector of steps only comes from previewing a curve).
    """
    if isinstance(schedule, Schedule):
        return schedule._compute(t)
    step = ops.cast(floor(t), "int64")
    if len(t.shape) == 0:
        return ops.cast(schedule(step), "float64")
    flat = ops.reshape(step, (-1,))
    if keras.backend.backend() == "torch":
        values = [ops.cast(schedule(s), "float64") for s in flat]
        out = ops.stack(values) if values else ops.zeros((0,), "float64")
    else:
        out = ops.vectorized_map(lambda s: ops.cast(schedule(s), "float64"), flat)
    return ops.reshape(out, ops.shape(t))


def serialize(schedule):
    """Serialize a nested schedule for `get_config`."""
    return keras.saving.serialize_keras_object(schedule)


def floor(x):
    """``floor(x)`` in the dtype of `x`, written ``x - mod(x, 1)`` (exact in floating point).

    Keras 3.15's torch ``ops.floor`` returns float32 for a float64 tensor, which loses the
    step above 2**24; ``ops.mod`` keeps the dtype on every backend.
    """
    return x - ops.mod(x, 1.0)


def full(x, value):
    """`value` as a tensor like `x` when it is a Python number (exact in float64 on every
    backend: on torch a bare Python float in ``ops.where`` becomes a float32 tensor first)."""
    if isinstance(value, numbers.Real):
        return ops.full_like(x, value)
    return value


def maximum(x, y):
    """Element-wise maximum in the dtype of `x` (Keras 3.15's torch ``ops.maximum`` returns
    float32 for float64 operands)."""
    y = full(x, y)
    return ops.where(x >= y, x, y)


def minimum(x, y):
    """Element-wise minimum in the dtype of `x` (see `maximum`)."""
    y = full(x, y)
    return ops.where(x <= y, x, y)


def floor_divmod(t, d):
    """``(floor(t / d), t - floor(t / d) * d)`` for float64 tensors, exact for integer steps.

    The quotient from a rounded division can be off by one when ``t`` is just below a
    multiple of ``d``; the remainder is corrected into ``[0, d)``.
    """
    q = floor(t / d)
    r = t - q * d
    q = ops.where(r < 0, q - 1, ops.where(r >= d, q + 1, q))
    r = t - q * d
    return q, r
