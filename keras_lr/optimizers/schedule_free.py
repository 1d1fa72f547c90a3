"""Schedule-free AdamW and SGD (Defazio et al. 2024), exact to the `schedulefree` package.

Schedule-free training keeps two sequences per variable: `z`, where the base optimizer steps,
and `x`, a weighted average of the `z` iterates. Gradients are taken at the interpolation
``y = beta * x + (1 - beta) * z``, which is what the model's variables hold during training::

    sched   = min((k + 1) / warmup_steps, 1)         # k = optimizer.iterations, from 0
    lr      = learning_rate(k) * sched
    lr_max  = max(lr_max, lr)                        # running maximum, starts at -1
    weight  = (k + 1) ** r * lr_max ** weight_lr_power
    c       = weight / (weight_sum += weight)        # 0 while weight_sum == 0
    g_hat   = direction(g) + weight_decay * y        # AdamW: g / (sqrt(v / bc2) + eps)
    y       = (1 - c) * y + c * z + lr * (beta * (1 - c) - 1) * g_hat
    z       = z - lr * g_hat

The evaluation point is ``x = (y - (1 - beta) * z) / beta``: validate, evaluate and save at x
(`keras_lr.callbacks.ScheduleFreeEval` does the swaps); train at y. `eval_mode`, an optimizer
variable, records which of the two the model holds, so a saved model says what it holds.

Reference: A. Defazio, X. Yang, H. Mehta, K. Mishchenko, A. Khaled, A. Cutkosky, "The Road
Less Scheduled", NeurIPS 2024 (arXiv 2405.15682); facebookresearch/schedule_free 1.4.1,
``AdamWScheduleFree`` and ``SGDScheduleFree``.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_lr._validation import check_float, check_int, check_open_interval

__all__ = ["ScheduleFreeAdamW", "ScheduleFreeSGD"]


class _ScheduleFree(keras.optimizers.Optimizer):
    """Shared machinery: the averaging weights, the interpolation and the x/y swap."""

    def __init__(self, learning_rate, beta, weight_decay, warmup_steps, r, weight_lr_power,
                 name, kwargs):
        weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, name=name,
                         **kwargs)
        self._beta = beta
        self.warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
        self.r = check_float("r", r, minimum=0.0)
        self.weight_lr_power = check_float("weight_lr_power", weight_lr_power, minimum=0.0)
        self._step_values = None

    # ------------------------------------------------------------------ state
    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # z starts at the variable's value at the first step (see `update_step`): an assign
        # here would be traced into every step on TensorFlow, where the optimizer is built
        # inside the first train step, and an initializer reading the variable cannot be
        # lifted out of an XLA function. (Keras 3.15's own ScheduleFreeAdamW assigns, so its
        # z starts at 0 in `fit`.)
        self._z = self.add_optimizer_variables(var_list, "z")
        self._build_slots(var_list)
        self._lr_max = self.add_variable(
            (), initializer=keras.initializers.Constant(-1.0), dtype="float32", name="lr_max")
        self._weight_sum = self.add_variable((), dtype="float32", name="weight_sum")
        self._eval_mode = self.add_variable((), dtype="float32", name="eval_mode")

    def _build_slots(self, var_list):
        pass

    @property
    def eval_mode(self):
        """Scalar variable: 1.0 while the model's variables hold x, 0.0 while they hold y."""
        return self._eval_mode

    def z_variables(self):
        """``(model_variable, z)`` pairs (z is None for variables the optimizer skips).

        z holds the base sequence from the first step on (before it, x = y = z is the
        variable itself and z reads 0).
        """
        return list(zip(self._trainable_variables, self._z))

    @property
    def interpolation(self):
        """The interpolation coefficient beta (``beta_1`` or ``momentum``)."""
        return self._beta

    # ------------------------------------------------------------------ step
    def _apply_weight_decay(self, variables):
        # Weight decay is taken at y inside the step (the reference), not decoupled before it.
        return None

    def _prepare(self, k):
        """Per-step scalars the per-variable update needs (subclasses add theirs)."""
        return {}

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        k = ops.cast(self.iterations, "float32")
        lr = ops.cast(learning_rate, "float32")
        if self.warmup_steps > 0:
            sched = ops.minimum((k + 1.0) / float(self.warmup_steps), 1.0)
        else:
            sched = ops.ones((), "float32")
        lr_max = ops.maximum(self._lr_max, lr * sched)
        weight = ops.power(k + 1.0, self.r) * ops.power(lr_max, self.weight_lr_power)
        weight_sum = self._weight_sum + weight
        positive = ops.greater(weight_sum, 0.0)
        c = ops.where(positive, weight / ops.where(positive, weight_sum, 1.0), 0.0)
        self.assign(self._lr_max, lr_max)
        self.assign(self._weight_sum, weight_sum)
        first = ops.equal(self.iterations, 0)
        # object.__setattr__: TensorFlow's attribute tracking would wrap the dict.
        object.__setattr__(self, "_step_values",
                           dict(self._prepare(k), sched=sched, c=c, first=first))
        try:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            object.__setattr__(self, "_step_values", None)

    def _direction(self, gradient, index, scalars):
        return gradient

    def _scalars(self, learning_rate, dtype):
        """The step's scalars for this rate and dtype, made once per step for all the
        variables that share them (all of them in a plain optimizer); the cache holds the
        rate, so its id cannot be reused by another tensor within the step."""
        cache = self._step_values.setdefault("cache", [])
        for rate, cached_dtype, values in cache:
            if rate is learning_rate and cached_dtype == dtype:
                return values
        step = self._step_values
        lr = ops.cast(learning_rate, dtype) * ops.cast(step["sched"], dtype)
        c = ops.cast(step["c"], dtype)
        beta = ops.cast(self._beta, dtype)
        # c_y: c on ``z - y``, 0 at the first step, where z (still 0) stands for y itself.
        c_y = ops.where(step["first"], ops.zeros((), dtype), c)
        values = {"lr": lr, "c_y": c_y, "y_rate": lr * (beta * (1.0 - c) - 1.0),
                  "weight_decay": ops.cast(self.weight_decay, dtype)}
        values.update(self._direction_scalars(dtype))
        cache.append((learning_rate, dtype, values))
        return values

    def _direction_scalars(self, dtype):
        return {}

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        z = self._z[index]
        gradient = ops.cast(gradient, dtype)
        s = self._scalars(learning_rate, dtype)
        z_value = ops.convert_to_tensor(z)
        g_hat = self._direction(gradient, index, s)
        if self.weight_decay and self._use_weight_decay(variable):
            g_hat = g_hat + s["weight_decay"] * variable
        # lr * (beta * (1 - c) - 1) * g_hat, its scalar product made once per step.
        y = variable + s["c_y"] * (z_value - variable) + s["y_rate"] * g_hat
        self.assign(variable, y)
        # z starts at y: at the first step c is 1 (any rate > 0: the first weight is the
        # whole sum), so the y step above is ``y - lr * g_hat``, z's step from z = y, bitwise;
        # with rate 0 both are y. Taking z from the new y, not the old one, keeps the old y
        # out of z's update: on XLA an update that reads both old y and old z makes it copy
        # every variable and every z each step (they are updated in place, in two loops).
        self.assign(z, ops.where(self._step_values["first"], y, z_value - s["lr"] * g_hat))

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        config.update(
            warmup_steps=self.warmup_steps, r=self.r, weight_lr_power=self.weight_lr_power
        )
        return config


def _check_beta(name, value):
    return check_open_interval(name, value, 0.0, 1.0)


@keras.saving.register_keras_serializable(package="keras_lr")
class ScheduleFreeAdamW(_ScheduleFree):
    """Schedule-free AdamW, equal to `schedulefree.AdamWScheduleFree` 1.4.1.

    No schedule is needed (warmup is built in), and the model's variables hold the training
    point y. Evaluate and save at the average x: add `keras_lr.callbacks.ScheduleFreeEval` to
    `fit` (and give it to `evaluate`/`predict` outside `fit`). Unlike Keras's own
    `keras.optimizers.ScheduleFreeAdamW` (uniform 1/t averaging, decay before the step with
    the un-warmed rate), this one has the reference's `r`, `weight_lr_power` (the lr**2
    weighting of the average during warmup) and weight decay taken at y inside the step.

    Per step, with ``k = iterations`` and ``bc2 = 1 - beta_2 ** (k + 1)``::

        v     = beta_2 * v + (1 - beta_2) * g ** 2
        g_hat = g / (sqrt(v / bc2) + epsilon) + weight_decay * y
        y     = (1 - c) * y + c * z + lr * (beta_1 * (1 - c) - 1) * g_hat
        z     = z - lr * g_hat

    with `lr`, the warmup and the averaging weight `c` as in the module docstring. `beta_1` is
    the interpolation/averaging coefficient; there is no first moment.

    Args:
        learning_rate: float or `LearningRateSchedule` (default 0.0025, the reference's).
            A schedule multiplies the built-in warmup; `lr_max` follows the scheduled rate.
        beta_1: interpolation coefficient in (0, 1) (default 0.9).
        beta_2: second-moment decay in (0, 1) (default 0.999).
        epsilon: float > 0 added to the denominator (default 1e-8).
        weight_decay: float >= 0, L2 weight decay taken at y (default 0).
        warmup_steps: int >= 0, linear warmup steps (default 0).
        r: float >= 0, polynomial weighting ``(k + 1) ** r`` of the average (default 0).
        weight_lr_power: float >= 0, the average weights ``lr_max ** weight_lr_power``
            (default 2).
        name: optional name.
        **kwargs: Keras base optimizer arguments (`clipnorm`, `global_clipnorm`, `clipvalue`,
            `gradient_accumulation_steps`, `loss_scale_factor`, ...).

    Example:

    ```python
    model.compile(optimizer=keras_lr.optimizers.ScheduleFreeAdamW(1e-3, warmup_steps=100),
                  loss="mse")
    model.fit(x, y, epochs=2, callbacks=[keras_lr.callbacks.ScheduleFreeEval()])
    ```

    Reference: Defazio et al., "The Road Less Scheduled", NeurIPS 2024;
    `schedulefree/adamw_schedulefree.py` (facebookresearch/schedule_free 1.4.1).
    """

    def __init__(self, learning_rate=0.0025, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0, name=None,
                 **kwargs):
        beta_1 = _check_beta("beta_1", beta_1)
        beta_2 = _check_beta("beta_2", beta_2)
        epsilon = check_float("epsilon", epsilon, minimum=0.0, strict=True)
        super().__init__(learning_rate, beta_1, weight_decay, warmup_steps, r, weight_lr_power,
                         name, kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def _build_slots(self, var_list):
        self._v = self.add_optimizer_variables(var_list, "velocity")

    def _prepare(self, k):
        return {"bc2": 1.0 - ops.power(ops.cast(self.beta_2, "float32"), k + 1.0)}

    def _direction_scalars(self, dtype):
        beta_2 = ops.cast(self.beta_2, dtype)
        return {"beta_2": beta_2, "alpha_2": 1.0 - beta_2,
                "bc2": ops.cast(self._step_values["bc2"], dtype),
                "epsilon": ops.cast(self.epsilon, dtype)}

    def _direction(self, gradient, index, scalars):
        v = self._v[index]
        self.assign(v, scalars["beta_2"] * v + scalars["alpha_2"] * ops.square(gradient))
        return gradient / (ops.sqrt(v / scalars["bc2"]) + scalars["epsilon"])

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        return config


@keras.saving.register_keras_serializable(package="keras_lr")
class ScheduleFreeSGD(_ScheduleFree):
    """Schedule-free SGD, equal to `schedulefree.SGDScheduleFree` 1.4.1.

    Per step, with `lr`, the warmup and the averaging weight `c` as in the module docstring::

        g_hat = g + weight_decay * y
        y     = (1 - c) * y + c * z + lr * (momentum * (1 - c) - 1) * g_hat
        z     = z - lr * g_hat

    `momentum` is the interpolation coefficient beta. The reference README suggests a rate
    10x-50x larger than for classical SGD. Evaluate and save at x with
    `keras_lr.callbacks.ScheduleFreeEval`.

    Args:
        learning_rate: float or `LearningRateSchedule` (default 1.0, the reference's).
        momentum: interpolation coefficient in (0, 1) (default 0.9).
        weight_decay: float >= 0, L2 weight decay taken at y (default 0).
        warmup_steps: int >= 0, linear warmup steps (default 0).
        r: float >= 0, polynomial weighting of the average (default 0).
        weight_lr_power: float >= 0 (default 2).
        name: optional name.
        **kwargs: Keras base optimizer arguments.

    Example:

    ```python
    model.compile(optimizer=keras_lr.optimizers.ScheduleFreeSGD(0.5, warmup_steps=50),
                  loss="mse")
    ```

    Reference: Defazio et al., "The Road Less Scheduled", NeurIPS 2024;
    `schedulefree/sgd_schedulefree.py` (facebookresearch/schedule_free 1.4.1).
    """

    def __init__(self, learning_rate=1.0, momentum=0.9, weight_decay=0.0, warmup_steps=0,
                 r=0.0, weight_lr_power=2.0, name=None, **kwargs):
        momentum = _check_beta("momentum", momentum)
        super().__init__(learning_rate, momentum, weight_decay, warmup_steps, r,
                         weight_lr_power, name, kwargs)
        self.momentum = momentum

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum)
        return config
