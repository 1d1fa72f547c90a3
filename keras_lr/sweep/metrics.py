"""Per-replica losses and metrics for a replicated model whose output is ``(B, N, ...)``.

The training loss is the **sum** of the N per-replica losses, each the usual batch mean::

    loss = sum_i mean_b loss_fn(y[b], y_pred[b, i])

so the gradient reaching replica ``i``'s weights is exactly the gradient of its own loss, and
per-variable optimizers (SGD, Adam, ...) keep the replicas independent. A NaN in one replica
makes the summed loss NaN, so every reported number is per replica: `ReplicaMean` tracks a
vector of N means, which `keras_lr.sweep.convert.ReplicaModel` reports as ``name[i]``.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_lr._validation import fail

__all__ = ["ReplicaMean", "SummedReplicaLoss", "resolve_loss", "resolve_metric"]


def tile_targets(y_true, num_replicas: int):
    """Repeat the targets for every replica: ``(B, ...)`` -> ``(B, N, ...)``."""
    y_true = ops.convert_to_tensor(y_true)
    y = ops.expand_dims(y_true, 1)
    return ops.broadcast_to(y, (ops.shape(y_true)[0], num_replicas) + tuple(y_true.shape[1:]))


def resolve_loss(loss):
    """Return ``(fn, name)`` where ``fn(y_true, y_pred)`` gives per-sample losses.

    `loss` is a loss name (``"mse"``), a loss function, or a `keras.losses.Loss` instance
    (its `call`, which returns unreduced values, is used).
    """
    if isinstance(loss, str):
        try:
            obj = keras.losses.get(loss)
        except ValueError:
            fail("loss", "must be the name of a Keras loss", loss)
        return resolve_loss(obj)
    if isinstance(loss, keras.losses.Loss):
        return loss.call, loss.name
    if callable(loss):
        return loss, getattr(loss, "__name__", "loss")
    fail("loss", "must be a Keras loss name, function or `keras.losses.Loss`", loss, TypeError)


def resolve_metric(metric, loss_name: str, output_dim: int):
    """Return ``(fn, kwargs, name)`` for a mean-type metric (accuracy, MAE, ...).

    ``"accuracy"``/``"acc"`` resolve the way Keras resolves them: binary accuracy for a
    one-unit output, categorical accuracy with a categorical cross-entropy loss, sparse
    categorical accuracy otherwise. Stateful metrics that are not means of per-sample values
    (AUC, precision, ...) are refused.
    """
    if metric in ("accuracy", "acc"):
        if output_dim == 1:
            fn = keras.metrics.binary_accuracy
        elif "sparse" not in loss_name and "categorical" in loss_name:
            fn = keras.metrics.categorical_accuracy
        else:
            fn = keras.metrics.sparse_categorical_accuracy
        return fn, {}, metric
    obj = metric
    if isinstance(metric, str):
        try:
            obj = keras.metrics.get(metric)
        except ValueError:
            fail("metrics", "must name Keras metrics", metric)
    if isinstance(obj, keras.metrics.MeanMetricWrapper):
        return obj._fn, dict(obj._fn_kwargs), metric if isinstance(metric, str) else obj.name
    if callable(obj) and not isinstance(obj, keras.metrics.Metric):
        return obj, {}, getattr(obj, "__name__", "metric")
    fail(
        "metrics",
        "must hold mean-type metrics (names such as 'accuracy' or 'mae', metric functions or "
        "`MeanMetricWrapper`s); stateful metrics such as AUC cannot be split per replica",
        metric,
    )


@keras.saving.register_keras_serializable(package="keras_lr")
class SummedReplicaLoss(keras.losses.Loss):
    """The sum over replicas of the per-replica losses, ``(B, N, ...)`` predictions.

    Args:
        fn: per-sample loss ``fn(y_true, y_pred)``.
        num_replicas: N.

    Example:
        >>> loss = SummedReplicaLoss(keras.losses.mean_squared_error, 2)
        >>> float(loss(keras.ops.zeros((3, 1)), keras.ops.ones((3, 2, 1))))
        2.0
    """

    def __init__(self, fn, num_replicas: int, name: str = "replica_sum", **kwargs):
        super().__init__(name=name, **kwargs)
        self.fn, self.num_replicas = fn, num_replicas

    def call(self, y_true, y_pred):
        values = self.fn(tile_targets(y_true, self.num_replicas), y_pred)
        return ops.sum(values, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(
            fn=keras.saving.serialize_keras_object(self.fn), num_replicas=self.num_replicas
        )
        return config

    @classmethod
    def from_config(cls, config):
        config["fn"] = keras.saving.deserialize_keras_object(config["fn"])
        return cls(**config)


class ReplicaMean(keras.metrics.Metric):
    """The mean over samples of ``fn(y_true, y_pred[:, i])`` for every replica ``i``.

    `result()` is a vector of N values (Keras's `Mean` for each replica, weighted by
    `sample_weight` when given).

    Args:
        fn: per-sample function ``fn(y_true, y_pred) -> (B, N)`` on tiled targets.
        num_replicas: N.
        name: the metric name (reported as ``name[i]``).
        fn_kwargs: extra keyword arguments of `fn`.
    """

    def __init__(self, fn, num_replicas: int, name: str, fn_kwargs=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.fn, self.num_replicas, self.fn_kwargs = fn, num_replicas, dict(fn_kwargs or {})
        self.total = self.add_variable(shape=(num_replicas,), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self.fn(tile_targets(y_true, self.num_replicas), y_pred, **self.fn_kwargs)
        values = ops.cast(values, self.dtype)
        if sample_weight is None:
            count = ops.cast(ops.shape(values)[0], self.dtype)
        else:
            weight = ops.reshape(ops.cast(sample_weight, self.dtype), (-1, 1))
            values = values * weight
            count = ops.sum(weight)
        self.total.assign_add(ops.sum(values, axis=0))
        self.count.assign_add(count)

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(ops.zeros_like(self.total))
        self.count.assign(ops.zeros_like(self.count))

    def get_config(self):
        return {"name": self.name, "num_replicas": self.num_replicas}
