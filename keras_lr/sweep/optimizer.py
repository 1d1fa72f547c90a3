"""Per-replica learning rates, clipping and divergence freezing for any Keras optimizer.

`replicated_optimizer` builds an instance of a subclass of the user's optimizer class (Adam,
SGD, AdamW, ...) whose variables all carry the replica axis first (see
`keras_lr.sweep.replicate`). Per step, for replica ``i``:

1. ``finite_i`` = every gradient slice ``g[i]`` is finite; a replica whose gradients are not
   finite is **frozen** from this step on (``alive_i = 0``) and the step is recorded;
2. gradients of frozen replicas are replaced by zeros (their NaNs never reach a slot);
3. clipping runs per replica: ``clipnorm`` on each ``g[i]``, ``global_clipnorm`` on the global
   norm of replica ``i``'s gradients, ``clipvalue`` element-wise (as Keras);
4. the update uses ``lr_i(t) = schedule(t) * rate_i * alive_i`` (the rate is scaled, not the
   gradient, so Adam stays exact); decoupled weight decay uses the same ``lr_i(t)``. The
   rates live in the variable ``replica_rate`` (``(N,)``), which a custom loop may assign
   before any step;
5. frozen replicas' weights are restored to their value before the step, whatever the
   optimizer (SGD with momentum would otherwise keep moving them). Their optimizer slots
   (momentums, Adam's moments) may still change, but never reach the weights again; restoring
   them too measured about 5% slower sweeps (`benchmarks/sweep_speed.py`) for nothing
   visible;
6. a replica whose finite gradients still produce non-finite weights (an overflowing update)
   is frozen at the same step, before those weights are kept.

Only element-wise optimizers can be replicated (`ELEMENTWISE_OPTIMIZERS`): Adafactor, Lamb,
Muon and the like compute norms or factored statistics over a whole variable, which would
mix the replicas stacked in it.

Every operation is element-wise in the replica axis, so one replica's NaN leaves the others
bit-identical to a run without it.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
from keras import ops

from keras_lr._validation import fail

__all__ = ["ELEMENTWISE_OPTIMIZERS", "ReplicaOptimizerMixin", "replicated_optimizer"]

ELEMENTWISE_OPTIMIZERS = (
    "SGD", "Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad", "Adadelta", "Ftrl", "Lion",
)
"""Keras optimizers whose update is element-wise in every variable (checked against the
Keras 3.15 sources), so that replicas stacked in one variable stay independent."""


def _per_replica(value, rank: int):
    """Reshape a ``(N,)`` vector to broadcast against a rank-`rank` replicated tensor."""
    return ops.reshape(value, (-1,) + (1,) * (rank - 1))


def _reduce_axes(tensor):
    return tuple(range(1, len(tensor.shape)))


class ReplicaOptimizerMixin:
    """Mixed in before a Keras optimizer class by `replicated_optimizer`."""

    def build(self, variables):
        super().build(variables)
        n = len(self.replica_rates)
        # A variable, not a constant: a caller may assign per-step rates (keras-lr study).
        rates = np.asarray(self.replica_rates, dtype="float32")
        self.replica_rate = self.add_variable(
            shape=(n,), dtype="float32", name="replica_rate",
            initializer=lambda shape, dtype: ops.convert_to_tensor(rates, dtype),
        )
        self.replica_alive = self.add_variable(
            shape=(n,), initializer="ones", dtype="float32", name="replica_alive"
        )
        self.replica_diverged_step = self.add_variable(
            shape=(n,), initializer=keras.initializers.Constant(-1.0), dtype="float32",
            name="replica_diverged_step",
        )

    def _backend_apply_gradients(self, grads, trainable_variables):
        finite = None
        for g in grads:
            ok = ops.all(ops.isfinite(g), axis=_reduce_axes(g))
            finite = ok if finite is None else ops.logical_and(finite, ok)
        was_alive = ops.greater(self.replica_alive, 0.5)
        alive = ops.logical_and(was_alive, finite)
        self._replica_alive_now = alive
        self._replica_lr = ops.multiply(
            ops.convert_to_tensor(self.replica_rate), ops.cast(alive, "float32")
        )
        grads = [
            ops.where(_per_replica(alive, len(g.shape)), g, ops.zeros_like(g)) for g in grads
        ]
        variables = list(trainable_variables)
        # A real copy: on TensorFlow `convert_to_tensor(variable)` is the variable itself,
        # whose "before" value would then be read after the update.
        before = [ops.copy(v.value) for v in variables]
        super()._backend_apply_gradients(grads, variables)
        for v in variables:  # an overflowing update freezes its replica too
            ok = ops.all(ops.isfinite(v.value), axis=_reduce_axes(v))
            alive = ops.logical_and(alive, ok)
        for v, old in zip(variables, before, strict=True):
            keep = _per_replica(alive, len(v.shape))
            v.assign(ops.where(keep, v.value, old))  # read after the update
        newly = ops.logical_and(was_alive, ops.logical_not(alive))
        step = ops.cast(self.iterations, "float32")
        self.replica_diverged_step.assign(ops.where(newly, step, self.replica_diverged_step.value))
        self.replica_alive.assign(ops.cast(alive, "float32"))

    def _clip_gradients(self, grads):
        if self.clipnorm and self.clipnorm > 0:
            return [self._replica_clip_by_norm(g) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            sq = None
            for g in grads:
                s = ops.sum(ops.square(g), axis=_reduce_axes(g))
                sq = s if sq is None else sq + s
            norm = ops.sqrt(sq)
            clip = self.global_clipnorm
            scale = clip * ops.minimum(1.0 / norm, 1.0 / clip)
            return [g * ops.cast(_per_replica(scale, len(g.shape)), g.dtype) for g in grads]
        return super()._clip_gradients(grads)

    def _replica_clip_by_norm(self, g):
        l2sum = ops.sum(ops.square(g), _reduce_axes(g), keepdims=True)
        pred = l2sum > 0
        l2norm = ops.where(pred, ops.sqrt(ops.where(pred, l2sum, ops.ones_like(l2sum))), l2sum)
        return ops.multiply(g, self.clipnorm) / ops.maximum(l2norm, self.clipnorm)

    def _replica_rate(self, learning_rate, variable):
        lr = ops.cast(learning_rate, variable.dtype)
        return lr * ops.cast(_per_replica(self._replica_lr, len(variable.shape)), variable.dtype)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        for variable in variables:
            if self._use_weight_decay(variable):
                lr = self._replica_rate(self.learning_rate, variable)
                wd = ops.cast(self.weight_decay, variable.dtype)
                variable.assign(variable - variable * wd * lr)

    def update_step(self, gradient, variable, learning_rate):
        # Frozen replicas get a zero rate here; `_backend_apply_gradients` restores them.
        super().update_step(gradient, variable, self._replica_rate(learning_rate, variable))


def _keras_class(cls):
    """The Keras class of an optimizer class: on torch, ``keras.optimizers.Adam()`` builds a
    fused subclass (``keras.src.backend.torch.optimizers``) whose update never calls
    `update_step`, where the per-replica rates apply; its Keras parent runs the per-variable
    path. Any other class is itself."""
    public = getattr(keras.optimizers, cls.__name__, None)
    if (isinstance(public, type) and cls is not public and issubclass(cls, public)
            and cls.__module__.startswith("keras.src.backend.")):
        return public
    return cls


@functools.cache
def _subclass(cls):
    return type(f"Replicated{cls.__name__}", (ReplicaOptimizerMixin, cls), {})


def replicated_optimizer(optimizer, rates, learning_rate=1.0):
    """A copy of `optimizer` that trains replica ``i`` with rate ``rates[i] * learning_rate``.

    Args:
        optimizer: a Keras optimizer name, config dict or (unbuilt) instance; its own
            learning rate is ignored.
        rates: the N per-replica rates.
        learning_rate: the shared factor, a float or a schedule (a shape: ``1.0`` at peak).

    Returns:
        A new, unbuilt optimizer instance.

    Raises:
        ValueError: `optimizer` is not one of `ELEMENTWISE_OPTIMIZERS` (Adafactor, Lamb,
            Muon, subclasses, ...), is built, or accumulates gradients.
        TypeError: `optimizer` is a wrapper (e.g. `LossScaleOptimizer`).

    Example:
        >>> opt = replicated_optimizer("adam", [1e-3, 1e-2])
        >>> type(opt).__name__
        'ReplicatedAdam'
    """
    try:
        base = keras.optimizers.get(optimizer)
    except ValueError:
        fail("optimizer", "must be a Keras optimizer name, config or instance", optimizer)
    if not isinstance(base, keras.optimizers.Optimizer) or hasattr(base, "inner_optimizer"):
        fail(
            "optimizer",
            "must be a plain Keras optimizer (wrappers such as LossScaleOptimizer or keras-lr "
            "wrappers cannot be replicated)",
            optimizer,
            TypeError,
        )
    cls = _keras_class(type(base))
    if cls.__name__ not in ELEMENTWISE_OPTIMIZERS or cls is not getattr(
            keras.optimizers, cls.__name__, None):
        fail(
            "optimizer",
            "must be an element-wise Keras optimizer (one of "
            f"{', '.join(ELEMENTWISE_OPTIMIZERS)}); others, here {cls.__name__}, may "
            "compute norms or statistics over whole variables, which would mix the replicas "
            "stacked in them",
            optimizer,
        )
    if getattr(base, "built", False):
        fail("optimizer", "must not be built yet (pass a fresh instance or a name)", optimizer)
    config = base.get_config()
    if config.get("gradient_accumulation_steps"):
        fail(
            "optimizer",
            "must not use gradient_accumulation_steps in a parallel sweep",
            config["gradient_accumulation_steps"],
        )
    config.pop("learning_rate", None)
    opt = _subclass(cls)(learning_rate=learning_rate, **config)
    opt.replica_rates = np.asarray(rates, dtype="float32")
    return opt
