"""Lowering a learning rate by a factor and undoing exactly that factor later.

`DivergenceGuard` lowers the rate on a recovery and brings it back after good checks. It acts
on the same variable as the other keras-lr callbacks: the shared `lr_scale` of a keras-lr
wrapper (so a schedule keeps its shape), or the float rate of a plain optimizer; for a
`keras.optimizers.MultiOptimizer`, on every sub-optimizer.

Undoing is exact: each lowering remembers the value it replaced and the value it wrote; when
the variable still holds what was written, the old value is assigned back bit for bit (a
float32 rate multiplied by 0.3 and divided by 0.3 need not round-trip). When another callback
changed the variable in between (`ReduceLROnPlateau` lowered it further), its change is kept:
the current value is multiplied by ``old / written``, which undoes this factor only. So the
rate never comes back above what it would be without these lowerings.
"""

from __future__ import annotations

from keras import ops

from keras_lr.callbacks._lr import (
    effective_learning_rate,
    multiply_learning_rate,
    target_optimizers,
)
from keras_lr.optimizers.base import base_optimizer, find_lr_scale

__all__ = ["RateSteps"]


def _read(variable):
    return float(ops.convert_to_numpy(variable))


class RateSteps:
    """A stack of factor lowerings of an optimizer's rate variables, undone one at a time.

    Args:
        optimizer: the model's optimizer (read again through the model on every call by the
            caller on JAX, where state lives outside the variables during an epoch).
        caller: the callback's name, for the error on an optimizer whose rate has no variable.

    Raises:
        TypeError: a plain optimizer holding a schedule (no scale variable to act on).
    """

    def __init__(self, optimizer, caller):
        for _, opt in target_optimizers(optimizer):
            multiply_learning_rate(opt, 1.0, caller=caller)  # raises when nothing can change
        self._stack = []

    @staticmethod
    def _variables(optimizer):
        found = []
        for _, opt in target_optimizers(optimizer):
            scale = find_lr_scale(opt)
            found.append(scale if scale is not None else base_optimizer(opt)._learning_rate)
        return found

    def __len__(self):
        return len(self._stack)

    def lower(self, optimizer, factor):
        """Multiply every rate variable by `factor` and remember the change."""
        entries = []
        for variable in self._variables(optimizer):
            old = _read(variable)
            variable.assign(old * factor)
            entries.append((old, _read(variable)))
        self._stack.append(entries)

    def undo(self, optimizer):
        """Undo the most recent lowering still in place (exactly, see the module docs)."""
        entries = self._stack.pop()
        for variable, (old, written) in zip(self._variables(optimizer), entries, strict=True):
            current = _read(variable)
            variable.assign(old if current == written else current * old / written)

    @staticmethod
    def rates(optimizer):
        """``{log key: effective rate}``: ``learning_rate``, or one per sub-optimizer."""
        if hasattr(optimizer, "optimizers"):
            return {f"learning_rate{suffix}": effective_learning_rate(opt)
                    for suffix, opt in target_optimizers(optimizer)}
        return {"learning_rate": effective_learning_rate(optimizer)}
