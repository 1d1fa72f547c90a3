"""torch: the guard's per-step arithmetic in torch's own ops, without `keras.ops` dispatch.

Keras runs a torch train step eagerly, so every `keras.ops` call pays its Python dispatch
(argument conversion, dtype standardisation, symbolic-tensor checks): about 8 microseconds,
whatever the tensor's size. The global norm and `AdaptiveClip`'s unit-wise factors take
about 60 such calls per step on a three-layer MLP, more than Adam's own fused update costs.
Keras's own torch optimizers go around the same overhead with `torch._foreach_*` kernels
(``keras/src/backend/torch/optimizers``); these functions do it for the guard.

Each function issues the same torch kernels, in the same order, as the portable `keras.ops`
code in `keras_lr.guards.clipping` does on torch, so the results are bit-identical to it
(tested on the torch backend). Inputs are tensors, Keras variables or arrays (converted as
`keras.ops` would).

Example:
    >>> import torch
    >>> float(global_norm([torch.tensor([3.0]), torch.tensor([[4.0]])]))
    5.0

Reference:
    Brock et al., "High-Performance Large-Scale Image Recognition Without Normalization",
    ICML 2021, section 4.1 (the unit-wise rule of `unit_clip`).
"""

from __future__ import annotations

import keras
import torch
from keras import ops

__all__ = ["global_norm", "unit_clip"]


def _tensor(x):
    """`x` as a torch tensor: a Keras variable's value; anything else (a NumPy array) through
    `keras.ops.convert_to_tensor`, onto Keras's device."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, keras.Variable):
        return x.value
    return ops.convert_to_tensor(x)


def _f32(x):
    return x if x.dtype == torch.float32 else x.to(torch.float32)


def _unit_squares(x):
    """Per-unit sums of squares as a 1-D tensor: ``(units,)``, or ``(1,)`` for 0-D and 1-D."""
    squares = torch.square(_f32(x))
    if x.dim() <= 1:
        return torch.sum(squares).reshape(1)
    return torch.sum(squares, dim=tuple(range(x.dim() - 1)))


def global_norm(grads):
    """L2 norm over every tensor of `grads` (None entries ignored), as a float32 scalar."""
    tensors = [_tensor(g) for g in grads if g is not None]
    if not tensors:
        return ops.zeros((), "float32")  # on Keras's device
    squares = [torch.sum(torch.square(_f32(t))) for t in tensors]
    return torch.sqrt(torch.sum(torch.stack(squares)))


def unit_clip(grads, variables, clip_factor, eps):
    """`AdaptiveClip`'s step: ``(g_flat, new_grads, clipped)``.

    Args:
        grads: gradients (None entries are passed through).
        variables: the matching variables.
        clip_factor: float, the rule's `clip_factor`.
        eps: float, the floor on the parameter norm.

    Returns:
        `g_flat`, every gradient's per-unit sums of squares in one vector (its sum is the
        squared global norm); the clipped gradients; and a boolean scalar, True when at
        least one unit was clipped.
    """
    present = [(i, _tensor(g), _tensor(v))
               for i, (g, v) in enumerate(zip(grads, variables, strict=True))
               if g is not None]
    if not present:
        return ops.zeros((0,), "float32"), list(grads), ops.convert_to_tensor(False)
    g_flat = torch.cat([_unit_squares(g) for _, g, _ in present])
    w_flat = torch.cat([_unit_squares(w) for _, _, w in present])
    grad_norm = torch.sqrt(g_flat)
    max_norm = torch.clamp_min(torch.sqrt(w_flat), eps) * clip_factor
    keep = grad_norm < max_norm
    factor = torch.where(keep, 1.0, max_norm / torch.clamp_min(grad_norm, 1e-6))
    sizes = [int(g.shape[-1]) if g.dim() >= 2 else 1 for _, g, _ in present]
    out = list(grads)
    for (i, g, _), piece in zip(present, torch.split(factor, sizes), strict=True):
        if g.dim() == 0:
            piece = piece.reshape(())
        value = _f32(g) * piece
        out[i] = value if value.dtype == g.dtype else value.to(g.dtype)
    return g_flat, out, torch.logical_not(torch.all(keep))
