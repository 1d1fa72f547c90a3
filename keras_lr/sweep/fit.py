"""`parallel_fit`: train one model per learning rate, all at once, in one Keras graph.

A learning-rate sweep is N trainings that differ only in the rate. Run one after another on a
CPU with a small model, each leaves the machine mostly idle. `parallel_fit` instead stacks the N
models into one replicated model (`keras_lr.sweep.convert`) whose layers compute all replicas
with batched operations (einsum, grouped convolutions, a replicated recurrent cell) and trains
it with ``model.fit`` on the sum of the per-replica losses::

    loss = sum_i mean_b loss_fn(y[b], model_i(x[b]))
    lr_i(t) = rate_i * schedule(t)          (schedule(t) = 1 when no schedule is given)

Every replica sees the same batches; nothing mixes replicas, so replica ``i`` ends with the
weights and history of ``model_i.fit(x, y, ...)`` at rate ``rate_i`` (within float rounding),
and a replica that diverges is frozen at its last finite weights without touching the others.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from keras_lr._validation import check_float, check_int, check_same_length, fail
from keras_lr.sweep.convert import replicate
from keras_lr.sweep.metrics import ReplicaMean, SummedReplicaLoss, resolve_loss, resolve_metric
from keras_lr.sweep.optimizer import replicated_optimizer
from keras_lr.sweep.result import SweepResult

__all__ = ["parallel_fit"]


def _check_rates(learning_rates) -> list[float]:
    if isinstance(learning_rates, numbers.Real) or not hasattr(learning_rates, "__len__"):
        fail("learning_rates", "must be a sequence of positive floats", learning_rates,
             TypeError)
    rates = list(np.asarray(learning_rates, dtype=object).ravel()) if isinstance(
        learning_rates, np.ndarray) else list(learning_rates)
    if not rates:
        fail("learning_rates", "must not be empty", learning_rates)
    return [check_float(f"learning_rates[{i}]", r, minimum=0.0, strict=True)
            for i, r in enumerate(rates)]


def _build_models(build_model: Callable, seeds) -> list[keras.Model]:
    calls = [(lambda s=s: build_model(s)) for s in seeds]
    models, seen = [], set()
    for i, call in enumerate(calls):
        model = call()
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"build_model must return a keras.Model; call {i} returned "
                f"{type(model).__name__}. Received: {model!r}"
            )
        if getattr(model, "compiled", False) or getattr(model, "optimizer", None) is not None:
            raise ValueError(
                "build_model must return an uncompiled model (parallel_fit compiles the "
                f"replicated model itself). Received: a compiled model {model.name!r}"
            )
        if not model.built or not model.weights:
            raise ValueError(
                "build_model must return a built model with weights (start it with "
                f"keras.Input(shape=...)). Received: an unbuilt model {model.name!r}"
            )
        ids = {id(w) for w in model.weights}
        if id(model) in {id(m) for m in models} or ids & seen:
            raise ValueError(
                "build_model must return a new model on every call; call "
                f"{i} returned a model sharing weights with an earlier one. "
                f"Received: {model.name!r}"
            )
        seen |= ids
        models.append(model)
    return models


def _train_steps(x, batch_size, epochs: int) -> int | None:
    """Training steps of ``fit(x, batch_size=..., epochs=...)``, or ``None`` when unknown."""
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) > 0 and shape[0] is not None:  # arrays and tensors
        return epochs * math.ceil(shape[0] / (batch_size or 32))
    if isinstance(x, keras.utils.PyDataset) or hasattr(x, "cardinality"):  # tf.data
        try:
            return epochs * len(x)
        except TypeError:  # a dataset of unknown or infinite length
            return None
    return None


def _dtype_kind(y: Any) -> str | None:
    """NumPy's dtype kind of an array or tensor (``"i"``, ``"f"``, ...), None if unknown."""
    dtype = getattr(y, "dtype", None)
    try:
        return np.dtype(getattr(dtype, "as_numpy_dtype", dtype)).kind if dtype else None
    except TypeError:
        return None


def _default_loss(model: keras.Model, y: Any) -> str:
    """The loss `parallel_fit` uses without ``loss=``, only where it certainly fits: sparse
    categorical crossentropy for a softmax head over 2+ classes with integer labels,
    categorical crossentropy for one-hot targets of its width, mse for a linear one-unit head
    with one target per sample (an unknown `y`, e.g. a dataset, takes the head's default).

    Raises:
        ValueError: any other head or targets (logits with integer labels, a sigmoid, ...),
            naming the loss to pass.
    """
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "linear")
    units = model.outputs[0].shape[-1]
    shape, kind = getattr(y, "shape", None), _dtype_kind(y)
    known = shape is not None and kind is not None
    one_per_sample = known and (len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1))
    integral = one_per_sample and (
        kind in "iub" or (kind == "f" and bool(np.all(np.mod(np.asarray(y), 1) == 0))))
    if activation == "softmax" and units > 1:
        if not known or integral:
            return "sparse_categorical_crossentropy"
        if len(shape) == 2 and shape[-1] == units:
            return "categorical_crossentropy"
    elif activation == "linear" and units == 1 and (not known or one_per_sample):
        return "mse"
    targets = "" if not known else (
        f" and targets of shape {tuple(shape)}" + (" (integer labels)" if integral else ""))
    hint = ("keras.losses.SparseCategoricalCrossentropy(from_logits=True) for logits and "
            "integer labels" if activation == "linear" and units > 1 and integral
            else "'mse', 'binary_crossentropy' or a keras.losses.Loss")
    raise ValueError(
        f"parallel_fit cannot tell the loss from a model whose output layer "
        f"`{last.name}` has {units} unit(s) and activation '{activation}'{targets}: pass "
        f"loss=, e.g. loss={hint}")


def parallel_fit(
    build_model: Callable[..., keras.Model],
    learning_rates: Sequence[float],
    x: Any,
    y: Any = None,
    *,
    optimizer: Any = "adam",
    schedule: Any = None,
    loss: Any = None,
    epochs: int = 1,
    batch_size: int | None = 32,
    validation_data: Any = None,
    seeds: Sequence[int] | None = None,
    metrics: Sequence[Any] = ("accuracy",),
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    shuffle: bool = True,
    jit_compile: bool | str = "auto",
    verbose: int = 0,
) -> SweepResult:
    """Train one replica per learning rate, in parallel, and return their histories.

    Replica ``i`` trains a model from ``build_model()`` (or ``build_model(seeds[i])``) with
    ``lr_i(t) = learning_rates[i] * schedule(t)`` on the same batches as every other replica.
    The result equals N separate ``model.fit`` calls with the same arguments, up to float
    rounding, but costs far less than N runs on a CPU.

    Args:
        build_model: a function returning a new, built, uncompiled `keras.Sequential` model;
            called once per replica, with the replica's seed when `seeds` is given.
        learning_rates: N positive rates (peak rates when a `schedule` is given).
        x: training inputs, as for ``model.fit`` (arrays, a dataset or a `PyDataset`).
        y: training targets (``None`` for a dataset).
        optimizer: a Keras optimizer name, config or fresh instance (its learning rate is
            ignored); ``clipnorm``/``global_clipnorm`` apply per replica.
        schedule: ``None`` (constant rates) or a schedule *shape* with peak 1.0, e.g.
            ``Warmup(CosineDecay(1.0, 900), 100)``; replica ``i`` uses ``rate_i * schedule``.
        loss: a Keras loss name, function or `keras.losses.Loss`. Default, only where it
            certainly fits the model and `y`: ``"sparse_categorical_crossentropy"`` for a
            softmax head with integer labels, ``"categorical_crossentropy"`` for one-hot
            targets, ``"mse"`` for a linear one-unit head; anything else needs ``loss=``.
        epochs: as ``model.fit``.
        batch_size: as ``model.fit``.
        validation_data: as ``model.fit``.
        callbacks: as ``model.fit``. Logs carry ``loss[i]``, ``accuracy[i]``,
            ``val_loss[i]``, ... per replica (and ``loss``, the sum over replicas).
        shuffle: as ``model.fit``.
        verbose: as ``model.fit``.
        seeds: one non-negative integer per replica, passed to `build_model`; ``None`` calls
            ``build_model()`` with no argument.
        metrics: mean-type metrics (``"accuracy"``, ``"mae"``, ...) computed per replica.
        jit_compile: ``True`` compiles the training step with XLA, ``False`` runs a plain
            TensorFlow graph; ``"auto"`` (default): XLA only for recurrent models without
            dropout trained for at least `keras_lr.sweep.convert.XLA_MIN_STEPS` steps (XLA's
            compilation is repaid only by long runs, measured), a plain graph otherwise
            (with dropout, its masks then equal those of an ordinary CPU fit); see
            `ReplicaModel.configure`.

    Returns:
        A `SweepResult`.

    Raises:
        ValueError: empty or non-positive rates, seeds of another length, a build function
            returning compiled, unbuilt or shared models, a layer that cannot be
            replicated, or no `loss` where the model and targets do not tell it (e.g. logits
            with integer labels).

    Example:
        >>> from keras_lr import data, models
        >>> ds = data.load("digits", view="flat", limit=200)
        >>> build = lambda: models.mlp(ds.input_shape, 10, hidden=(16,))
        >>> result = parallel_fit(build, [1e-3, 1e-2, 1e-1], ds.x_train, ds.y_train,
        ...                       epochs=2, validation_data=(ds.x_val, ds.y_val))
        >>> result.history["val_loss"].shape
        (2, 3)
    """
    rates = _check_rates(learning_rates)
    if seeds is not None:
        if isinstance(seeds, (str, numbers.Number)) or not hasattr(seeds, "__len__"):
            fail("seeds", "must be a sequence of non-negative integers", seeds, TypeError)
        check_same_length("seeds", seeds, "learning_rates", rates)
        seeds = [check_int(f"seeds[{i}]", s, minimum=0) for i, s in enumerate(seeds)]
    epochs = check_int("epochs", epochs, minimum=1)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    if not (jit_compile is True or jit_compile is False or jit_compile == "auto"):
        fail("jit_compile", "must be True, False or 'auto'", jit_compile)
    if not callable(build_model):
        fail("build_model", "must be a function returning a new, uncompiled Keras model",
             build_model, TypeError)
    if seeds is None:
        models = _build_models(lambda _: build_model(), [None] * len(rates))
    else:
        models = _build_models(build_model, seeds)
    n = len(rates)
    replica_model = replicate(models)

    user_loss = _default_loss(models[0], y) if loss is None else loss
    loss_fn, _ = resolve_loss(user_loss)
    if isinstance(metrics, str):
        metrics = (metrics,)
    # Keras weighs the loss by `sample_weight` and divides by the number of samples; compiled
    # `metrics` never see the weights (only `weighted_metrics` would).
    loss_metric = ReplicaMean(loss_fn, n, "loss", count_weights=False)
    replica_metrics = []
    for metric in metrics or ():
        fn, kwargs, name = resolve_metric(metric)
        replica_metrics.append(ReplicaMean(fn, n, name, kwargs))

    if schedule is not None and not isinstance(
        schedule, keras.optimizers.schedules.LearningRateSchedule
    ):
        fail("schedule", "must be None or a keras LearningRateSchedule (a shape with peak 1.0)",
             schedule, TypeError)
    opt = replicated_optimizer(optimizer, rates, 1.0 if schedule is None else schedule)
    replica_model.compile(
        optimizer=opt,
        loss=SummedReplicaLoss(loss_fn, n),
        metrics=replica_metrics,
        weighted_metrics=[loss_metric],
        jit_compile=replica_model.configure(jit_compile, _train_steps(x, batch_size, epochs)),
    )
    fit_history = replica_model.fit(
        x, y, batch_size=batch_size, epochs=epochs, validation_data=validation_data,
        callbacks=list(callbacks or []), shuffle=shuffle, verbose=verbose,
    )
    history = _per_replica_history(fit_history.history, n)
    base_optimizer = keras.optimizers.get(optimizer)
    opt_config = base_optimizer.get_config()
    opt_class = type(base_optimizer)
    metric_list = list(metrics or ())

    def extract(i: int) -> keras.Model:
        model = replica_model.extract(i, models[i])
        config = dict(opt_config, learning_rate=rates[i])
        model.compile(optimizer=opt_class.from_config(config), loss=user_loss,
                      metrics=metric_list)
        model.optimizer.build(model.trainable_variables)  # saves and loads without warnings
        return model

    return SweepResult(
        rates,
        seeds,
        history,
        diverged=keras.ops.convert_to_numpy(opt.replica_alive) < 0.5,
        diverged_step=keras.ops.convert_to_numpy(opt.replica_diverged_step).astype("int64"),
        extract=extract,
    )


def _per_replica_history(logs: dict[str, list], n: int) -> dict[str, np.ndarray]:
    """``{"loss[0]": [...], ...}`` -> ``{"loss": array (epochs, N)}``."""
    names = sorted({key.rsplit("[", 1)[0] for key in logs if key.endswith("]")})
    return {
        name: np.stack([np.asarray(logs[f"{name}[{i}]"], dtype="float64") for i in range(n)],
                       axis=1)
        for name in names
    }
