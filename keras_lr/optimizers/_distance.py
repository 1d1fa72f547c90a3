"""The two-pass step shared by Prodigy and D-Adaptation: global sums, then the update.

Both estimate the distance to the solution, d, from two sums over *all* variables (a
numerator and an L1 norm) before any variable moves, so one step is two passes through
`update_step`: a "stats" pass that updates the per-variable statistics and adds to the sums,
and an "apply" pass that moves the variables with the new d. Going through `update_step` in
both passes keeps the per-variable learning rate that keras-lr wrappers (`LayerwiseLR`,
`LRWrapper`'s scale) hand to it. The scalars (d, its running maximum, the weighted numerator,
the step count k) are optimizer variables, so they are saved, restored and rolled back with
the rest of the state. Everything is `keras.ops`, with no host round trip and no conditional:
a step with no progress (rate 0, or all-zero gradients) leaves the state as the reference
does, through selects.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_lr._validation import check_float, fail

__all__ = []


def scalar_dtype():
    """float64 for d and the sums, as the references keep them (Python floats), where the
    backend has it: TensorFlow, torch, and JAX with ``jax_enable_x64``; float32 otherwise."""
    if keras.backend.backend() == "jax":
        import jax

        return "float64" if jax.config.jax_enable_x64 else "float32"
    return "float64"


def read(variable):
    """The value of a variable as a tensor (JAX's `where` refuses a Keras variable)."""
    return ops.convert_to_tensor(variable)


def after(token, *values):
    """`values`, each the very tensor's value, made to depend on the tensor `token` on JAX.

    ``where(token > inf, 0, value)``: nothing is greater than inf (NaN compares false), so
    each is its value, selected, not computed. XLA copies a donated buffer that one op reads
    while another, in no data order with it, overwrites it in place; making the overwrite
    depend on the read's result orders them, and the copy goes (DAdaptAdam's v and s of
    every variable, each step). Only JAX donates the state to a compiled step; elsewhere
    the values come back as they are (the selects cost TensorFlow 5 % and torch 9 % of a
    DAdaptAdam `apply` on the digits MLP, for nothing).
    """
    if keras.backend.backend() != "jax":
        return list(values)
    never = ops.greater(token, ops.cast(math.inf, token.dtype))
    return [ops.where(never, ops.zeros_like(value), value) for value in values]


def check_growth_rate(value):
    """A float >= 1, infinity allowed (the references' default)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isinf(value):
        if value > 0:
            return float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value != value:
        fail("growth_rate", "must be >= 1", value)
    return check_float("growth_rate", value, minimum=1.0)


def check_bool(name, value):
    """A bool (NumPy bools too); anything else is refused."""
    if not isinstance(value, (bool, np.bool_)):
        fail(name, "must be a bool", value, TypeError)
    return bool(value)


def check_beta(name, value):
    """A float in [0, 1)."""
    value = check_float(name, value, minimum=0.0)
    if not value < 1.0:
        fail(name, "must be in [0, 1)", value)
    return value


class DistanceEstimator(keras.optimizers.Optimizer):
    """Base of `Prodigy` and `DAdaptAdam`: the two passes and the shared scalars."""

    def __init__(self, learning_rate, weight_decay, decouple, d0, growth_rate, name, kwargs):
        weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, name=name,
                         **kwargs)
        self.decouple = check_bool("decouple", decouple)
        self.d0 = check_float("d0", d0, minimum=0.0, strict=True)
        self.growth_rate = check_growth_rate(growth_rate)
        self._pass = None

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._build_slots(var_list)
        d0 = keras.initializers.Constant(self.d0)
        self._sdtype = dtype = scalar_dtype()
        self._d = self.add_variable((), initializer=d0, dtype=dtype, name="d")
        self._numerator = self.add_variable((), dtype=dtype, name="d_numerator")
        self._k = self.add_variable((), dtype=dtype, name="k")
        self._build_scalars(d0)

    def _build_slots(self, var_list):
        raise NotImplementedError

    def _build_scalars(self, d0):
        pass

    @property
    def d(self):
        """The current distance estimate d (a float32 scalar variable, d0 before the first
        step); the step size is ``d * learning_rate``."""
        return self._d

    @property
    def lr_estimate(self):
        """What `LRMonitor` multiplies the rate by to log the effective rate: d."""
        return self._d

    def _apply_weight_decay(self, variables):
        # Weight decay (coupled or decoupled) is part of the step, with d in its rate.
        return None

    def _decay(self, variable):
        return bool(self.weight_decay) and self._use_weight_decay(variable)

    def _coupled_gradient(self, gradient, variable):
        gradient = ops.cast(gradient, variable.dtype)
        if self._decay(variable) and not self.decouple:
            gradient = gradient + ops.cast(self.weight_decay, variable.dtype) * variable
        return gradient

    # ------------------------------------------------------------------ the two passes
    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        lr = ops.cast(learning_rate, self._sdtype)
        state = self._begin(lr)
        state.update(phase="stats", lr=lr, numerator=ops.zeros((), self._sdtype),
                     denominator=ops.zeros((), self._sdtype),
                     first=ops.equal(self.iterations, 0))
        # Not `self._pass = state`: TensorFlow's attribute tracking would store a copy.
        object.__setattr__(self, "_pass", state)
        try:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
            self._finish(state)
            state["phase"] = "apply"
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            object.__setattr__(self, "_pass", None)
        self.assign_add(self._k, state["progress"])

    def update_step(self, gradient, variable, learning_rate):
        if self._pass["phase"] == "stats":
            self._stats(gradient, variable, learning_rate, self._pass)
        else:
            self._step(gradient, variable, learning_rate, self._pass)

    def _scalars(self, learning_rate, dtype, state, make):
        """The step scalars `make(learning_rate, dtype, state)` of this pass, made once per
        (rate, dtype): every variable of a plain optimizer shares one rate tensor, so the
        scalar arithmetic runs once per step, not once per variable. The rate is held in the
        cache, so its id cannot be reused by another tensor within the step."""
        cache = state.setdefault(("cache", state["phase"]), [])
        for rate, cached_dtype, values in cache:
            if rate is learning_rate and cached_dtype == dtype:
                return values
        values = make(learning_rate, dtype, state)
        cache.append((learning_rate, dtype, values))
        return values

    def _gate(self, gradient, included):
        """The gradient, 0 where the variable takes no part: the moments' decays are 1 then,
        so ``beta * m + alpha * 0`` leaves them exactly (a non-finite gradient too)."""
        return ops.where(included, gradient, ops.zeros_like(gradient))

    def _add(self, key, value):
        self._pass[key] = self._pass[key] + ops.cast(value, self._sdtype)

    def _bias_correction(self, beta_1, beta_2, use):
        if not use:
            return ops.ones((), self._sdtype)
        k1 = self._k + 1.0
        return ops.sqrt(1.0 - ops.power(beta_2, k1)) / (1.0 - ops.power(beta_1, k1))

    def _scalar(self, value, dtype):
        """A float64 (or float32) step scalar as the variable's dtype, as torch rounds an
        ``alpha``."""
        return ops.cast(value, dtype)

    def _included(self, learning_rate):
        """A variable with rate 0 takes no part in the statistics (the references' groups)."""
        return ops.greater(learning_rate, 0)

    def get_config(self):
        config = super().get_config()
        config.update(decouple=self.decouple, d0=self.d0, growth_rate=self.growth_rate)
        return config
