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


def tile_targets(y_true, num_replicas: int, y_pred=None):
    """Repeat the targets for every replica: ``(B, ...)`` -> ``(B, N, ...)``.

    Targets ``(B,)`` for predictions ``(B, N, 1)`` (one-unit outputs) are first expanded to
    ``(B, 1)``, as Keras matches ``(B,)`` targets to ``(B, 1)`` predictions; otherwise the
    loss would squeeze the predictions and lose the replica axis.
    """
    y_true = ops.convert_to_tensor(y_true)
    if (y_pred is not None and len(y_true.shape) == len(y_pred.shape) - 2
            and y_pred.shape[-1] == 1):
        y_true = ops.expand_dims(y_true, -1)
    y = ops.expand_dims(y_true, 1)
    return ops.broadcast_to(y, (ops.shape(y_true)[0], num_replicas) + tuple(y_true.shape[1:]))


def resolve_loss(loss):
    """Return ``(fn, name)`` where ``fn(y_true, y_pred)`` gives per-sample losses.

    `loss` is a loss name (``"mse"``), a loss function, or a `keras.losses.Loss` instance
    (its `call`, which returns unreduced values, is used). A `Loss` must keep Keras's
    default reduction, the batch mean (``"sum_over_batch_size"``): the sweep sums the
    replicas' batch means, and other reductions (``"sum"``, ``"none"``,
    ``"mean_with_sample_weight"``) are refused rather than silently replaced.

    Raises:
        ValueError: an unknown loss name, or a `Loss` with another reduction.
        TypeError: `loss` is neither a name, a function nor a `Loss`.
    """
    if isinstance(loss, str):
        try:
            obj = keras.losses.get(loss)
        except ValueError:
            fail("loss", "must be the name of a Keras loss", loss)
        return resolve_loss(obj)
    if isinstance(loss, keras.losses.Loss):
        if loss.reduction not in ("sum_over_batch_size", "mean"):
            fail("loss", "must use the default reduction 'sum_over_batch_size' (the batch "
                 f"mean) in a parallel sweep; this loss has reduction={loss.reduction!r}",
                 loss)
        return loss.call, loss.name
    if callable(loss):
        return loss, getattr(loss, "__name__", "loss")
    fail("loss", "must be a Keras loss name, function or `keras.losses.Loss`", loss, TypeError)


def accuracy(y_true, y_pred):
    """Keras's ``"accuracy"``: binary, sparse categorical or categorical accuracy, chosen
    from the shapes of the targets and predictions as ``Model.compile`` chooses it
    (``keras.src.trainers.compile_utils.is_binary_or_sparse_categorical``): binary for a
    one-unit output, sparse when the targets have a lower rank than the predictions or one
    last unit against several, categorical (one-hot targets) otherwise."""
    t_rank, p_rank = len(y_true.shape), len(y_pred.shape)
    if y_pred.shape[-1] == 1:
        return keras.metrics.binary_accuracy(y_true, y_pred)
    if t_rank < p_rank or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1):
        return keras.metrics.sparse_categorical_accuracy(y_true, y_pred)
    return keras.metrics.categorical_accuracy(y_true, y_pred)


def resolve_metric(metric):
    """Return ``(fn, kwargs, name)`` for a mean-type metric (accuracy, MAE, ...).

    ``"accuracy"``/``"acc"`` resolve the way Keras resolves them, from the shapes of the
    targets and predictions (see `accuracy`), whatever the loss. Stateful metrics that are
    not means of per-sample values (AUC, precision, ...) are refused.
    """
    if isinstance(metric, str) and metric.lower() in ("accuracy", "acc"):
        return accuracy, {}, metric
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
        values = self.fn(tile_targets(y_true, self.num_replicas, y_pred), y_pred)
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

    `result()` is a vector of N values, one per replica, averaged the way Keras averages the
    same number: a compiled metric (accuracy, MAE, ...) is Keras's `Mean`, weighted by
    `sample_weight` when given, ``sum(v * w) / sum(w)``; the loss (``count_weights=False``)
    is what Keras logs as ``loss``, ``sum(l * w) / number of samples`` (its batch losses
    ``sum(l * w) / B`` averaged with the batch sizes as weights).

    Args:
        fn: per-sample function ``fn(y_true, y_pred) -> (B, N)`` on tiled targets.
        num_replicas: N.
        name: the metric name (reported as ``name[i]``).
        fn_kwargs: extra keyword arguments of `fn`.
        count_weights: divide by the sum of the sample weights (``True``, a metric) or by
            the number of samples (``False``, the loss).
    """

    def __init__(self, fn, num_replicas: int, name: str, fn_kwargs=None,
                 count_weights: bool = True, **kwargs):
        super().__init__(name=name, **kwargs)
        self.fn, self.num_replicas, self.fn_kwargs = fn, num_replicas, dict(fn_kwargs or {})
        self.count_weights = count_weights
        self.total = self.add_variable(shape=(num_replicas,), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self.fn(tile_targets(y_true, self.num_replicas, y_pred), y_pred,
                         **self.fn_kwargs)
        values = ops.cast(values, self.dtype)
        if len(values.shape) > 2:  # e.g. binary accuracy (B, N, 1): Keras averages per sample
            values = ops.mean(values, axis=tuple(range(2, len(values.shape))))
        count = ops.cast(ops.shape(values)[0], self.dtype)
        if sample_weight is not None:
            weight = ops.reshape(ops.cast(sample_weight, self.dtype), (-1, 1))
            values = values * weight
            if self.count_weights:
                count = ops.sum(weight)
        self.total.assign_add(ops.sum(values, axis=0))
        self.count.assign_add(count)

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(ops.zeros(self.total.shape, self.total.dtype))
        self.count.assign(ops.zeros((), self.count.dtype))

    def get_config(self):
        return {"name": self.name, "num_replicas": self.num_replicas,
                "count_weights": self.count_weights}
