"""Width multipliers of a model's variables against a narrower base ("infshapes").

A dimension of a variable is a *width* ("infinite") dimension when it differs between the
model and its base (or, with a `delta`, between the base and the delta model); its width
multiplier is ``dim / base_dim``. Each variable gets an `InfShape`, as `mup.set_base_shapes`
attaches ``p.infshape`` to every PyTorch parameter (mup 1.0.0, ``mup/infshape.py``)::

    ninf        = number of width dimensions                    (0, 1 or 2)
    fan_in      = shape[-2], fan_out = shape[-1]                (Keras kernels: Dense (in, out),
                                                                 Conv2D (kh, kw, in, out))
    width_mult  = fan_in's multiplier if fan_in is a width dim, else that of the last width dim
    fanin_fanout_mult_ratio = fan_in multiplier / fan_out multiplier

Keras stores kernels as ``(..., fan_in, fan_out)`` where PyTorch stores ``(fan_out, fan_in,
...)``; the fields above are read in Keras's layout and mean what mup's mean.

Variables are matched by position in ``model.trainable_variables``: the model and its base are
built by the same code, but Keras numbers automatic layer names per session, so paths may
differ.

Reference:
    Yang et al. 2022, "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot
    Hyperparameter Transfer" (arXiv 2203.03466), Table 8; microsoft/mup 1.0.0 ``shape.py``.
"""

from __future__ import annotations

import dataclasses

import keras

from keras_lr._validation import fail

__all__ = ["InfShape", "infshapes"]


@dataclasses.dataclass(frozen=True)
class InfShape:
    """The shape of one variable with the base shape it scales from.

    Attributes:
        path: the variable's path in the model.
        shape: its shape (tuple of ints).
        base_shape: a tuple with the base dimension of every width dimension and ``None``
            for the others (mup's ``InfShape.base_shape()``).

    Example:
        >>> s = InfShape("mlp/dense_1/kernel", (256, 256), (64, 64))
        >>> s.ninf, s.width_mult, s.fanin_fanout_mult_ratio
        (2, 4.0, 1.0)
    """

    path: str
    shape: tuple
    base_shape: tuple

    def mult(self, axis: int) -> float:
        """Width multiplier of dimension `axis` (1 for a fixed dimension)."""
        base = self.base_shape[axis]
        return 1.0 if base is None else self.shape[axis] / base

    @property
    def ninf(self) -> int:
        """Number of width dimensions."""
        return sum(1 for b in self.base_shape if b is not None)

    @property
    def fan_in_axis(self) -> int | None:
        return len(self.shape) - 2 if len(self.shape) >= 2 else None

    @property
    def fan_out_axis(self) -> int:
        return len(self.shape) - 1

    @property
    def width_mult(self) -> float:
        """mup's ``InfShape.width_mult()``: fan_in's multiplier for (width, width) kernels."""
        axes = [i for i, b in enumerate(self.base_shape) if b is not None]
        if not axes:
            return 1.0
        fan_in = self.fan_in_axis
        main = fan_in if fan_in in axes else axes[-1]
        return self.mult(main)

    @property
    def fanin_fanout_mult_ratio(self) -> float:
        """``fan_in multiplier / fan_out multiplier`` (kernels of rank >= 2 only)."""
        if self.fan_in_axis is None:
            raise ValueError(
                f"fan_in and fan_out are undefined for the 1-D variable {self.path!r}."
            )
        return self.mult(self.fan_in_axis) / self.mult(self.fan_out_axis)

    @property
    def is_readout(self) -> bool:
        """A kernel from a width dimension to a fixed one (mup's output weights)."""
        fan_in = self.fan_in_axis
        return (
            fan_in is not None
            and self.base_shape[fan_in] is not None
            and self.base_shape[self.fan_out_axis] is None
        )


def _shapes(model, name):
    if not isinstance(model, keras.Model):
        fail(name, "must be a built Keras model", model, TypeError)
    if not model.built:
        fail(name, "must be built (call it on data or give it an Input)", model.name)
    return [(v.path, tuple(int(d) for d in v.shape)) for v in model.trainable_variables]


def infshapes(model, base, delta=None) -> list[InfShape]:
    """The `InfShape` of every trainable variable of `model`, in order.

    Args:
        model: the built model to parametrize (the "target").
        base: a built model of the same structure at the base width.
        delta: optional built model of the same structure at another width, for when `model`
            is the base itself (mup's ``delta``): width dimensions are then those that differ
            between `base` and `delta`, and every multiplier is 1 for `model` = `base`.

    Returns:
        A list of `InfShape`, one per ``model.trainable_variables`` entry.

    Raises:
        ValueError: the models differ in number of variables or in ranks, or a variable has
            more than two width dimensions (mup refuses those too).

    Example:
        >>> from keras_lr import models
        >>> wide, narrow = models.mlp((8,), 3, width=64), models.mlp((8,), 3, width=16)
        >>> [(s.path, s.ninf, s.width_mult) for s in infshapes(wide, narrow)][:3]
        [('mlp/dense_0/kernel', 1, 4.0), ('mlp/dense_0/bias', 1, 4.0), ('mlp/dense_1/kernel', 2, 4.0)]
    """
    target = _shapes(model, "model")
    reference = _shapes(base, "base")
    other = _shapes(delta, "delta") if delta is not None else None
    if len(reference) != len(target) or (other is not None and len(other) != len(target)):
        counts = [len(target), len(reference)] + ([len(other)] if other is not None else [])
        raise ValueError(
            "The model and its base must have the same structure (only widths differ), but "
            f"they have different numbers of trainable variables: {counts}."
        )
    result = []
    for i, (path, shape) in enumerate(target):
        base_path, base_shape = reference[i]
        width_from = other[i][1] if other is not None else shape
        if len(base_shape) != len(shape) or len(width_from) != len(shape):
            raise ValueError(
                f"Variable {i} of the model ({path!r}, shape {shape}) does not match the "
                f"base's ({base_path!r}, shape {base_shape}): same structure needed."
            )
        dims = tuple(b if b != d else None for b, d in zip(base_shape, width_from, strict=True))
        info = InfShape(path, shape, dims)
        if info.ninf > 2:
            raise ValueError(
                f"Variable {path!r} has {info.ninf} width dimensions (shape {shape}, base "
                f"{base_shape}); muP handles at most 2."
            )
        result.append(info)
    return result
