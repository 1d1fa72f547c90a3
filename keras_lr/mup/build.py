"""One call for μP: build a model at its width from a build function, and its optimizer.

::

    model, optimizer = keras_lr.mup.build(build_fn, width=1024, base_width=64,
                                           optimizer=keras.optimizers.Adam(3e-3))

does what mup 1.0.0's ``set_base_shapes(model, base)`` + ``MuReadout`` + ``MuAdam`` /
``MuSGD`` do in PyTorch: it builds ``build_fn(width)`` and ``build_fn(base_width)``, finds each
variable's width multiplier (`infshapes`), rescales the initial values (`rescale_initialization`),
swaps the output layer for a `MuReadout` and wraps the optimizer in the μP `LayerwiseLR` rules.
A rate tuned at ``base_width`` then carries over to ``width``.

Reference:
    Yang et al. 2022, Tensor Programs V (arXiv 2203.03466); microsoft/mup 1.0.0.
"""

from __future__ import annotations

import keras

from keras_lr._validation import check_float, check_int, fail
from keras_lr.mup.init import rescale_initialization
from keras_lr.mup.optim import mu_optimizer
from keras_lr.mup.readout import to_mu_readout
from keras_lr.mup.shapes import infshapes

__all__ = ["build", "parametrize"]


def parametrize(model, base, optimizer=None, *, delta=None, kind="auto", output_mult=1.0,
                readout_zero_init=False, rescale=True):
    """μP for an already built `model` against its `base` (both freshly initialized).

    Args:
        model: the model at its width (its weights are rescaled in place; do it once).
        base: the same structure at the base width.
        optimizer: optional Keras optimizer to wrap; None returns ``(model, None)``.
        delta: optional third width to tell width dimensions when `model` is `base`.
        kind: ``"auto"``, ``"adam"`` or ``"sgd"`` (see `keras_lr.mup.optim`).
        output_mult: the readout's constant multiplier (mup's ``output_mult``).
        readout_zero_init: start the readout at zero.
        rescale: rescale the initial values (False for a model whose weights are loaded).

    Returns:
        ``(model, optimizer)``: the model with `MuReadout` output layers and the
        `LayerwiseLR`-wrapped optimizer (or None).
    """
    if optimizer is not None and not isinstance(optimizer, keras.optimizers.Optimizer):
        fail("optimizer", "must be a keras.optimizers.Optimizer instance", optimizer, TypeError)
    output_mult = check_float("output_mult", output_mult, minimum=0.0, strict=True)
    shapes = infshapes(model, base, delta)
    if rescale:
        rescale_initialization(model, base, shapes)
    model = to_mu_readout(model, shapes, output_mult=output_mult, zero_init=readout_zero_init)
    shapes = infshapes(model, base, delta)
    if optimizer is not None:
        optimizer = mu_optimizer(optimizer, shapes, kind)
    return model, optimizer


def build(build_fn, width, base_width, optimizer=None, *, delta_width=None, kind="auto",
          output_mult=1.0, readout_zero_init=False):
    """Build ``build_fn(width)`` under μP, with the base ``build_fn(base_width)``.

    Args:
        build_fn: a function of one width (an int) returning a built Keras model; every
            call must build the same structure with the same seed (e.g.
            ``lambda w: keras_lr.models.build("mlp", shape, classes, width=w, seed=0)``).
        width: the width to build, >= 1.
        base_width: the width the rates are tuned at, >= 1.
        optimizer: the Keras optimizer to wrap (its rate is the base model's rate); None
            returns ``(model, None)``.
        delta_width: a third width, needed only when ``width == base_width`` to tell which
            dimensions scale (mup's ``delta``); without it every multiplier is 1 there.
        kind: ``"auto"``, ``"adam"`` or ``"sgd"``: which μP rule (see `keras_lr.mup.optim`).
        output_mult: the readout's constant multiplier, > 0. Default 1.
        readout_zero_init: start the readout at zero (the mup authors recommend it).

    Returns:
        ``(model, optimizer)``: the μP model (its output layer a `MuReadout`, registered and
        saved with the model) and ``LayerwiseLR(optimizer, rules)``. Compile with them; the
        ``.keras`` file loads with ``safe_mode=True``.

    Example:
        >>> import keras
        >>> from keras_lr import models
        >>> fn = lambda w: models.build("mlp", (8,), 3, width=w, depth=2, seed=0)
        >>> model, opt = build(fn, width=64, base_width=16, optimizer=keras.optimizers.Adam(1e-2))
        >>> type(model.get_layer("output")).__name__, model.get_layer("output").width_mult
        ('MuReadout', 4.0)
        >>> model.compile(opt, "sparse_categorical_crossentropy")
    """
    if not callable(build_fn):
        fail("build_fn", "must be a function of the width returning a Keras model", build_fn,
             TypeError)
    width = check_int("width", width, minimum=1)
    base_width = check_int("base_width", base_width, minimum=1)
    if delta_width is not None:
        delta_width = check_int("delta_width", delta_width, minimum=1)
        if delta_width == base_width:
            fail("delta_width", f"must differ from base_width={base_width}", delta_width)
    model = build_fn(width)
    base = build_fn(base_width)
    delta = build_fn(delta_width) if delta_width is not None else None
    return parametrize(model, base, optimizer, delta=delta, kind=kind, output_mult=output_mult,
                       readout_zero_init=readout_zero_init)
