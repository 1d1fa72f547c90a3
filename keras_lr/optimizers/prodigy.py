"""Prodigy (Mishchenko & Defazio 2024): Adam with a learned step size, exact to `prodigyopt`.

Prodigy estimates d, the distance from the initial weights x0 to the solution, while it
trains, and steps with ``d * learning_rate`` (keep ``learning_rate=1``; tune `d_coef`).

Reference: K. Mishchenko, A. Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free
Learner", ICML 2024 (arXiv 2306.06101); konstmish/prodigy, `prodigyopt` 1.1.2.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_lr._validation import check_float, check_int
from keras_lr.optimizers._distance import DistanceEstimator, check_beta, check_bool
from keras_lr.optimizers._distance import read as _read
from keras_lr.schedules.base import maximum, minimum

__all__ = ["Prodigy"]


@keras.saving.register_keras_serializable(package="keras_lr")
class Prodigy(DistanceEstimator):
    """Prodigy, equal to `prodigyopt.Prodigy` 1.1.2 (arguments, defaults and step).

    One step, with d the current estimate, ``lr = learning_rate(step)`` and sums over every
    variable (on the slice ``flatten()[::slice_p]`` of each)::

        beta_3 = beta_3 or sqrt(beta_2)
        bc     = sqrt(1 - beta_2**(k+1)) / (1 - beta_1**(k+1))  if use_bias_correction else 1
        dlr    = d * lr * bc
        g      = g + weight_decay * x                      # only if not decouple
        r      = beta_3 * r + (d / d0) * dlr * <g, x0 - x>
        m      = beta_1 * m + (1 - beta_1) * d * g
        v      = beta_2 * v + (1 - beta_2) * d**2 * g**2
        s      = beta_3 * s + (d / d0) * dlr * g           # safeguard_warmup: d instead of dlr
        d_hat  = d_coef * r / sum(|s|)
        d      = max(d, d_hat) if d == d0 else d
        d_max  = max(d_max, d_hat);  d = min(d_max, d * growth_rate)
        x      = x - weight_decay * dlr * x                # only if decouple (dlr: old d)
        x      = x - dlr * m / (sqrt(v) + d * epsilon)     # beta_1 = 0: dlr * d * g / (...)

    (d in the last two lines is the new estimate, dlr holds the old one.)

    A step on which every variable has rate 0, or with all-zero statistics (``sum(|s|) = 0``),
    changes nothing but m and v, as in the reference. d, its running maximum, r and the step
    count k are optimizer variables (saved with the model, restored by `DivergenceGuard`);
    `d` is the estimate and `LRMonitor` logs ``d * learning_rate``.

    With `LayerwiseLR`, a multiplier scales the step of its variables (``dlr * multiplier``);
    d is estimated from every variable whose rate is not 0, at the base rate. Multipliers of 1
    and 0 are exactly prodigyopt's param groups with ``lr`` and ``0`` (the only per-group rates
    it allows), except that prodigyopt still applies decoupled weight decay to a group with rate
    0 and this class does not.

    Names: Keras's `beta_1`, `beta_2`, `beta_3`, `epsilon` are prodigyopt's `betas`, `beta3`,
    `eps`; `fsdp_in_use` has no Keras counterpart.

    Args:
    learning_rate: float or `LearningRateSchedule` (default 1.0). The authors suggest 1.0,
        optionally with a cosine decay over the whole run.
    beta_1: first-moment decay in [0, 1) (default 0.9; 0 keeps no first moment).
    beta_2: second-moment decay in [0, 1) (default 0.999).
    beta_3: decay of the estimate's sums in [0, 1), or None for ``sqrt(beta_2)``.
    epsilon: float > 0 (default 1e-8), scaled by d in the denominator.
    weight_decay: float >= 0 (default 0).
    decouple: True (default) for AdamW-style decay, False for L2 added to the gradient.
    use_bias_correction: Adam's bias correction in the step size (default False).
    safeguard_warmup: leave the rate out of the estimate's denominator (default False;
        the authors advise True with warmup or restarts).
    d0: float > 0, the initial estimate (default 1e-6).
    d_coef: float > 0, the factor on the estimate (default 1.0): the preferred knob.
    growth_rate: float >= 1 or ``inf`` (default), the largest factor d grows by per step.
    slice_p: int >= 1 (default 1): the estimate reads every `slice_p`-th element only
        (less memory; 11 is the authors' suggestion).
    name: optional name.
    **kwargs: Keras base optimizer arguments (`clipnorm`, `global_clipnorm`, ...).

    Example:

    ```python
    model.compile(optimizer=keras_lr.optimizers.Prodigy(), loss="mse")
    model.fit(x, y, epochs=2, callbacks=[keras_lr.callbacks.LRMonitor()])  # logs d and d * lr
    ```

    Reference: Mishchenko & Defazio, ICML 2024; `prodigyopt/prodigy.py` (prodigyopt 1.1.2).
    """

    def __init__(self, learning_rate=1.0, beta_1=0.9, beta_2=0.999, beta_3=None,
                 epsilon=1e-8, weight_decay=0.0, decouple=True, use_bias_correction=False,
                 safeguard_warmup=False, d0=1e-6, d_coef=1.0, growth_rate=math.inf,
                 slice_p=1, name=None, **kwargs):
        beta_1 = check_beta("beta_1", beta_1)
        beta_2 = check_beta("beta_2", beta_2)
        beta_3 = None if beta_3 is None else check_beta("beta_3", beta_3)
        epsilon = check_float("epsilon", epsilon, minimum=0.0, strict=True)
        d_coef = check_float("d_coef", d_coef, minimum=0.0, strict=True)
        slice_p = check_int("slice_p", slice_p, minimum=1)
        super().__init__(learning_rate, weight_decay, decouple, d0, growth_rate, name, kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.beta_3 = beta_3
        self.epsilon = epsilon
        self.use_bias_correction = check_bool("use_bias_correction", use_bias_correction)
        self.safeguard_warmup = check_bool("safeguard_warmup", safeguard_warmup)
        self.d_coef = d_coef
        self.slice_p = slice_p

    # ------------------------------------------------------------------ state
    def _sliced_shape(self, variable):
        if self.slice_p == 1:
            return tuple(variable.shape)
        size = math.prod(variable.shape)
        return (-(-size // self.slice_p),)

    def _build_slots(self, var_list):
        self._m = (self.add_optimizer_variables(var_list, "exp_avg")
                   if self.beta_1 > 0 else [None] * len(var_list))
        self._v = self.add_optimizer_variables(var_list, "exp_avg_sq")
        self._s, self._x0 = [], []
        for variable in var_list:
            if self._overwrite_variable_with_gradient(variable):
                self._s.append(None)
                self._x0.append(None)
                continue
            prefix = getattr(variable, "path", variable.name).replace("/", "_")
            shape = self._sliced_shape(variable)
            self._s.append(self.add_variable(shape, dtype=variable.dtype, name=f"{prefix}_s"))
            self._x0.append(self.add_variable(shape, dtype=variable.dtype, name=f"{prefix}_x0"))

    def _build_scalars(self, d0):
        self._d_max = self.add_variable((), initializer=d0, dtype=self._sdtype, name="d_max")

    def _slice(self, value):
        if self.slice_p == 1:
            return value
        return ops.reshape(value, (-1,))[:: self.slice_p]

    # ------------------------------------------------------------------ step
    def _begin(self, lr):
        d = ops.copy(ops.convert_to_tensor(self._d))
        bc = self._bias_correction(self.beta_1, self.beta_2, self.use_bias_correction)
        return {"d": d, "bc": bc, "dlr": d * lr * bc}

    def _stats_scalars(self, learning_rate, dtype, state):
        included = self._included(learning_rate)
        d, dlr = state["d"], state["dlr"]
        ratio = d / self.d0
        one = ops.ones((), dtype)

        def decay(beta):  # 1 for a variable that takes no part (its gradient is gated to 0)
            return ops.where(included, ops.cast(beta, dtype), one)

        return {
            "included": included, "numerator": ratio * dlr,
            "beta_1": decay(self.beta_1), "alpha_1": ops.cast(d * (1.0 - self.beta_1), dtype),
            "beta_2": decay(self.beta_2),
            "alpha_2": ops.cast(d * d * (1.0 - self.beta_2), dtype),
            "beta_3": decay(self._beta_3()),
            "alpha_3": ops.cast(ratio * (d if self.safeguard_warmup else dlr), dtype),
        }

    def _stats(self, gradient, variable, learning_rate, state):
        index = self._get_variable_index(variable)
        c = self._scalars(learning_rate, variable.dtype, state, self._stats_scalars)
        g = self._gate(self._coupled_gradient(gradient, variable), c["included"])
        g_slice = self._slice(g)
        x_slice = self._slice(_read(variable))
        x0 = self._x0[index]
        x0_value = ops.where(state["first"], x_slice, _read(x0))
        self.assign(x0, x0_value)
        dot = ops.cast(ops.sum(g_slice * (x0_value - x_slice)), self._sdtype)
        self._add("numerator", c["numerator"] * dot)  # 0 for a gated gradient
        if self._m[index] is not None:
            m = self._m[index]
            self.assign(m, c["beta_1"] * m + c["alpha_1"] * g)
        v = self._v[index]
        self.assign(v, c["beta_2"] * v + c["alpha_2"] * g * g)
        s = self._s[index]
        s_value = c["beta_3"] * s + c["alpha_3"] * g_slice
        self.assign(s, s_value)
        l1 = ops.cast(ops.sum(ops.abs(s_value)), self._sdtype)
        self._add("denominator", ops.where(c["included"], l1, 0.0))

    def _beta_3(self):
        return math.sqrt(self.beta_2) if self.beta_3 is None else self.beta_3

    def _finish(self, state):
        numerator = self._beta_3() * self._numerator + state["numerator"]
        denominator = state["denominator"]
        positive = ops.greater(denominator, 0.0)
        d = state["d"]
        d_hat = self.d_coef * numerator / ops.where(positive, denominator, 1.0)
        # "d == d0" at float32: d's variable may hold d0 rounded through float32 (TensorFlow's
        # initializer) or exactly (torch); compared at float32 both read as d0, as in the
        # reference, where d and d0 are the same Python float until d first moves.
        at_d0 = ops.equal(ops.cast(d, "float32"), ops.cast(self.d0, "float32"))
        d_new = ops.where(at_d0, maximum(d, d_hat), d)
        d_max = maximum(_read(self._d_max), d_hat)
        d_new = minimum(d_max, d_new * self.growth_rate)
        d_new = ops.where(positive, d_new, d)
        state["progress"] = ops.cast(positive, self._sdtype)
        state["d_new"] = d_new
        self.assign(self._d, d_new)
        self.assign(self._d_max, ops.where(positive, d_max, _read(self._d_max)))
        self.assign(self._numerator, ops.where(positive, numerator, _read(self._numerator)))

    def _step_scalars(self, learning_rate, dtype, state):
        # The rate of these variables (LayerwiseLR's multiplier included); 0 without progress.
        dlr = (state["d"] * ops.cast(learning_rate, self._sdtype) * state["bc"]
               * state["progress"])
        values = {"dlr": ops.cast(dlr, dtype), "eps": ops.cast(state["d_new"] * self.epsilon,
                                                               dtype)}
        if self.decouple and self.weight_decay:
            values["decay"] = ops.cast(self.weight_decay * dlr, dtype)
        if self.beta_1 == 0:
            values["alpha"] = ops.cast(dlr * state["d_new"], dtype)  # the new d, as the reference
        return values

    def _step(self, gradient, variable, learning_rate, state):
        index = self._get_variable_index(variable)
        c = self._scalars(learning_rate, variable.dtype, state, self._step_scalars)
        denom = ops.sqrt(self._v[index]) + c["eps"]
        value = variable
        if self.decouple and self._decay(variable):
            value = value - c["decay"] * value
        if self._m[index] is not None:
            value = value - c["dlr"] * self._m[index] / denom
        else:
            value = value - c["alpha"] * self._coupled_gradient(gradient, variable) / denom
        self.assign(variable, value)

    def get_config(self):
        config = super().get_config()
        config.update(
            beta_1=self.beta_1, beta_2=self.beta_2, beta_3=self.beta_3, epsilon=self.epsilon,
            use_bias_correction=self.use_bias_correction,
            safeguard_warmup=self.safeguard_warmup, d_coef=self.d_coef, slice_p=self.slice_p,
        )
        return config
