"""μP initialization: rescale a model's initial values to the base's variances.

Variance of each variable at the model's width (Table 8 of Tensor Programs V)::

    Var_mup(v) = Var_init(v at the base shape) / fan_in_mult     if ninf == 2 (hidden weights)
    Var_mup(v) = Var_init(v at the base shape)                   otherwise (input weights,
                                                                 biases, norms, readout)

where the base's initializer is the one the base model's layer holds (an initializer whose
bounds depend on the width, such as PyTorch's bias rule ``U(+-1/sqrt(fan_in))``, is thus
brought back to the base's bounds even on a variable of fixed shape, as mup's `MuReadout`
does with its bias).

so every variable scales from the variance the user's initializer gives at the base width.
The drawn values are multiplied in place by ``sqrt(Var_mup / Var_init(v))``. This is what
`mup.init.xavier_uniform_` (and friends) give, and what `mup.set_base_shapes(...,
rescale_params=True)` gives on PyTorch's default fan-in initialization (biases times
``sqrt(fan_in_mult)``, `MuReadout` weights times ``sqrt(width_mult)``).

The variance of an initializer is read from its configuration: `VarianceScaling` and its
subclasses (Glorot, He, LeCun: ``scale / n``), `RandomUniform`, `RandomNormal`,
`TruncatedNormal` and the constants (`Zeros`, `Ones`, `Constant`, left as they are).
Other initializers (orthogonal, identity, custom) are refused: their variance at another
shape is not known.

Reference:
    Yang et al. 2022, Tensor Programs V, Table 8; microsoft/mup 1.0.0 ``init.py``,
    ``layer.py`` (``MuReadout._rescale_parameters``, ``rescale_linear_bias``).
"""

from __future__ import annotations

import math

import keras
import numpy as np

__all__ = ["initializer_variance", "rescale_initialization", "variable_initializers"]

_CONSTANT = (keras.initializers.Zeros, keras.initializers.Ones, keras.initializers.Constant)


def _fans(shape):
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def initializer_variance(initializer, shape):
    """The variance of the values `initializer` draws for a variable of `shape`.

    Returns None for a constant initializer (nothing to rescale).

    Example:
        >>> initializer_variance(keras.initializers.GlorotUniform(), (30, 10))
        0.05
    """
    if isinstance(initializer, _CONSTANT):
        return None
    if isinstance(initializer, keras.initializers.VarianceScaling):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[
            initializer.mode
        ]
        return initializer.scale / max(1.0, n)
    if isinstance(initializer, keras.initializers.RandomUniform):
        return (initializer.maxval - initializer.minval) ** 2 / 12.0
    if isinstance(initializer, keras.initializers.TruncatedNormal):
        return initializer.stddev**2 * 0.7737413  # variance of N(0, 1) truncated at +-2
    if isinstance(initializer, keras.initializers.RandomNormal):
        return initializer.stddev**2
    raise ValueError(
        f"muP cannot rescale the initializer {type(initializer).__name__}: its variance at "
        "another width is unknown. Use a VarianceScaling (Glorot, He, LeCun), RandomUniform, "
        "RandomNormal, TruncatedNormal or constant initializer for this variable."
    )


def _layers(model):
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop(0)
        yield layer
        stack[:0] = list(getattr(layer, "layers", []))


def variable_initializers(model):
    """Map ``id(variable)`` to the initializer its layer built it with.

    A variable named ``kernel`` is matched to its layer's ``kernel_initializer``, ``bias`` to
    ``bias_initializer``, ``gamma`` / ``beta`` to the normalization initializers, and so on.
    """
    found = {}
    for layer in _layers(model):
        for variable in layer.trainable_variables:
            if id(variable) in found:
                continue
            init = getattr(layer, f"{variable.name}_initializer", None)
            if init is None and hasattr(layer, "cell"):
                init = getattr(layer.cell, f"{variable.name}_initializer", None)
            if init is not None:
                found[id(variable)] = keras.initializers.get(init)
    return found


def rescale_initialization(model, base, shapes):
    """Multiply `model`'s trainable variables in place to the μP variances.

    Args:
        model: the model at its width, freshly initialized (do not call twice: the
            rescaling is not idempotent, as in mup).
        base: the model at the base width (only its initializers and shapes are read).
        shapes: ``infshapes(model, base)``.

    Returns:
        A list of the factors applied, one per trainable variable (1.0 where unchanged).

    Example:
        >>> from keras_lr import models
        >>> from keras_lr.mup import infshapes
        >>> wide, narrow = models.mlp((8,), 3, width=64), models.mlp((8,), 3, width=16)
        >>> [round(f, 4) for f in rescale_initialization(wide, narrow, infshapes(wide, narrow))]
        [1.7321, 1.0, 1.0, 1.0, 1.8778, 1.0]
    """
    target_inits = variable_initializers(model)
    base_inits = variable_initializers(base)
    factors = []
    for variable, base_variable, info in zip(
        model.trainable_variables, base.trainable_variables, shapes, strict=True
    ):
        init = target_inits.get(id(variable))
        base_init = base_inits.get(id(base_variable))
        if info.ninf == 0 and (init is None or base_init is None):
            factors.append(1.0)  # a fixed shape, and no initializer to compare
            continue
        if init is None or base_init is None:
            raise ValueError(
                f"muP cannot find the initializer of variable {info.path!r} (its layer has no "
                f"`{variable.name}_initializer`), so it cannot rescale it."
            )
        now = initializer_variance(init, info.shape)
        then = initializer_variance(base_init, tuple(
            b if b is not None else d for b, d in zip(info.base_shape, info.shape)))
        if now is None or then is None or now == 0:
            factors.append(1.0)
            continue
        wanted = then / (info.mult(info.fan_in_axis) if info.ninf == 2 else 1.0)
        factor = math.sqrt(wanted / now)
        if factor != 1.0:
            value = keras.ops.convert_to_numpy(variable).astype("float64") * factor
            variable.assign(value.astype(np.dtype(variable.dtype)))
        factors.append(factor)
    return factors
