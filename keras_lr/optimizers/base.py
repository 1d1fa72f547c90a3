"""The optimizer-wrapper base shared by every keras-lr optimizer wrapper.

A keras-lr wrapper (`LRWrapper` and its subclasses `LayerwiseLR`, `GradientGuard`) wraps any
Keras optimizer instance in the style of `keras.optimizers.LossScaleOptimizer`: it forwards
`learning_rate` (get and set) and `iterations` to the wrapped optimizer, nests it in
`get_config`, and lists the inner variables after its own in `variables`.

What the wrappers add is a single, shared **learning-rate scale** variable. The effective rate of
a variable `v` at step `t` is::

    lr_eff(v, t) = schedule(t) * lr_scale * multiplier(v)

where `schedule` is whatever the innermost Keras optimizer holds (a float or any
`LearningRateSchedule`), `lr_scale` is a non-trainable optimizer variable (1.0 unless a callback
such as `keras_lr.callbacks.ReduceLROnPlateau` or `DivergenceGuard` lowers it; it is saved with
the model) and `multiplier(v)` comes from `LayerwiseLR` rules (1.0 otherwise).

How: the first wrapper around a plain optimizer attaches a small hook object to it that
multiplies the `learning_rate` argument of its `update_step` (and of its weight decay) by the
scale and the variable's multiplier. Scaling the rate rather than the gradient keeps Adam-type
optimizers exact (they cancel gradient scale), and scales decoupled weight decay the way PyTorch
param groups do. However many wrappers are nested, and in whichever order, there is exactly one
scale variable and one hook: the ones owned by the innermost wrapper.

Backends: the scale is an optimizer variable (in `variables`), so JAX threads it through
`stateless_apply` like any other state; on torch, Keras's fused optimizers (exactly `Adam`,
`SGD`, ... ) never call `update_step`, so a step with per-variable factors calls their fused
kernel once per group of equal factors (`keras_lr/optimizers/_torch.py`).

Example:

```python
opt = keras_lr.optimizers.LRWrapper(
    keras.optimizers.Adam(keras_lr.schedules.CosineDecay(1e-3, 1000)))
model.compile(optimizer=opt, loss="mse")
opt.lr_scale.assign(0.5)             # halves every rate, the schedule keeps its shape
keras_lr.optimizers.current_learning_rate(opt)   # schedule(iterations) * 0.5
```
"""

from __future__ import annotations

import functools

import keras
from keras import ops
from keras.src.optimizers.base_optimizer import BaseOptimizer

__all__ = [
    "LRWrapper",
    "base_optimizer",
    "current_learning_rate",
    "find_lr_scale",
    "unwrap",
]

_HOOK_ATTR = "_keras_lr_hook"


def unwrap(optimizer):
    """Yield `optimizer` and every optimizer it wraps, outermost first.

    Follows keras-lr wrappers and `keras.optimizers.LossScaleOptimizer` (`inner_optimizer`).
    """
    while optimizer is not None:
        yield optimizer
        optimizer = getattr(optimizer, "inner_optimizer", None)


def base_optimizer(optimizer):
    """Return the innermost plain Keras optimizer under any stack of wrappers."""
    *_, innermost = unwrap(optimizer)
    return innermost


def find_lr_scale(optimizer):
    """Return the shared learning-rate scale variable of a wrapped optimizer, or None.

    Works through `LossScaleOptimizer` too. A plain Keras optimizer has no scale: wrap it in
    `LRWrapper` (or any keras-lr wrapper) to get one.
    """
    hook = getattr(base_optimizer(optimizer), _HOOK_ATTR, None)
    return None if hook is None else hook.scale


def current_learning_rate(optimizer) -> float:
    """The real current base rate: the schedule at the optimizer's step, times the scale.

    Per-variable multipliers of `LayerwiseLR` are not included (see `LayerwiseLR.describe`).
    Reads variables eagerly, so call it from a callback, not inside a train step.
    """
    value = float(ops.convert_to_numpy(optimizer.learning_rate))
    scale = find_lr_scale(optimizer)
    if scale is not None:
        value *= float(ops.convert_to_numpy(scale))
    return value


class _LRHook:
    """Per-variable learning-rate factors, attached to the innermost plain optimizer.

    `providers` are callables ``provider(variable) -> factor or None`` consulted in order (the
    `LayerwiseLR` wrappers of the stack); a Python ``0.0`` factor means "do not touch this
    variable at all" (no update, no weight decay, no slot drift).
    """

    def __init__(self, optimizer, scale):
        self.optimizer = optimizer
        self.scale = scale
        self.providers = []
        self._update_step = optimizer.update_step
        self._backend_update_step = optimizer._backend_update_step
        self._apply_weight_decay = optimizer._apply_weight_decay
        self._get_current_learning_rate = optimizer._get_current_learning_rate
        self._factor_override = None
        self._grouped_update_step = None
        if keras.backend.backend() == "torch":
            from keras_lr.optimizers import _torch

            self._grouped_update_step = _torch.grouped_update_step(optimizer, self.factor)

    def install(self):
        opt = self.optimizer
        # Instance attributes shadow the class methods; Keras looks them up through `self`.
        object.__setattr__(opt, "update_step", self.update_step)
        object.__setattr__(opt, "_backend_update_step", self.backend_update_step)
        object.__setattr__(opt, "_apply_weight_decay", self.apply_weight_decay)
        object.__setattr__(opt, "_get_current_learning_rate", self.get_current_learning_rate)
        object.__setattr__(opt, _HOOK_ATTR, self)

    def factor(self, variable):
        """The static per-variable factor (float or array) or None for 1."""
        factor = None
        for provider in self.providers:
            value = provider(variable)
            if value is not None:
                factor = value if factor is None else factor * value
        return factor

    @staticmethod
    def is_frozen(factor):
        return isinstance(factor, float) and factor == 0.0

    def backend_update_step(self, grads, trainable_variables, learning_rate):
        # The scale multiplies the rate once per step, before any distribution merge.
        learning_rate = ops.multiply(
            ops.cast(learning_rate, self.scale.dtype), self.scale
        )
        if self._grouped_update_step is not None and any(
            self.factor(v) is not None for v in trainable_variables
        ):
            # A fused torch optimizer never calls `update_step`, where the factors apply.
            return self._grouped_update_step(grads, trainable_variables, learning_rate)
        return self._backend_update_step(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        factor = self.factor(variable)
        if self.is_frozen(factor):
            return None
        if factor is not None:
            learning_rate = ops.multiply(
                ops.cast(learning_rate, variable.dtype), ops.cast(factor, variable.dtype)
            )
        return self._update_step(gradient, variable, learning_rate)

    def get_current_learning_rate(self):
        value = self._get_current_learning_rate()
        if self._factor_override is None:
            return value
        return ops.multiply(ops.cast(value, "float32"), self._factor_override)

    def apply_weight_decay(self, variables):
        if self.optimizer.weight_decay is None:
            return
        # Decoupled weight decay reads `optimizer.learning_rate`; give each variable its own
        # factor (scale x multiplier) while the original implementation runs for it.
        optimizer = self.optimizer
        for variable in variables:
            factor = self.factor(variable)
            if self.is_frozen(factor) or not optimizer._use_weight_decay(variable):
                continue  # (torch's fused decay fails on an empty list of variables)
            override = self.scale if factor is None else ops.multiply(
                ops.cast(factor, "float32"), self.scale
            )
            decay = self._apply_weight_decay
            if self._grouped_update_step is not None and not isinstance(factor, (float, type(None))):
                # torch's fused decay multiplies by a scalar; a per-unit factor needs the
                # element-wise decay of the Keras base class.
                decay = functools.partial(BaseOptimizer._apply_weight_decay, optimizer)
            self._factor_override = override
            try:
                decay([variable])
            finally:
                self._factor_override = None


@keras.saving.register_keras_serializable(package="keras_lr")
class LRWrapper(keras.optimizers.Optimizer):
    """Wrap a Keras optimizer and give it a shared, saved learning-rate scale.

    The wrapped optimizer keeps its float rate or schedule; the wrapper multiplies the rate it
    applies by `lr_scale` (initially 1.0). Callbacks that lower the rate of an optimizer that
    holds a schedule (`keras_lr.callbacks.ReduceLROnPlateau`, `DivergenceGuard`) act on this
    scale, so the schedule keeps its shape. Subclasses add behaviour (`LayerwiseLR`,
    `GradientGuard`); this class alone is the transparent version.

    Formula::

        lr_eff(step) = inner.learning_rate(step) * lr_scale

    Args:
        optimizer: a `keras.optimizers.Optimizer` instance (a plain Keras optimizer or another
            keras-lr wrapper). Put `keras.optimizers.LossScaleOptimizer` outside, not inside.
        name: optional name; defaults to the class name in snake case.

    Example:

    ```python
    opt = keras_lr.optimizers.LRWrapper(keras.optimizers.SGD(0.1, momentum=0.9))
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    ```
    """

    def __init__(self, optimizer, name=None, **kwargs):
        _refuse_base_arguments(type(self).__name__, kwargs)  # before marking `optimizer`
        _check_wrappable(optimizer, type(self).__name__)
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = optimizer
        # Take over the loss scale factor, like `LossScaleOptimizer` does: the outermost
        # wrapper scales the loss and unscales the gradients once, before its own `_apply`
        # (so a guard sees the true gradients); the wrapped optimizer must not unscale again.
        self.loss_scale_factor = optimizer.loss_scale_factor
        base = base_optimizer(optimizer)
        hook = getattr(base, _HOOK_ATTR, None)
        if hook is None:
            # Innermost wrapper: owns the scale variable and installs the hook.
            with keras.name_scope(self.name, caller=self):
                scale = keras.Variable(
                    1.0, dtype="float32", trainable=False, name="lr_scale",
                    aggregation="only_first_replica",
                )
            self._track_variable(scale)
            self._own_scale = scale
            hook = _LRHook(base, scale)
            hook.install()
        else:
            self._own_scale = None
        self._hook = hook

    # ------------------------------------------------------------------ forwarding
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
    def lr_scale(self):
        """The shared learning-rate scale variable (float32 scalar, 1.0 by default)."""
        return self._hook.scale

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    @property
    def loss_scale_factor(self):
        """The static loss scale factor (taken from the wrapped optimizer), or None."""
        return getattr(self, "_keras_lr_loss_scale_factor", None)

    @loss_scale_factor.setter
    def loss_scale_factor(self, value):
        # Also set by `MultiOptimizer` on its sub-optimizers. Only the wrapper unscales.
        self._keras_lr_loss_scale_factor = value
        inner = getattr(self, "inner_optimizer", None)
        if inner is not None:
            inner.loss_scale_factor = None

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    # ------------------------------------------------------------------ building and applying
    def build(self, var_list):
        if not self.inner_optimizer.built:
            self.inner_optimizer.build(var_list)
        super().build(var_list)

    def apply(self, grads, trainable_variables=None):
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        scale = self.loss_scale_factor
        if scale is not None:
            grads = [g if g is None else g / scale for g in grads]
        return self._apply(grads, trainable_variables)

    def _apply(self, grads, trainable_variables=None):
        """What the wrapper does with the gradients; subclasses override this."""
        return self.inner_optimizer.apply(grads, trainable_variables)

    # ------------------------------------------------------------------ serialization
    def get_config(self):
        # The factor is saved where the user set it, on the wrapped optimizer; the wrapper
        # takes it over again when it is rebuilt.
        inner = self.inner_optimizer
        inner.loss_scale_factor = self.loss_scale_factor
        try:
            inner_config = keras.saving.serialize_keras_object(inner)
        finally:
            inner.loss_scale_factor = None
        return {"name": self.name, "optimizer": inner_config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["optimizer"] = keras.saving.deserialize_keras_object(
            config["optimizer"], custom_objects=custom_objects
        )
        return cls(**config)


def _check_wrappable(optimizer, wrapper_name):
    if not isinstance(optimizer, BaseOptimizer):
        raise TypeError(
            f"Argument `optimizer` must be a `keras.optimizers.Optimizer` instance. "
            f"Received: optimizer={optimizer!r}"
        )
    multi = getattr(keras.optimizers, "MultiOptimizer", None)  # not in every Keras 3
    if multi is not None and isinstance(optimizer, multi):
        # Its `apply` dispatches to the sub-optimizers, never through the hooked update step,
        # so a scale on it would have no effect.
        raise TypeError(
            f"Argument `optimizer` must not be a `keras.optimizers.MultiOptimizer`: "
            f"{wrapper_name} cannot act on its sub-optimizers through it. Wrap each "
            f"sub-optimizer instead and give those to the MultiOptimizer (its optimizer "
            f"map or selector returns `{wrapper_name}(sub_optimizer)`). "
            f"Received: optimizer={optimizer!r}"
        )
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        raise TypeError(
            f"{wrapper_name} cannot wrap a `LossScaleOptimizer`; put the LossScaleOptimizer "
            f"outside instead: `LossScaleOptimizer({wrapper_name}(optimizer, ...))`. "
            f"Received: optimizer={optimizer!r}"
        )
    # Only the optimizer itself: the optimizers inside it are wrapped by its own chain.
    if getattr(optimizer, "_keras_lr_wrapped_by", None) is not None:
        raise ValueError(
            f"Argument `optimizer` is already wrapped by "
            f"{optimizer._keras_lr_wrapped_by}; wrap the outer wrapper instead. "
            f"Received: optimizer={optimizer!r}"
        )
    for inner in unwrap(optimizer):
        if isinstance(inner, LRWrapper) and inner.built:
            raise ValueError(
                "Argument `optimizer` is a keras-lr wrapper that is already built; wrap the "
                f"optimizer before training starts. Received: optimizer={optimizer!r}"
            )
    object.__setattr__(optimizer, "_keras_lr_wrapped_by", wrapper_name)


_BASE_DEFAULTS = {
    "learning_rate": None,
    "weight_decay": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def _refuse_base_arguments(wrapper_name, kwargs):
    """Refuse base-optimizer arguments on a wrapper, like `LossScaleOptimizer` does."""
    for name in list(kwargs):
        if name not in _BASE_DEFAULTS:
            raise TypeError(f"{wrapper_name} got an unexpected keyword argument `{name}`.")
        value = kwargs.pop(name)
        if value != _BASE_DEFAULTS[name]:
            raise ValueError(
                f"{wrapper_name} does not support `{name}`. Instead, set `{name}` on the "
                f"wrapped optimizer. Received: {name}={value!r}"
            )
