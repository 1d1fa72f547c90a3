"""Warmup-stable-decay (the "trapezoidal" schedule of recent language-model training).

Reference:
    Hu et al., 2024, "MiniCPM: Unveiling the Potential of Small Language Models with Scalable
    Training Strategies", https://arxiv.org/abs/2404.06395 (WSD);
    Hägele et al., 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training
    Durations", https://arxiv.org/abs/2405.18392 (the 1-sqrt cooldown).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_lr._validation import check_choice, check_float, check_int
from keras_lr.schedules.base import Schedule, full, maximum
from keras_lr.schedules.cosine import check_floor

__all__ = ["WarmupStableDecay"]

_SHAPES = ("linear", "cosine", "1-sqrt")
_ALIASES = {"1_sqrt": "1-sqrt"}


@keras.saving.register_keras_serializable(package="keras_lr")
class WarmupStableDecay(Schedule):
    """Linear warmup from 0, a flat stage at the peak, then a decay to `min_learning_rate`.

    ```python
    W, S, D = warmup_steps, stable_steps, decay_steps
    if t < W:        lr = peak_learning_rate * t / W
    elif t < W + S:  lr = peak_learning_rate
    else:
        p = min((t - W - S) / D, 1)
        f = {"linear": 1 - p, "cosine": (1 + cos(pi * p)) / 2, "1-sqrt": 1 - sqrt(p)}
        lr = min_learning_rate + (peak_learning_rate - min_learning_rate) * f[decay_shape]
    ```

    The minimum is held after ``W + S + D`` steps. This is Hugging Face's
    ``get_wsd_schedule(warmup_type="linear", decay_type=decay_shape)`` with
    ``min_lr_ratio = min_learning_rate / peak_learning_rate`` in releases whose warmup starts
    at 0 (all releases when ``min_learning_rate`` is 0). Later releases start the warmup at
    the minimum; compose that: ``Warmup(WarmupStableDecay(peak, 0, S, D, shape, low), W,
    start_learning_rate=low)``. Note Hugging Face's default ``decay_type`` is "cosine".
    The canonical spelling of the square-root shape is ``"1-sqrt"`` (Hugging Face's);
    ``"1_sqrt"`` is accepted as an alias and stored as ``"1-sqrt"``.

    Example:
        ```python
        schedule = WarmupStableDecay(3e-4, warmup_steps=1000, stable_steps=80_000,
                                     decay_steps=19_000, decay_shape="1-sqrt")
        ```

    Args:
        peak_learning_rate: float >= 0.
        warmup_steps: int >= 0.
        stable_steps: int >= 0.
        decay_steps: int >= 1.
        decay_shape: "linear", "cosine" or "1-sqrt". Defaults to "linear".
        min_learning_rate: float in [0, peak_learning_rate]. Defaults to 0.
    """

    def __init__(
        self,
        peak_learning_rate,
        warmup_steps,
        stable_steps,
        decay_steps,
        decay_shape="linear",
        min_learning_rate=0.0,
    ):
        self.peak_learning_rate = check_float("peak_learning_rate", peak_learning_rate, minimum=0)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
        self.stable_steps = check_int("stable_steps", stable_steps, minimum=0)
        self.decay_steps = check_int("decay_steps", decay_steps, minimum=1)
        self.decay_shape = check_choice(
            "decay_shape",
            _ALIASES.get(decay_shape, decay_shape) if isinstance(decay_shape, str) else decay_shape,
            _SHAPES,
        )
        self.min_learning_rate = check_floor(
            "min_learning_rate", min_learning_rate, "peak_learning_rate", self.peak_learning_rate
        )

    def _compute(self, t):
        peak, low = self.peak_learning_rate, self.min_learning_rate
        warmup, decay_start = self.warmup_steps, self.warmup_steps + self.stable_steps
        p = ops.clip((t - decay_start) / self.decay_steps, 0.0, 1.0)
        if self.decay_shape == "linear":
            factor = 1.0 - p
        elif self.decay_shape == "cosine":
            factor = 0.5 * (1.0 + ops.cos(math.pi * p))
        else:
            factor = 1.0 - ops.sqrt(p)
        out = low + (peak - low) * factor
        out = ops.where(t < decay_start, full(t, peak), out)
        if warmup:
            out = ops.where(t < warmup, peak * maximum(t, 0.0) / warmup, out)
        return out

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "stable_steps": self.stable_steps,
            "decay_steps": self.decay_steps,
            "decay_shape": self.decay_shape,
            "min_learning_rate": self.min_learning_rate,
        }
