"""Parallel learning-rate sweeps: N rates trained at once in one replicated Keras model.

On every backend: the replicated layers are `keras.ops` (einsum, grouped convolutions, a
replicated recurrent cell; TensorFlow's own grouped convolution and ``tf.while_loop`` only on
TensorFlow, `keras.ops.conv` and `keras.ops.scan` elsewhere), trained by ``model.fit``.
`parallel_fit` builds one model per rate, stacks them into a `ReplicaModel`
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
]


parallel_fit = _fit.parallel_fit
replicate = _convert.replicate
replicated_optimizer = _optimizer.replicated_optimizer
