"""Gradient guards: clipping rules and a wrapper that skips non-finite steps.

`GradientGuard(optimizer, clip=..., skip_nonfinite=True, max_consecutive_skips=None)` wraps any
Keras optimizer (or keras-lr wrapper); the clip rules are `GlobalNorm`, `ValueClip`,
`PerLayerNorm`, `AdaptiveClip` (NFNet AGC) and `AutoClip`.
"""

from keras_lr.guards.clipping import (
    AdaptiveClip,
    AutoClip,
    ClipRule,
    GlobalNorm,
    PerLayerNorm,
    ValueClip,
    get,
    global_norm,
    unitwise_norm,
)
from keras_lr.guards.guard import GradientGuard, NonFiniteGradientsError, find_guard

__all__ = [
    "AdaptiveClip",
    "AutoClip",
    "ClipRule",
    "GlobalNorm",
    "GradientGuard",
    "NonFiniteGradientsError",
    "PerLayerNorm",
    "ValueClip",
    "find_guard",
    "get",
    "global_norm",
    "unitwise_norm",
]
