"""μP learning rates: per-variable rate multipliers as `LayerwiseLR` rules.

From each variable's `InfShape` (mup 1.0.0 ``optim.py``, ``MuAdam`` and ``MuSGD``)::

    Adam-type (Adam, AdamW, Adamax, Nadam, RMSprop, Adagrad, Lion):
        ninf == 2 (hidden weights)       lr * 1 / width_mult
        otherwise                        lr
    SGD-type (SGD, with or without momentum):
        ninf == 1 (input weights, biases, norms, readout)   lr * width_mult
        ninf == 2 (hidden weights)       lr / fanin_fanout_mult_ratio
        ninf == 0                        lr

The multiplier scales the rate (`LayerwiseLR`), so one schedule drives every group. Keras's
weight decay is decoupled and reads the same rate, so it scales with the multiplier: mup's
``decoupled_wd=True`` (`MuAdamW(..., decoupled_wd=True)`), not its coupled default.

Reference:
    Yang et al. 2022, Tensor Programs V, Table 8; microsoft/mup 1.0.0 ``optim.py``.
"""

from __future__ import annotations

import collections

import keras

from keras_lr._validation import check_choice, fail
from keras_lr.optimizers import LayerwiseLR, Paths, base_optimizer, unwrap

__all__ = ["ADAM_TYPE", "SGD_TYPE", "mu_optimizer", "multipliers", "optimizer_kind", "rules"]

ADAM_TYPE = (
    keras.optimizers.Adam,
    keras.optimizers.AdamW,
    keras.optimizers.Adamax,
    keras.optimizers.Nadam,
    keras.optimizers.RMSprop,
    keras.optimizers.Adagrad,
    keras.optimizers.Lion,
)
"""Optimizers that normalize the gradient entry-wise: μP's Adam rule (``kind="adam"``)."""
SGD_TYPE = (keras.optimizers.SGD,)
"""Optimizers whose step is linear in the gradient: μP's SGD rule (``kind="sgd"``)."""


def optimizer_kind(optimizer, kind="auto"):
    """``"adam"`` or ``"sgd"``: the μP rule for `optimizer` (through keras-lr wrappers).

    Example:
        >>> optimizer_kind(keras.optimizers.AdamW(1e-3)), optimizer_kind(keras.optimizers.SGD())
        ('adam', 'sgd')
    """
    kind = check_choice("kind", kind, ("auto", "adam", "sgd"))
    if kind != "auto":
        return kind
    inner = base_optimizer(optimizer)
    if isinstance(inner, keras.optimizers.AdamW) or isinstance(inner, ADAM_TYPE):
        return "adam"
    if isinstance(inner, SGD_TYPE):
        return "sgd"
    fail(
        "optimizer",
        "must be an Adam-type or SGD-type optimizer for kind='auto' (pass kind='adam' for "
        "optimizers that normalize the gradient entry-wise, kind='sgd' for those linear in it)",
        type(inner).__name__,
    )


def multipliers(shapes, kind):
    """The μP rate multiplier of every variable: a list parallel to `shapes`.

    Example:
        >>> from keras_lr.mup import InfShape
        >>> s = [InfShape("in", (8, 64), (None, 16)), InfShape("hidden", (64, 64), (16, 16))]
        >>> multipliers(s, "adam"), multipliers(s, "sgd")
        ([1.0, 0.25], [4.0, 1.0])
    """
    kind = check_choice("kind", kind, ("adam", "sgd"))
    out = []
    for info in shapes:
        if kind == "adam":
            out.append(1.0 / info.width_mult if info.ninf == 2 else 1.0)
        elif info.ninf == 1:
            out.append(float(info.width_mult))
        elif info.ninf == 2:
            out.append(1.0 / info.fanin_fanout_mult_ratio)
        else:
            out.append(1.0)
    return out


def rules(shapes, kind):
    """`LayerwiseLR` rules for μP: ``[(Paths([...], label=...), multiplier), ...]``.

    Variables with multiplier 1 get no rule (`LayerwiseLR`'s default is 1).
    """
    groups = collections.defaultdict(list)
    for info, value in zip(shapes, multipliers(shapes, kind), strict=True):
        if value != 1.0:
            groups[value].append(info.path)
    return [
        (Paths(paths, label=f"muP {kind} x{value:.6g}"), value)
        for value, paths in sorted(groups.items())
    ]


def mu_optimizer(optimizer, shapes, kind="auto"):
    """`optimizer` wrapped in a `LayerwiseLR` that applies the μP rate multipliers.

    Args:
        optimizer: a Keras optimizer (or a keras-lr wrapper of one), not a `LayerwiseLR`.
        shapes: ``infshapes(model, base)`` of the model it will train.
        kind: ``"auto"`` (from the optimizer's class), ``"adam"`` or ``"sgd"``.

    Returns:
        ``LayerwiseLR(optimizer, rules(shapes, kind))``.
    """
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        fail("optimizer", "must be a keras.optimizers.Optimizer instance", optimizer, TypeError)
    for inner in unwrap(optimizer):
        if isinstance(inner, LayerwiseLR):
            fail("optimizer", "must not be a LayerwiseLR already (muP adds its own rules; "
                 "combine rules yourself with keras_lr.mup.rules)", optimizer)
    return LayerwiseLR(optimizer, rules(shapes, optimizer_kind(optimizer, kind)))
