"""Momentum that follows a schedule: `ScheduledMomentum`.

Keras optimizers hold their momentum (SGD's and RMSprop's ``momentum``, the ``beta_1`` of
Adam, AdamW, Nadam, Adamax, Lamb and Lion) as a Python float, which a compiled train step bakes
in as a constant. `ScheduledMomentum` wraps such an optimizer, in the shape of
`keras.optimizers.LossScaleOptimizer`, and makes that momentum a function of the step:

```python
momentum(t) = schedule(t)      # t = optimizer.iterations, the step the learning rate sees
```

How: the wrapper owns a float32 variable, **tracked by the wrapped (innermost) optimizer**, so
that it is part of the optimizer state every backend threads through its compiled step (JAX's
``stateless_apply`` included), saves with the model and restores. At every step, inside the
compiled function, the wrapper assigns ``schedule(iterations)`` to it and runs the wrapped
optimizer with its momentum attribute pointing at the variable; between steps (for
``get_config``, and so for saving) the attribute is the user's float again. Nothing runs on the
host per batch, so it works under ``steps_per_execution > 1`` and XLA.

Keras's SGD and RMSprop test ``momentum != 0`` / ``momentum > 0`` in Python to decide whether
they keep a velocity at all (in ``build``, in every step and in torch's fused kernels); the
variable answers those two tests against 0 with True without reading its value, so an
``SGD(momentum=0.0)`` driven by a schedule keeps a velocity too.

Reference:
    Smith, 2018, "A disciplined approach to neural network hyper-parameters: Part 1",
    https://arxiv.org/abs/1803.09820 (cyclical momentum); PyTorch ``OneCycleLR`` and
    ``CyclicLR`` with ``cycle_momentum=True``.
"""

from __future__ import annotations

import contextlib
import numbers

import keras
from keras import ops

from keras_lr._validation import fail
from keras_lr.optimizers.base import base_optimizer, unwrap

__all__ = ["ScheduledMomentum", "current_momentum", "momentum_attribute"]

_OWNER_ATTR = "_keras_lr_momentum_owner"


def _is_zero(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


class _MomentumVariable(keras.Variable):
    """The momentum the wrapped optimizer reads during a step.

    ``!= 0`` and ``> 0`` answer True (a driven momentum keeps its velocity); every other use
    reads the variable's value, like any `keras.Variable`.
    """

    def __ne__(self, other):
        if _is_zero(other):
            return True
        return super().__ne__(other)

    def __gt__(self, other):
        if _is_zero(other):
            return True
        return super().__gt__(other)



def momentum_attribute(optimizer) -> str:
    """The name of the momentum a schedule can drive: ``"beta_1"`` or ``"momentum"``.

    Args:
        optimizer: a Keras optimizer, possibly under keras-lr wrappers.

    Returns:
        ``"beta_1"`` for Adam-type optimizers (Adam, AdamW, Nadam, Adamax, Lamb, Lion),
        ``"momentum"`` for SGD and RMSprop.

    Raises:
        TypeError: the optimizer holds no momentum as a Python number (Adagrad, Adadelta,
            Ftrl, Adafactor, ...).

    Example:
        >>> momentum_attribute(keras.optimizers.Adam())
        'beta_1'
    """
    base = base_optimizer(optimizer)
    for name in ("beta_1", "momentum"):
        value = getattr(base, name, None)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return name
    fail(
        "optimizer",
        f"must have a momentum to drive: a float `momentum` (SGD, RMSprop) or `beta_1` "
        f"(Adam, AdamW, Nadam, Adamax, Lamb, Lion); {type(base).__name__} has neither",
        optimizer,
        TypeError,
    )


def _find(optimizer):
    """The `ScheduledMomentum` in a chain of wrappers, or None."""
    for opt in unwrap(optimizer):
        if isinstance(opt, ScheduledMomentum):
            return opt
    return None


def current_momentum(optimizer):
    """The momentum a `ScheduledMomentum` in `optimizer`'s chain set for the last step.

    Before the first step it is ``schedule(0)``. Reads a variable eagerly: call it from a
    callback (through ``self.model.optimizer`` on JAX), not inside a train step.

    Args:
        optimizer: an optimizer, possibly wrapped.

    Returns:
        The momentum as a float, or None when no `ScheduledMomentum` drives the optimizer.

    Example:
        >>> current_momentum(keras.optimizers.SGD(momentum=0.9)) is None
        True
    """
    driver = _find(optimizer)
    if driver is None:
        return None
    return float(ops.convert_to_numpy(driver.momentum))


@keras.saving.register_keras_serializable(package="keras_lr")
class ScheduledMomentum(keras.optimizers.Optimizer):
    """Drive the momentum (SGD, RMSprop) or ``beta_1`` (Adam-type) of an optimizer by a schedule.

    ```python
    momentum(t) = schedule(t)            # set before the update of step t, like the rate
    ```

    The wrapped optimizer keeps its learning rate (float or schedule) and everything else;
    only the momentum it applies changes. For PyTorch's ``OneCycleLR`` and ``CyclicLR`` with
    ``cycle_momentum=True`` (their default), pass ``lr.momentum_schedule()`` of the keras-lr
    `OneCycle` or `CyclicalLR` schedule: the momentum then falls while the rate rises.
    A float gives a constant momentum that a callback may change through
    `ScheduledMomentum.momentum` (a variable saved with the model); any other schedule
    (`LinearDecay`, `PiecewiseLinear`, `Warmup`, ...) works too, for a momentum warmup say.

    Composes with the other keras-lr wrappers in either order
    (``GradientGuard(ScheduledMomentum(SGD(...)))`` and the other way round) and under
    `keras.optimizers.LossScaleOptimizer` (put that one outside). `LRMonitor` logs the
    momentum as ``momentum``.

    Reference:
        Smith, 2018, "A disciplined approach to neural network hyper-parameters: Part 1",
        https://arxiv.org/abs/1803.09820; PyTorch ``OneCycleLR(cycle_momentum=True)``.

    Example:
        ```python
        lr = keras_lr.schedules.OneCycle(0.1, total_steps=epochs * steps_per_epoch)
        optimizer = keras_lr.optimizers.ScheduledMomentum(
            keras.optimizers.SGD(lr, momentum=0.9, nesterov=True), lr.momentum_schedule())
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        ```

    Args:
        optimizer: a `keras.optimizers.Optimizer` instance with a momentum (see
            `momentum_attribute`), possibly under keras-lr wrappers, not yet built.
        momentum: a float in [0, 1) or a `LearningRateSchedule` of momentum values in
            [0, 1) (its value at step 0 is checked; keras-lr's `OneCycleMomentum` and
            `CyclicalMomentum` are bounded by construction).
        name: optional name; defaults to the class name in snake case.
    """

    def __init__(self, optimizer, momentum, name=None):
        from keras.src.optimizers.base_optimizer import BaseOptimizer

        from keras_lr.schedules.base import LearningRateSchedule, as_schedule

        if not isinstance(optimizer, BaseOptimizer):
            fail("optimizer", "must be a `keras.optimizers.Optimizer` instance", optimizer,
                 TypeError)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            raise TypeError(
                "ScheduledMomentum cannot wrap a `LossScaleOptimizer`; put the "
                "LossScaleOptimizer outside instead: "
                f"`LossScaleOptimizer(ScheduledMomentum(optimizer, ...))`. "
                f"Received: optimizer={optimizer!r}"
            )
        multi = getattr(keras.optimizers, "MultiOptimizer", None)
        if multi is not None and isinstance(optimizer, multi):
            fail("optimizer", "must not be a `keras.optimizers.MultiOptimizer`: give each "
                 "sub-optimizer its own ScheduledMomentum instead", optimizer, TypeError)
        if any(opt.built for opt in unwrap(optimizer)):
            fail("optimizer", "must not be built yet: wrap the optimizer before training "
                 "starts", optimizer)
        attribute = momentum_attribute(optimizer)
        base = base_optimizer(optimizer)
        if getattr(base, _OWNER_ATTR, None) is not None:
            fail("optimizer", "already has its momentum driven by a ScheduledMomentum",
                 optimizer)
        if isinstance(momentum, numbers.Real) and not isinstance(momentum, bool):
            if not 0.0 <= float(momentum) < 1.0:
                fail("momentum", "must be in [0, 1)", momentum)
        elif not isinstance(momentum, (LearningRateSchedule, dict)):
            fail("momentum", "must be a float in [0, 1) or a "
                 "`keras.optimizers.schedules.LearningRateSchedule`", momentum, TypeError)
        schedule = as_schedule(momentum, "momentum")
        first = float(ops.convert_to_numpy(schedule(0)))
        if not 0.0 <= first < 1.0:
            fail("momentum", f"must give momenta in [0, 1); at step 0 it gives {first:g}",
                 momentum)

        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = optimizer
        self.momentum_schedule = schedule
        self._attribute = attribute
        with keras.name_scope(self.name, caller=self):
            variable = _MomentumVariable(
                first, dtype="float32", trainable=False, name="momentum",
                aggregation="only_first_replica",
            )
        # Tracked by the optimizer that reads it, so every wrapper's `variables` (and every
        # stateless scope any of them opens on JAX) holds it exactly once.
        base._track_variable(variable)
        object.__setattr__(self, "_momentum", variable)
        # A name, not the wrapper: a reference back would make Keras's saving walk a cycle.
        object.__setattr__(base, _OWNER_ATTR, self.name)

    # ------------------------------------------------------------------ forwarding
    @property
    def momentum(self):
        """The momentum variable (float32 scalar): the value of the last step's momentum."""
        return self._momentum

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    @property
    def loss_scale_factor(self):
        """The wrapped optimizer's static loss scale factor (scaled and unscaled there)."""
        inner = self.__dict__.get("inner_optimizer")
        return None if inner is None else inner.loss_scale_factor

    @loss_scale_factor.setter
    def loss_scale_factor(self, value):
        inner = self.__dict__.get("inner_optimizer")
        if inner is not None:
            inner.loss_scale_factor = value

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    # ------------------------------------------------------------------ stepping
    @contextlib.contextmanager
    def _driving(self):
        """The wrapped optimizer reads the momentum variable while the block runs."""
        base, name = base_optimizer(self.inner_optimizer), self._attribute
        value = base.__dict__[name]
        object.__setattr__(base, name, self._momentum)  # untracked: it is tracked once
        try:
            yield
        finally:
            object.__setattr__(base, name, value)

    def _scheduled_value(self):
        return ops.cast(self.momentum_schedule(self.iterations), "float32")

    def build(self, var_list):
        with self._driving():  # an SGD built with momentum=0.0 keeps a velocity too
            if not self.inner_optimizer.built:
                self.inner_optimizer.build(var_list)
        super().build(var_list)

    def apply(self, grads, trainable_variables=None):
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        self._momentum.assign(self._scheduled_value())
        with self._driving():
            return self.inner_optimizer.apply(grads, trainable_variables)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        if not self.built:
            raise ValueError(
                f"To call `stateless_apply`, {type(self).__name__} must be built (i.e. its "
                "variables must have been created). You can build it via "
                "`optimizer.build(trainable_variables)`."
            )
        variables = self.variables
        if len(optimizer_variables) != len(variables):
            raise ValueError(
                "Argument `optimizer_variables` must be a list of tensors corresponding 1:1 "
                f"to {type(self).__name__}().variables. Received list with length "
                f"{len(optimizer_variables)}, but expected {len(variables)} variables."
            )
        with keras.StatelessScope(state_mapping=list(zip(variables, optimizer_variables))) as scope:
            self._momentum.assign(self._scheduled_value())
        values = [scope.get_current_value(v) for v in variables]
        own = len(self._variables)
        with self._driving():
            trainable, inner = self.inner_optimizer.stateless_apply(
                values[own:], grads, trainable_variables
            )
        return trainable, list(values[:own]) + list(inner)

    # ------------------------------------------------------------------ serialization
    def get_config(self):
        return {
            "name": self.name,
            "optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "momentum": keras.saving.serialize_keras_object(self.momentum_schedule),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["optimizer"] = keras.saving.deserialize_keras_object(
            config["optimizer"], custom_objects=custom_objects
        )
        config["momentum"] = keras.saving.deserialize_keras_object(
            config["momentum"], custom_objects=custom_objects
        )
        return cls(**config)
