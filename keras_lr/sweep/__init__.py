"""Parallel learning-rate sweeps: N rates trained at once in one replicated Keras model.

TensorFlow backend only (`require_tensorflow`: a one-line error names the alternative on JAX
and PyTorch). `parallel_fit` builds one model per rate, stacks them into a `ReplicaModel`
whose layers compute every replica with batched operations, and trains them together;
`SweepResult` holds the per-replica histories, divergence flags and the trained models.

Example:
    >>> from keras_lr import data, models, sweep
    >>> ds = data.load("digits", view="flat", limit=200)
    >>> result = sweep.parallel_fit(lambda: models.mlp(ds.input_shape, 10, hidden=(16,)),
    ...                             [1e-3, 1e-2], ds.x_train, ds.y_train, epochs=1)
    >>> len(result)
    2
"""

import functools

import keras

from keras_lr.sweep import convert as _convert
from keras_lr.sweep import fit as _fit
from keras_lr.sweep import optimizer as _optimizer
from keras_lr.sweep.convert import ReplicaModel
from keras_lr.sweep.result import SweepResult

__all__ = [
    "ReplicaModel",
    "SweepResult",
    "parallel_fit",
    "replicate",
    "replicated_optimizer",
    "require_tensorflow",
]


def require_tensorflow(feature: str = "keras_lr.sweep",
                       alternative: str = "train one model per rate with `model.fit`") -> None:
    """Raise a one-line `ValueError` unless Keras runs on TensorFlow.

    The replicated models of `keras_lr.sweep` (and the study's parallel engine built on them)
    use TensorFlow ops that have no portable form yet; on JAX and PyTorch they refuse with
    this message instead of failing inside, or with ``ModuleNotFoundError`` where TensorFlow is
    not installed.

    Example:
        >>> import keras
        >>> if keras.backend.backend() == "tensorflow":
        ...     require_tensorflow()  # no error on TensorFlow
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"{feature} needs the TensorFlow backend (KERAS_BACKEND=tensorflow); on "
            f"{backend} {alternative}."
        )


def _tensorflow_only(function):
    @functools.wraps(function)
    def gated(*args, **kwargs):
        require_tensorflow()
        return function(*args, **kwargs)

    return gated


parallel_fit = _tensorflow_only(_fit.parallel_fit)
replicate = _tensorflow_only(_convert.replicate)
replicated_optimizer = _tensorflow_only(_optimizer.replicated_optimizer)
