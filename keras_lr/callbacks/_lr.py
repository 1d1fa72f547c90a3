"""Shared plumbing of the keras-lr callbacks: reading and lowering the real learning rate."""

from __future__ import annotations

import copy

import keras
from keras import ops

from keras_lr.optimizers.base import base_optimizer, current_learning_rate, find_lr_scale, unwrap

__all__ = [
    "FreshCopy",
    "check_guards",
    "effective_learning_rate",
    "guards_in",
    "holds_schedule",
    "is_at_floor",
    "multiply_learning_rate",
    "rate_variables",
    "target_optimizers",
]


class FreshCopy:
    """Mixin: `copy.deepcopy` returns a fresh, unbound callback with the same arguments.

    KerasTuner deep-copies the callbacks given to `search()` once per trial; copying the
    arguments (never the bound model, the snapshots or the counters) keeps that cheap and
    gives every trial a clean callback. Arguments named in `_shared_arguments` (optimizers)
    are passed by reference.
    """

    _shared_arguments = ()

    def _remember(self, **arguments):
        self._arguments = arguments

    def __deepcopy__(self, memo):
        arguments = {
            key: value if key in self._shared_arguments else copy.deepcopy(value, memo)
            for key, value in self._arguments.items()
        }
        return type(self)(**arguments)

    def get_config(self):
        """The constructor arguments (for `repr` and tests)."""
        return dict(self._arguments)


def holds_schedule(optimizer) -> bool:
    """True when the innermost plain optimizer holds a schedule (or callable), not a float."""
    rate = getattr(base_optimizer(optimizer), "_learning_rate", None)
    return not isinstance(rate, keras.Variable)


def effective_learning_rate(optimizer) -> float:
    """The real current rate: schedule (or float) at the current step, times any lr_scale."""
    return current_learning_rate(optimizer)


# Rates live in float32 variables and are read back as Python floats, so a rate sitting at
# `min_lr` can read a few float32 ulps above it (float32(0.1) > 0.1); with the scale path the
# read-back is the product of two float32 values. A rate within this relative tolerance of
# `min_lr` is at the floor.
RATE_RTOL = 1e-6
# PyTorch's `ReduceLROnPlateau(eps=1e-8)`, relative to the rate here: a change smaller than
# this is no reduction (nothing is assigned).
RATE_EPS = 1e-8


def is_at_floor(rate, min_lr):
    """Whether `rate` cannot be lowered towards `min_lr` any more (float32 tolerance)."""
    return rate <= min_lr * (1.0 + RATE_RTOL)


def multiply_learning_rate(optimizer, factor, *, min_lr=0.0, caller="This callback"):
    """Lower the effective rate to ``max(lr * factor, min_lr)`` (never raise it).

    Returns ``(old, new)`` effective rates. When there is nothing to lower (the rate is
    already at `min_lr` within `RATE_RTOL`, or the change would be below `RATE_EPS` times the
    rate, PyTorch's `eps`), nothing is assigned and ``new == old`` exactly; callers test
    ``new < old`` to know whether a reduction happened.

    Acts on the shared `lr_scale` of keras-lr wrappers when there is one (so a schedule keeps
    its shape), otherwise assigns the float rate of a plain optimizer.

    Raises:
        TypeError: a plain optimizer holding a schedule (no scale to act on).
    """
    scale = find_lr_scale(optimizer)
    if scale is None and holds_schedule(optimizer):
        raise TypeError(
            f"{caller} cannot lower the learning rate of {type(optimizer).__name__}: it holds "
            "a learning-rate schedule and has no scale variable. Wrap the optimizer: "
            "`keras_lr.optimizers.LRWrapper(optimizer)` (or any keras-lr wrapper such as "
            "GradientGuard or LayerwiseLR) gives it a saved `lr_scale` that this callback "
            "lowers while the schedule keeps its shape."
        )
    old = effective_learning_rate(optimizer)
    new = min(old, max(old * factor, min_lr))
    if is_at_floor(old, min_lr) or old - new <= RATE_EPS * old:
        return old, old
    if scale is not None:
        current = float(ops.convert_to_numpy(scale))
        ratio = new / old if old > 0 else factor
        scale.assign(current * ratio)
    else:
        base_optimizer(optimizer).learning_rate = new
    return old, effective_learning_rate(optimizer)


def rate_variables(optimizer):
    """Variables that hold the rate itself (`lr_scale`, float `learning_rate` variables).

    `DivergenceGuard` leaves these out of its snapshots so that restoring weights never
    undoes a rate change.
    """
    found = []
    scale = find_lr_scale(optimizer)
    if scale is not None:
        found.append(scale)
    for opt in unwrap(optimizer):
        rate = getattr(opt, "_learning_rate", None)
        if isinstance(rate, keras.Variable):
            found.append(rate)
    return found


def target_optimizers(optimizer):
    """``[(suffix, optimizer)]``: the optimizer itself, or each sub-optimizer of a
    `keras.optimizers.MultiOptimizer` (suffix ``"_<name>"``, Keras's log-key convention)."""
    if hasattr(optimizer, "optimizers"):
        return [(f"_{opt.name}", opt) for opt in optimizer.optimizers]
    return [("", optimizer)]


def guards_in(optimizer):
    """Every `GradientGuard` in the optimizer chain and in the chains of the sub-optimizers
    of any `MultiOptimizer` in it (also one inside a `LossScaleOptimizer`)."""
    from keras_lr.guards.guard import GradientGuard

    found, pending = [], [optimizer]
    while pending:
        for opt in unwrap(pending.pop(0)):
            if isinstance(opt, GradientGuard):
                found.append(opt)
            pending.extend(getattr(opt, "optimizers", None) or [])  # MultiOptimizer
    return found


def check_guards(optimizer):
    """Call `check()` on every guard `guards_in` finds (raises when one is stuck)."""
    for guard in guards_in(optimizer):
        guard.check()
