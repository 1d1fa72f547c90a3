"""Parallel learning-rate sweeps: N rates trained at once in one replicated Keras model.

`parallel_fit` builds one model per rate, stacks them into a `ReplicaModel` whose layers
compute every replica with batched operations, and trains them together; `SweepResult` holds
the per-replica histories, divergence flags and the trained models.

Example:
    >>> from keras_lr import data, models, sweep
    >>> ds = data.load("digits", view="flat", limit=200)
    >>> result = sweep.parallel_fit(lambda: models.mlp(ds.input_shape, 10, hidden=(16,)),
    ...                             [1e-3, 1e-2], ds.x_train, ds.y_train, epochs=1)
    >>> len(result)
    2
"""

from keras_lr.sweep.convert import ReplicaModel, replicate
from keras_lr.sweep.fit import parallel_fit
from keras_lr.sweep.optimizer import replicated_optimizer
from keras_lr.sweep.result import SweepResult

__all__ = ["ReplicaModel", "SweepResult", "parallel_fit", "replicate", "replicated_optimizer"]
