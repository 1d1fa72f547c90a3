"""The adding problem: a long-sequence regression task on which unclipped RNNs explode.

Each sequence has ``length`` time steps of two features: a value drawn uniformly from
``[0, 1)`` and a marker that is 1 at exactly two steps and 0 elsewhere. One marker falls
uniformly in the first half of the sequence, the other in the second half, so the network
must carry information across about ``length / 2`` steps. The target is the sum of the two
marked values::

    x[i, t] = (u[i, t], m[i, t])      u ~ U[0, 1),  m[i, a] = m[i, b] = 1, otherwise 0
    y[i] = u[i, a] + u[i, b]          a in [0, length // 2),  b in [length // 2, length)

Always predicting 1 gives a mean squared error of about 1/6 (the variance of a sum of two
uniforms), the usual baseline a model must beat.

Reference:
    Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 9(8), 1997
    (experiment 4); the two-halves variant above is that of Le, Jaitly & Hinton,
    "A Simple Way to Initialize Recurrent Networks of Rectified Linear Units", 2015.
"""

from __future__ import annotations

import numpy as np

from keras_lr._validation import check_int

__all__ = ["BASELINE_MSE", "adding_problem"]

#: Mean squared error of the constant prediction 1: the variance of the sum of two U[0, 1).
BASELINE_MSE = 1.0 / 6.0


def adding_problem(
    n: int = 2000, length: int = 100, seed: int | np.random.Generator = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Generate `n` sequences of the adding problem.

    Args:
        n: number of sequences, >= 1.
        length: time steps per sequence, >= 2.
        seed: an integer seed or a NumPy ``Generator``; the same seed gives the same data.

    Returns:
        ``(x, y)``: ``x`` is ``float32`` of shape ``(n, length, 2)`` (value, marker) and
        ``y`` is ``float32`` of shape ``(n,)``.

    Example:
        >>> x, y = adding_problem(n=4, length=10, seed=0)
        >>> x.shape, y.shape
        ((4, 10, 2), (4,))
        >>> bool((x[..., 1].sum(axis=1) == 2).all())
        True
    """
    n = check_int("n", n, minimum=1)
    length = check_int("length", length, minimum=2)
    if isinstance(seed, np.random.Generator):
        rng = seed
    else:
        rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    half = length // 2
    values = rng.random((n, length))
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    markers = np.zeros((n, length))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    # The target is computed from the float32 inputs so that it is exactly their sum.
    y = x[rows, first, 0] + x[rows, second, 0]
    return x, y.astype(np.float32)
