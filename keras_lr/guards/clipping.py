"""Gradient clipping rules used by `keras_lr.guards.GradientGuard`.

A rule is a small serializable object with one method::

    new_grads, clipped = rule.clip(grads, variables, total_norm)

called inside the train step (graph code, `keras.ops` only). `clipped` is a boolean scalar
tensor, True when the rule changed at least one gradient; the guard counts such steps.
`total_norm` is the L2 norm over all gradients, computed once by the guard. Rules that keep
state (`AutoClip`, ``stateful = True``) create it as optimizer variables in
`build(optimizer, variables)`, so the state is saved with the model and restored with it; the
guard calls their `clip` only on finite steps.

Stateless rules are pure, so the guard computes them in the same pass as the global norm,
before the finiteness test: ``total_norm, new_grads, clipped = rule.norm_and_clip(grads,
variables)``. `AdaptiveClip` overrides it to share its per-unit sums of squares with the global
norm and to compute its clip factors for every variable in one batched pass (on a small model
without XLA every graph op costs a few microseconds, whatever its size). On torch, where
every `keras.ops` call pays its Python dispatch, `global_norm` and `AdaptiveClip` run the same
kernels through torch directly (`keras_lr.guards._torch`, bit-identical).

Rules: `GlobalNorm`, `ValueClip`, `PerLayerNorm`, `AdaptiveClip` (NFNet AGC) and `AutoClip`.
`get(identifier)` accepts a rule, a serialized rule (dict) or one of the strings ``"agc"``,
``"adaptive_clip"``, ``"autoclip"``, ``"auto_clip"`` (rules with defaults for every argument).

Reference:
    Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image Recognition Without
    Normalization", ICML 2021 (adaptive gradient clipping).
    Seetharaman, Wichern, Pardo & Le Roux, "AutoClip: Adaptive Gradient Clipping for Source
    Separation Networks", MLSP 2020.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_lr._validation import check_float, check_int, fail

__all__ = [
    "AdaptiveClip",
    "AutoClip",
    "ClipRule",
    "GlobalNorm",
    "PerLayerNorm",
    "ValueClip",
    "get",
    "global_norm",
    "unitwise_norm",
]


def _f32(x):
    return ops.cast(x, "float32")


def global_norm(grads):
    """L2 norm over every tensor of `grads` (None entries ignored), as float32."""
    if keras.backend.backend() == "torch":
        from keras_lr.guards import _torch

        return _torch.global_norm(grads)  # the same kernels without `keras.ops` dispatch
    return _ops_global_norm(grads)


def _ops_global_norm(grads):
    """`global_norm` in `keras.ops` (every backend)."""
    squares = [ops.sum(ops.square(_f32(g))) for g in grads if g is not None]
    if not squares:
        return ops.zeros((), "float32")
    return ops.sqrt(ops.sum(ops.stack(squares)))


def unitwise_norm(x):
    """Unit-wise L2 norm for AGC, Keras layout (output units on the LAST axis).

    Scalars and 1-D tensors (biases, scales) use the whole-tensor norm; higher-rank tensors
    reduce over every axis but the last, keeping dimensions, so the result broadcasts
    against `x` (Dense `(in, out)` -> `(1, out)`, Conv2D `(h, w, in, out)` -> `(1, 1, 1, out)`,
    LSTM `(in, 4*units)` -> `(1, 4*units)`).
    """
    return ops.sqrt(_unit_squares(x))


def _unit_squares(x, flat=False):
    """Sum of squares per unit: `unitwise_norm` squared, same shape; with `flat`, a 1-D
    tensor instead, ``(units,)`` (``(1,)`` for a 0-D or 1-D `x`)."""
    squares = ops.square(_f32(x))
    if len(x.shape) == 0:
        return ops.reshape(squares, (1,)) if flat else squares
    if len(x.shape) == 1:
        # Not `keepdims=flat`: torch's sum over all axes with keepdims returns a 0-D tensor.
        total = ops.sum(squares)
        return ops.reshape(total, (1,)) if flat else total
    return ops.sum(squares, axis=tuple(range(len(x.shape) - 1)), keepdims=not flat)


def _units(x):
    return int(x.shape[-1]) if len(x.shape) >= 2 else 1


def _concat(tensors):
    return tensors[0] if len(tensors) == 1 else ops.concatenate(tensors)


def _any(flags):
    if not flags:
        return ops.convert_to_tensor(False)
    return ops.any(ops.stack(flags))


class ClipRule:
    """Base class of the clipping rules: `clip`, `norm_and_clip`, `build`, `get_config`."""

    #: True when `clip` updates state; the guard then calls it only on finite steps.
    stateful = False

    def build(self, optimizer, variables):
        """Create state as optimizer variables (no state by default)."""

    def clip(self, grads, variables, total_norm):
        """Return ``(new_grads, clipped)``; `clipped` is a boolean scalar tensor."""
        raise NotImplementedError

    def norm_and_clip(self, grads, variables):
        """Return ``(total_norm, new_grads, clipped)`` in one pass (stateless rules only).

        The guard calls this before it tests the gradients for NaN/inf, so it must not change
        any state; `total_norm` must be NaN or inf whenever a gradient is.
        """
        norm = global_norm(grads)
        new_grads, clipped = self.clip(grads, variables, norm)
        return norm, new_grads, clipped

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = object.__hash__


def _scale_all(grads, factor):
    return [None if g is None else ops.multiply(g, ops.cast(factor, g.dtype)) for g in grads]


@keras.saving.register_keras_serializable(package="keras_lr")
class GlobalNorm(ClipRule):
    """Clip all gradients together so that their global L2 norm is at most `max_norm`.

    Formula (the same as Keras's `global_clipnorm` and `tf.clip_by_global_norm`)::

        g_i <- g_i * max_norm / max(global_norm, max_norm)

    Args:
        max_norm: float > 0, the largest global norm let through.

    Example:

    ```python
    opt = keras_lr.guards.GradientGuard(keras.optimizers.Adam(1e-3), clip=GlobalNorm(1.0))
    ```
    """

    def __init__(self, max_norm):
        self.max_norm = check_float("max_norm", max_norm, minimum=0.0, strict=True)

    def clip(self, grads, variables, total_norm):
        factor = self.max_norm / ops.maximum(total_norm, self.max_norm)
        return _scale_all(grads, factor), ops.greater(total_norm, self.max_norm)

    def get_config(self):
        return {"max_norm": self.max_norm}


@keras.saving.register_keras_serializable(package="keras_lr")
class ValueClip(ClipRule):
    """Clip every gradient element to ``[-limit, limit]`` (Keras's `clipvalue`).

    Formula::

        g <- clip(g, -limit, limit)

    Args:
        limit: float > 0.

    Example:

    ```python
    opt = keras_lr.guards.GradientGuard(keras.optimizers.SGD(0.1), clip=ValueClip(0.5))
    ```
    """

    def __init__(self, limit):
        self.limit = check_float("limit", limit, minimum=0.0, strict=True)

    def clip(self, grads, variables, total_norm):
        out, flags = [], []
        for g in grads:
            if g is None:
                out.append(None)
                continue
            out.append(ops.clip(g, -self.limit, self.limit))
            flags.append(ops.any(ops.greater(ops.abs(_f32(g)), self.limit)))
        return out, _any(flags)

    def get_config(self):
        return {"limit": self.limit}


def _layer_of(variable, index):
    path = getattr(variable, "path", None)
    if not path or "/" not in path:
        return ("variable", index)
    return path.rsplit("/", 1)[0]


@keras.saving.register_keras_serializable(package="keras_lr")
class PerLayerNorm(ClipRule):
    """Clip the gradients of each layer together to an L2 norm of at most `max_norm`.

    A layer's gradients are those of the variables that share a path prefix
    (``"model/dense/kernel"`` and ``"model/dense/bias"`` form the group ``"model/dense"``);
    a variable without a path is a group of its own. Within a group `L`::

        g_i <- g_i * max_norm / max(norm(g_L), max_norm)

    Keras's `clipnorm` is the per-variable version of this rule.

    Args:
        max_norm: float > 0.

    Example:

    ```python
    opt = keras_lr.guards.GradientGuard(keras.optimizers.Adam(), clip=PerLayerNorm(1.0))
    ```
    """

    def __init__(self, max_norm):
        self.max_norm = check_float("max_norm", max_norm, minimum=0.0, strict=True)

    def clip(self, grads, variables, total_norm):
        groups = {}
        for i, (g, v) in enumerate(zip(grads, variables, strict=True)):
            if g is not None:
                groups.setdefault(_layer_of(v, i), []).append(i)
        out = list(grads)
        flags = []
        for members in groups.values():
            norm = global_norm([grads[i] for i in members])
            factor = self.max_norm / ops.maximum(norm, self.max_norm)
            for i in members:
                out[i] = ops.multiply(grads[i], ops.cast(factor, grads[i].dtype))
            flags.append(ops.greater(norm, self.max_norm))
        return out, _any(flags)

    def get_config(self):
        return {"max_norm": self.max_norm}


@keras.saving.register_keras_serializable(package="keras_lr")
class AdaptiveClip(ClipRule):
    """Adaptive gradient clipping (AGC) of NFNets, unit-wise, in Keras layout.

    For each variable `w` with gradient `g`, unit by unit (see `unitwise_norm`: every axis but
    the last is reduced; 1-D tensors use their whole norm)::

        max_norm = max(||w||, eps) * clip_factor
        g <- g                                 where ||g|| <  max_norm
        g <- g * max_norm / max(||g||, 1e-6)   elsewhere

    This is timm's `adaptive_clip_grad` with the reduction axes moved from "all but the first"
    (PyTorch's out-channels-first layout) to "all but the last" (Keras kernels keep their
    output units last).

    Args:
        clip_factor: float > 0, the largest ratio of gradient to parameter norm (0.01 suits
            batch sizes of a few thousand; larger batches or smaller models may want 0.02-0.16).
        eps: float > 0, floor on the parameter norm so that zero-initialised units (biases) can
            move.

    Example:

    ```python
    opt = keras_lr.guards.GradientGuard(keras.optimizers.SGD(0.1, momentum=0.9),
                                        clip=AdaptiveClip(0.01))
    ```

    Reference:
        Brock et al., "High-Performance Large-Scale Image Recognition Without Normalization",
        ICML 2021, section 4.1.
    """

    def __init__(self, clip_factor=0.01, eps=1e-3):
        self.clip_factor = check_float("clip_factor", clip_factor, minimum=0.0, strict=True)
        self.eps = check_float("eps", eps, minimum=0.0, strict=True)

    def clip(self, grads, variables, total_norm):
        _, out, clipped = self._unit_clip(grads, variables)
        return out, clipped

    def norm_and_clip(self, grads, variables):
        g_flat, out, clipped = self._unit_clip(grads, variables)
        return ops.sqrt(ops.sum(g_flat)), out, clipped

    def _unit_clip(self, grads, variables):
        """``(g_flat, new_grads, clipped)``; `g_flat` holds the per-unit sums of squares of
        every gradient, so the global norm is ``sqrt(sum(g_flat))``."""
        if keras.backend.backend() == "torch":
            from keras_lr.guards import _torch

            # The same kernels without `keras.ops` dispatch (bit-identical, tested).
            return _torch.unit_clip(grads, variables, self.clip_factor, self.eps)
        return self._ops_unit_clip(grads, variables)

    def _ops_unit_clip(self, grads, variables):
        """`_unit_clip` in `keras.ops` (every backend)."""
        # Per-unit sums of squares of every gradient and parameter, flattened into one vector
        # each: the clip factors of all variables are then a handful of ops on small tensors.
        present = [(i, g, v) for i, (g, v) in enumerate(zip(grads, variables, strict=True))
                   if g is not None]
        if not present:
            return ops.zeros((0,), "float32"), list(grads), ops.convert_to_tensor(False)
        g_flat = _concat([_unit_squares(g, flat=True) for _, g, _ in present])
        w_flat = _concat([_unit_squares(v, flat=True) for _, _, v in present])
        grad_norm = ops.sqrt(g_flat)
        max_norm = ops.maximum(ops.sqrt(w_flat), self.eps) * self.clip_factor
        keep = ops.less(grad_norm, max_norm)
        # g * 1.0 == g exactly, so kept units are bit-identical to the input.
        factor = ops.where(keep, 1.0, max_norm / ops.maximum(grad_norm, 1e-6))
        sizes = [_units(g) for _, g, _ in present]
        pieces = [factor] if len(sizes) == 1 else ops.split(
            factor, [sum(sizes[:k]) for k in range(1, len(sizes))])
        out = list(grads)
        for (i, g, _), piece in zip(present, pieces, strict=True):
            if len(g.shape) == 0:
                piece = ops.reshape(piece, ())
            # (units,) broadcasts against the last axis; (1,) against a 1-D tensor.
            out[i] = ops.cast(_f32(g) * piece, g.dtype)
        return g_flat, out, ops.logical_not(ops.all(keep))

    def get_config(self):
        return {"clip_factor": self.clip_factor, "eps": self.eps}


@keras.saving.register_keras_serializable(package="keras_lr")
class AutoClip(ClipRule):
    """AutoClip: clip the global norm at a percentile of the norms seen so far.

    Every finite step appends the current global gradient norm to a history (the last
    `history` norms, kept in optimizer variables so they are saved with the model), then::

        threshold = percentile(norm_history, percentile)     # linear interpolation (NumPy's)
        g_i <- g_i * min(1, threshold / (global_norm + 1e-6))

    which is the paper's reference code (`np.percentile` then `clip_grad_norm_`). Skipped
    (non-finite) steps are not recorded. With an unbounded history this is exactly the paper's
    rule; `history` bounds memory and lets the threshold follow the training.

    Args:
        percentile: float in (0, 100], the percentile of the history to clip at (the paper
            recommends 10).
        history: int >= 1, how many recent norms to keep.

    Example:

    ```python
    opt = keras_lr.guards.GradientGuard(keras.optimizers.Adam(1e-3), clip=AutoClip(10))
    ```

    Reference:
        Seetharaman et al., "AutoClip: Adaptive Gradient Clipping for Source Separation
        Networks", IEEE MLSP 2020.
    """

    stateful = True

    def __init__(self, percentile=10, history=1000):
        percentile = check_float("percentile", percentile)
        if not 0.0 < percentile <= 100.0:
            fail("percentile", "must be in (0, 100]", percentile)
        self.percentile = percentile
        self.history = check_int("history", history, minimum=1)
        self.norms = None
        self.count = None

    def build(self, optimizer, variables):
        self.norms = optimizer.add_variable(
            (self.history,), initializer="zeros", dtype="float32", name="autoclip_norms",
            aggregation="only_first_replica",
        )
        self.count = optimizer.add_variable(
            (), initializer="zeros", dtype="int", name="autoclip_count",
            aggregation="only_first_replica",
        )

    def threshold(self):
        """The current clipping threshold from the stored history (graph-safe)."""
        # `.value`: JAX no longer converts a Keras variable inside `where`.
        n = ops.minimum(ops.cast(self.count.value, "int32"), self.history)
        valid = ops.less(ops.arange(self.history, dtype="int32"), n)
        ordered = ops.sort(ops.where(valid, self.norms.value, float("inf")))
        position = (self.percentile / 100.0) * ops.cast(ops.maximum(n - 1, 0), "float32")
        low = ops.cast(ops.floor(position), "int32")
        high = ops.minimum(low + 1, ops.maximum(n - 1, 0))
        frac = position - ops.cast(low, "float32")
        a, b = ops.take(ordered, low), ops.take(ordered, high)
        # NumPy's `_lerp`: exact at both ends.
        return ops.where(frac >= 0.5, b - (b - a) * (1.0 - frac), a + (b - a) * frac)

    def clip(self, grads, variables, total_norm):
        if self.norms is None:
            raise RuntimeError("AutoClip must be built by its GradientGuard before use.")
        slot = ops.cast(ops.mod(self.count.value, self.history), "int32")
        self.norms.assign(
            ops.where(ops.equal(ops.arange(self.history, dtype="int32"), slot),
                      total_norm, self.norms.value)
        )
        self.count.assign_add(ops.cast(1, self.count.dtype))
        threshold = self.threshold()
        factor = ops.minimum(threshold / (total_norm + 1e-6), 1.0)
        return _scale_all(grads, factor), ops.less(factor, 1.0)

    def get_config(self):
        return {"percentile": self.percentile, "history": self.history}


_ALIASES = {
    "agc": AdaptiveClip,
    "adaptive_clip": AdaptiveClip,
    "autoclip": AutoClip,
    "auto_clip": AutoClip,
}
_NEED_ARGUMENTS = {"global_norm": "GlobalNorm(max_norm)", "value": "ValueClip(limit)",
                   "per_layer_norm": "PerLayerNorm(max_norm)"}


def get(identifier):
    """Return a fresh clipping rule from a rule, a dict config, a string alias, or None.

    A rule instance is copied (through its config) so that two guards never share state.

    Raises:
        ValueError: an unknown string, or a string for a rule that needs arguments.
        TypeError: anything else.
    """
    if identifier is None:
        return None
    if isinstance(identifier, ClipRule):
        return type(identifier).from_config(identifier.get_config())
    if isinstance(identifier, dict):
        rule = keras.saving.deserialize_keras_object(identifier)
        if not isinstance(rule, ClipRule):
            fail("clip", "must deserialize to a clipping rule", identifier, TypeError)
        return rule
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _ALIASES:
            return _ALIASES[key]()
        if key in _NEED_ARGUMENTS:
            fail("clip", f"needs an argument: pass `{_NEED_ARGUMENTS[key]}`", identifier)
        known = ", ".join(repr(k) for k in _ALIASES)
        fail("clip", f"must be a clipping rule or one of {known}", identifier)
    fail("clip", "must be a clipping rule (GlobalNorm, ValueClip, PerLayerNorm, AdaptiveClip, "
         "AutoClip), a string alias or None", identifier, TypeError)
