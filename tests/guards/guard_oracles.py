"""Independent NumPy references for the clipping rules, written from the papers / timm / torch.

Nothing here imports keras_lr.
"""

from __future__ import annotations

import numpy as np


def unitwise_norm(x):
    """AGC unit-wise norm, Keras layout: reduce every axis but the last; 1-D: whole norm."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim <= 1:
        return np.sqrt(np.sum(x**2))
    return np.sqrt(np.sum(x**2, axis=tuple(range(x.ndim - 1)), keepdims=True))


def agc(grad, param, clip_factor=0.01, eps=1e-3):
    """timm `adaptive_clip_grad` (Brock et al. 2021, sec. 4.1) with output units last."""
    g = np.asarray(grad, dtype=np.float64)
    max_norm = np.maximum(unitwise_norm(param), eps) * clip_factor
    grad_norm = unitwise_norm(g)
    clipped = g * (max_norm / np.maximum(grad_norm, 1e-6))
    return np.where(grad_norm < max_norm, g, clipped)


def agc_torch_layout(grad, param, clip_factor=0.01, eps=1e-3):
    """The same rule on the transposed (out-channels-first) tensors, as timm runs it."""
    torch = __import__("torch")

    def to_torch(x):
        x = np.asarray(x, dtype=np.float64)
        return torch.tensor(np.moveaxis(x, -1, 0) if x.ndim > 1 else x)

    def unitwise(t):
        if t.ndim <= 1:
            return t.norm(2.0)
        return t.norm(2.0, dim=tuple(range(1, t.ndim)), keepdim=True)

    p, g = to_torch(param), to_torch(grad)
    max_norm = unitwise(p).clamp(min=eps).mul(clip_factor)
    grad_norm = unitwise(g)
    out = torch.where(grad_norm < max_norm, g, g * (max_norm / grad_norm.clamp(min=1e-6)))
    out = out.numpy()
    return np.moveaxis(out, 0, -1) if out.ndim > 1 else out


def global_norm(grads):
    return float(np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2) for g in grads)))


def clip_global(grads, max_norm):
    """tf.clip_by_global_norm / Keras `global_clipnorm`."""
    norm = global_norm(grads)
    return [np.asarray(g, np.float64) * max_norm / max(norm, max_norm) for g in grads]


class AutoClipRef:
    """AutoClip reference code (Seetharaman et al. 2020): append, percentile, clip_grad_norm_."""

    def __init__(self, percentile, history=None):
        self.percentile = percentile
        self.history = history
        self.norms = []

    def __call__(self, grads):
        norm = global_norm(grads)
        self.norms.append(norm)
        window = self.norms if self.history is None else self.norms[-self.history:]
        threshold = np.percentile(window, self.percentile)
        coef = min(threshold / (norm + 1e-6), 1.0)
        return [np.asarray(g, np.float64) * coef for g in grads], threshold
