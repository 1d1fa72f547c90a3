"""Learning-rate suggestions read off a range-test curve (fastai's definitions).

All three functions take the learning rates and the (smoothed) losses of a range test, already
cut to the window they should look at, and return ``(suggested_lr, index)`` where `index` is the
point of the curve the suggestion is drawn at. `LRFinderResult.suggestion` cuts the window the
way fastai's ``Learner.lr_find`` does (``[num_steps // 10 : -5]``).

- ``valley``: fastai's default. Find the longest strictly decreasing *subsequence* of the loss
  (``lds[i] = 1 + max(lds[j] for j < i if loss[j] > loss[i])``, the first index with the
  largest ``lds`` is ``end``, ``start = end - lds[end]``) and take the point a half of the way
  in: ``idx = start + int(L / 3) + int(L / 6)`` with ``L = end - start``.
- ``steep``: the steepest descent of the loss against ``log(lr)`` by forward differences,
  ``argmin((loss[i+1] - loss[i]) / (log lr[i+1] - log lr[i]))``, reported at ``lr[i]``.
- ``minimum``: the rate at the lowest loss, divided by 10.

Reference:
    Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017,
    https://arxiv.org/abs/1506.01186. fastai ``fastai/callback/schedule.py`` (``valley``,
    ``steep``, ``minimum``), https://github.com/fastai/fastai.
"""

from __future__ import annotations

import numpy as np

__all__ = ["METHODS", "minimum", "steep", "valley"]


def _check(lrs, losses, at_least: int):
    lrs = np.asarray(lrs, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if lrs.ndim != 1 or lrs.shape != losses.shape:
        raise ValueError(
            "Arguments `lrs` and `losses` must be 1-D arrays of the same length. "
            f"Received: lrs.shape={lrs.shape}, losses.shape={losses.shape}"
        )
    if len(lrs) < at_least:
        raise ValueError(
            f"A suggestion needs at least {at_least} points of the curve. "
            f"Received: {len(lrs)} point(s); run more steps or skip fewer points."
        )
    if not np.all(np.isfinite(losses)):
        raise ValueError("Argument `losses` must be finite; cut the curve at the first NaN.")
    return lrs, losses


def valley(lrs, losses) -> tuple[float, int]:
    """fastai's ``valley``: a point inside the longest decreasing stretch of the loss.

    ``lds[i]`` is the length of the longest strictly decreasing subsequence of `losses` that
    ends at ``i``; with ``end`` the first index of the largest ``lds`` and
    ``start = end - lds[end]``, the suggestion is ``lrs[start + int(L/3) + int(L/6)]``,
    ``L = end - start``. fastai can produce index ``-1`` (a two-point valley at the very
    start) and then wraps round to the last rate; here that index is clamped to 0.

    Args:
        lrs: learning rates, increasing.
        losses: the (smoothed) losses at those rates, finite.

    Returns:
        ``(lr, index)``.

    Example:

    >>> valley([1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0], [2.0, 2.0, 1.5, 1.0, 0.5, 3.0])
    (0.001, 1)
    """
    lrs, losses = _check(lrs, losses, 1)
    n = len(losses)
    lds = np.ones(n, dtype=np.int64)
    for i in range(1, n):
        higher = losses[:i] > losses[i]
        if higher.any():
            lds[i] = lds[:i][higher].max() + 1
    end = int(np.argmax(lds))  # first index of the maximum, as fastai's strict `<` update
    start = end - int(lds[end]) if lds[end] > 1 else end
    sections = (end - start) / 3
    index = max(start + int(sections) + int(sections / 2), 0)
    return float(lrs[index]), index


def steep(lrs, losses) -> tuple[float, int]:
    """fastai's ``steep``: the rate where the loss falls fastest against ``log(lr)``.

    ``i = argmin((losses[i+1] - losses[i]) / (log lrs[i+1] - log lrs[i]))`` and the
    suggestion is ``lrs[i]`` (the left end of the steepest segment).

    Example:

    >>> steep([1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.8, 0.5, 3.0])
    (0.01, 1)
    """
    lrs, losses = _check(lrs, losses, 2)
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    index = int(np.argmin(slopes))
    return float(lrs[index]), index


def minimum(lrs, losses) -> tuple[float, int]:
    """fastai's ``minimum``: one tenth of the rate at the lowest loss.

    The returned index is that of the minimum itself (where fastai draws the point).

    Example:

    >>> minimum([1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.0, 0.5, 3.0])
    (0.01, 2)
    """
    lrs, losses = _check(lrs, losses, 1)
    index = int(np.argmin(losses))
    return float(lrs[index]) / 10.0, index


#: The suggestion methods by name, in the order `LRFinderResult.suggestions` lists them.
METHODS = {"valley": valley, "steep": steep, "minimum": minimum}
