"""D-Adaptation Adam (Defazio & Mishchenko 2023), exact to the `dadaptation` package.

D-Adaptation estimates d, a lower bound on the distance to the solution, from the
gradients it has seen, and steps with ``d * learning_rate`` (keep ``learning_rate=1``).

Reference: A. Defazio, K. Mishchenko, "Learning-Rate-Free Learning by D-Adaptation",
ICML 2023 (arXiv 2301.07733); facebookresearch/dadaptation 3.2, ``DAdaptAdam``.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_lr._validation import check_float
from keras_lr.optimizers._distance import DistanceEstimator, after, check_beta, check_bool
from keras_lr.optimizers._distance import read as _read
from keras_lr.schedules.base import maximum, minimum

__all__ = ["DAdaptAdam"]


@keras.saving.register_keras_serializable(package="keras_lr")
class DAdaptAdam(DistanceEstimator):
    """D-Adaptation Adam, equal to `dadaptation.DAdaptAdam` 3.2 (arguments, defaults, step).

    One step, with d the current estimate, ``lr = learning_rate(step)``, ``b = sqrt(beta_2)``,
    sums over every variable and ``layer_scale`` the variable's `LayerwiseLR` multiplier::

        bc    = sqrt(1 - beta_2**(k+1)) / (1 - beta_1**(k+1))  if use_bias_correction else 1
        dlr   = d * lr * bc
        g     = g + weight_decay * x                          # only if not decouple
        acc   = sum(layer_scale * dlr * <g, s / (sqrt(v) + epsilon)>)   # old s and v
        m     = beta_1 * m + (1 - beta_1) * layer_scale * dlr * g
        v     = beta_2 * v + (1 - beta_2) * g**2
        s     = b * s + (1 - b) * dlr * g
        num   = b * num + (1 - b) * acc
        d     = max(d, min(num / ((1 - b) * sum(layer_scale * |s|)), d * growth_rate))
        x     = x - weight_decay * dlr * x                    # only if decouple (old d)
        x     = x - m / (sqrt(v) + epsilon)

    A step with ``sum(|s|) = 0`` (rate 0 everywhere, or all-zero gradients) moves no
    variable and leaves d, num and k, as in the reference. d, num and the step count k are
    optimizer variables; `d` is the estimate and `LRMonitor` logs ``d * learning_rate``.

    With `LayerwiseLR`, a multiplier is the reference's per-group ``layer_scale`` (the only
    per-group rate it allows besides 0): it scales the variable's step and its weight in the
    estimate, not its decoupled weight decay. A multiplier of 0 freezes the variable.

    Names: Keras's `beta_1`, `beta_2`, `epsilon` are dadaptation's `betas` and `eps`;
    `log_every` and `fsdp_in_use` have no Keras counterpart (use `LRMonitor` to log d).

    Args:
        learning_rate: float or `LearningRateSchedule` (default 1.0; it scales the estimate).
        beta_1: first-moment decay in [0, 1) (default 0.9).
        beta_2: second-moment decay in [0, 1) (default 0.999).
        epsilon: float > 0 (default 1e-8).
        weight_decay: float >= 0 (default 0).
        decouple: False (default) for L2 added to the gradient, True for AdamW-style decay.
        use_bias_correction: Adam's bias correction in the step size (default False).
        d0: float > 0, the initial estimate (default 1e-6).
        growth_rate: float >= 1 or ``inf`` (default), the largest factor d grows by per step.
        name: optional name.
        **kwargs: Keras base optimizer arguments (`clipnorm`, `global_clipnorm`, ...).

    Example:

    ```python
    model.compile(optimizer=keras_lr.optimizers.DAdaptAdam(), loss="mse")
    ```

    Reference: Defazio & Mishchenko, ICML 2023; `dadaptation/dadapt_adam.py` (3.2).
    """

    def __init__(self, learning_rate=1.0, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=0.0, decouple=False, use_bias_correction=False, d0=1e-6,
                 growth_rate=math.inf, name=None, **kwargs):
        beta_1 = check_beta("beta_1", beta_1)
        beta_2 = check_beta("beta_2", beta_2)
        epsilon = check_float("epsilon", epsilon, minimum=0.0, strict=True)
        super().__init__(learning_rate, weight_decay, decouple, d0, growth_rate, name, kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.use_bias_correction = check_bool("use_bias_correction", use_bias_correction)

    def _build_slots(self, var_list):
        self._m, self._v, self._s = self.add_optimizer_variables(
            var_list, ["exp_avg", "exp_avg_sq", "s"])

    # ------------------------------------------------------------------ step
    def _begin(self, lr):
        d = ops.copy(ops.convert_to_tensor(self._d))
        bc = self._bias_correction(self.beta_1, self.beta_2, self.use_bias_correction)
        return {"d": d, "bc": bc, "dlr": d * lr * bc, "base_lr": lr}

    def _layer_scale(self, learning_rate, state):
        lr = state["base_lr"]
        return ops.cast(learning_rate, self._sdtype) / ops.where(ops.greater(lr, 0), lr, 1.0)

    def _stats_scalars(self, learning_rate, dtype, state):
        included = self._included(learning_rate)
        scale = self._layer_scale(learning_rate, state)
        dlr = state["dlr"]
        root = math.sqrt(self.beta_2)
        one = ops.ones((), dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        return {
            "included": included, "scale": scale, "numerator": scale * dlr,
            "eps": ops.cast(self.epsilon, dtype),
            # Decays of 1 for a variable that takes no part (its gradient is gated to 0).
            "beta_1": ops.where(included, ops.cast(self.beta_1, dtype), one),
            "alpha_1": ops.cast(scale * dlr * (1.0 - self.beta_1), dtype),
            "beta_2": ops.where(included, beta_2, one), "alpha_2": 1.0 - beta_2,
            "root": ops.where(included, ops.cast(root, dtype), one),
            "alpha_3": ops.cast(dlr * (1.0 - root), dtype),
        }

    def _stats(self, gradient, variable, learning_rate, state):
        index = self._get_variable_index(variable)
        c = self._scalars(learning_rate, variable.dtype, state, self._stats_scalars)
        g = self._gate(self._coupled_gradient(gradient, variable), c["included"])
        m, v, s = self._m[index], self._v[index], self._s[index]
        denom = ops.sqrt(v) + c["eps"]
        dot = ops.sum(g * (s / denom))
        self._add("numerator", c["numerator"] * ops.cast(dot, self._sdtype))  # 0 if gated
        self.assign(m, c["beta_1"] * m + c["alpha_1"] * g)
        # v and s are overwritten after the dot product reads them: ordered, not copied.
        beta_2, root = after(dot, c["beta_2"], c["root"])
        self.assign(v, beta_2 * v + c["alpha_2"] * g * g)
        s_value = root * s + c["alpha_3"] * g
        self.assign(s, s_value)
        l1 = c["scale"] * ops.cast(ops.sum(ops.abs(s_value)), self._sdtype)
        self._add("denominator", ops.where(c["included"], l1, 0.0))

    def _finish(self, state):
        root = math.sqrt(self.beta_2)
        numerator = root * self._numerator + (1.0 - root) * state["numerator"]
        denominator = state["denominator"]
        positive = ops.greater(denominator, 0.0)
        d = state["d"]
        d_hat = numerator / ((1.0 - root) * ops.where(positive, denominator, 1.0))
        d_new = ops.where(positive, maximum(d, minimum(d_hat, d * self.growth_rate)), d)
        state["progress"] = ops.cast(positive, self._sdtype)
        self.assign(self._d, d_new)
        self.assign(self._numerator, ops.where(positive, numerator, _read(self._numerator)))

    def _step_scalars(self, learning_rate, dtype, state):
        progress = state["progress"]
        values = {"eps": ops.cast(self.epsilon, dtype), "progress": ops.cast(progress, dtype)}
        if self.decouple and self.weight_decay:
            values["decay"] = ops.cast(self.weight_decay * state["dlr"] * progress, dtype)
        return values

    def _step(self, gradient, variable, learning_rate, state):
        index = self._get_variable_index(variable)
        c = self._scalars(learning_rate, variable.dtype, state, self._step_scalars)
        denom = ops.sqrt(self._v[index]) + c["eps"]
        value = variable
        if self.decouple and self._decay(variable):
            value = value - c["decay"] * value
        value = value - c["progress"] * self._m[index] / denom
        self.assign(variable, value)

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                      use_bias_correction=self.use_bias_correction)
        return config
