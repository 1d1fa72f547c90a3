"""`LRHyperModel`: a KerasTuner hypermodel that searches the learning rate, schedule and optimizer.

`build(hp)` calls your model function (or builds a `keras_lr.models` reference model) and
compiles it with ``hp_optimizer(hp, hp_schedule(hp, epochs * steps_per_epoch, ...))``;
`fit(hp, model, ...)` trains it with the tuner's callbacks plus `DivergencePruning` and
`keras_lr.callbacks.LRMonitor`. It works unchanged with every KerasTuner tuner and in
KerasTuner's distributed mode (a chief oracle and workers), since all it does is build and fit.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import keras
import keras_tuner

from keras_lr._validation import check_choice, check_float, check_int, check_less, fail
from keras_lr.tuner.pruning import DivergencePruning
from keras_lr.tuner.space import (
    CLIPS,
    OPTIMIZERS,
    SCHEDULES,
    check_names,
    hp_learning_rate,
    hp_optimizer,
    hp_schedule,
)

__all__ = ["LRHyperModel"]


class LRHyperModel(keras_tuner.HyperModel):
    """Search the learning rate, its schedule and the optimizer of a model with KerasTuner.

    Every trial samples ``learning_rate`` (log-uniform in `learning_rate`), a ``schedule``
    family with its parameters (`hp_schedule`), an ``optimizer`` and a ``clip`` rule
    (`hp_optimizer`); hyperparameters the model function declares on `hp` are searched too.
    The schedule spans ``epochs * steps_per_epoch`` steps: with Hyperband give ``epochs =
    max_epochs``; a trial that Hyperband resumes from a parent's weights (``initial_epoch >
    0``) continues the schedule where the parent stopped (its optimizer step count is set to
    ``initial_epoch * steps_per_epoch``; the optimizer's moments start afresh, as KerasTuner
    saves weights only).

    With `seed` set, `build` and `fit` call ``keras.utils.set_random_seed(seed)`` first, so a
    trial's hyperparameters rebuild and retrain the same model (on CPU).

    Every call of `fit` appends a record to `records`: ``{"epochs_run", "pruned", "reason",
    "hyperparameters"}``.

    Args:
        build_model: a function ``build_model(hp) -> keras.Model`` (uncompiled; a compiled
            one is recompiled, and then `loss` must be given), or a reference model name of
            `keras_lr.models.FAMILIES`.
        epochs: epochs of a full trial (the default of ``fit``), >= 1.
        steps_per_epoch: optimizer steps per epoch (``ceil(len(x_train) / batch_size)``).
        input_shape: shape of one sample, for a reference model name only.
        num_classes: number of classes (None: a regression head), for a reference model
            name only.
        model_kwargs: further `keras_lr.models.build` arguments, for a reference model name.
        loss: the loss; None means ``"sparse_categorical_crossentropy"``, or ``"mse"`` for a
            reference regression model.
        metrics: compiled metrics; None means ``["accuracy"]`` for classification, none for
            regression.
        learning_rate: ``(min_value, max_value)`` of the searched rate (see `finder_range`).
        schedules: the schedule families to search (`hp_schedule`'s `choices`).
        optimizers: the optimizers to search (`hp_optimizer`'s `choices`).
        clip: the clipping rules to search (`hp_optimizer`'s `clip`).
        pruning: a `DivergencePruning` (copied for every trial), True for the default one,
            or None / False for none.
        monitor: add `keras_lr.callbacks.LRMonitor` (``learning_rate`` in the logs).
        seed: global seed set before building and fitting, or None.
        jit_compile: passed to ``model.compile`` (``"auto"``, True, False).
        name: the hypermodel's name, as for `keras_tuner.HyperModel`.
        tunable: as for `keras_tuner.HyperModel`.

    Example:

    ```python
    import keras_tuner as kt
    from keras_lr import data
    from keras_lr.tuner import LRHyperModel

    ds = data.load("digits", view="flat")
    hypermodel = LRHyperModel("mlp", epochs=5, steps_per_epoch=-(-len(ds.x_train) // 32),
                              input_shape=ds.input_shape, num_classes=ds.num_classes)
    tuner = kt.BayesianOptimization(hypermodel, objective="val_accuracy", max_trials=20,
                                    directory="tuning", project_name="digits")
    tuner.search(ds.x_train, ds.y_train, batch_size=32,
                 validation_data=(ds.x_val, ds.y_val))
    ```
    """

    def __init__(
        self,
        build_model: Callable | str,
        *,
        epochs: int,
        steps_per_epoch: int,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        model_kwargs: dict[str, Any] | None = None,
        loss=None,
        metrics=None,
        learning_rate: tuple[float, float] = (1e-5, 1.0),
        schedules: Sequence[str] = SCHEDULES,
        optimizers: Sequence[str] = OPTIMIZERS,
        clip: Sequence[str] = CLIPS,
        pruning: DivergencePruning | bool | None = True,
        monitor: bool = True,
        seed: int | None = 0,
        jit_compile="auto",
        name: str | None = None,
        tunable: bool = True,
    ):
        super().__init__(name=name, tunable=tunable)
        from keras_lr import models

        if isinstance(build_model, str):
            check_choice("build_model", build_model, models.FAMILIES)
            if input_shape is None:
                fail("input_shape", "is required with a reference model name", input_shape)
        elif not callable(build_model):
            fail("build_model", "must be a function of `hp` or a reference model name",
                 build_model, TypeError)
        elif input_shape is not None or num_classes is not None or model_kwargs:
            raise ValueError(
                "Arguments `input_shape`, `num_classes` and `model_kwargs` apply to a reference "
                "model name only; a model function builds its own model."
            )
        self.build_model = build_model
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.model_kwargs = dict(model_kwargs or {})
        self.epochs = check_int("epochs", epochs, minimum=1)
        self.steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, minimum=1)
        if isinstance(learning_rate, str) or not isinstance(learning_rate, Sequence) or len(
                learning_rate) != 2:
            fail("learning_rate", "must be a pair (min_value, max_value)", learning_rate,
                 TypeError)
        low = check_float("learning_rate[0]", learning_rate[0], minimum=0.0, strict=True)
        high = check_float("learning_rate[1]", learning_rate[1], minimum=0.0, strict=True)
        check_less("learning_rate[0]", low, "learning_rate[1]", high)
        self.learning_rate = (low, high)
        self.schedules = check_names("schedules", schedules, SCHEDULES)
        self.optimizers = check_names("optimizers", optimizers, OPTIMIZERS)
        self.clip = check_names("clip", clip, CLIPS)
        if pruning is True:
            pruning = DivergencePruning()
        elif pruning is False:
            pruning = None
        if pruning is not None and not isinstance(pruning, DivergencePruning):
            fail("pruning", "must be a DivergencePruning, True, False or None", pruning,
                 TypeError)
        self.pruning = pruning
        self.monitor = bool(monitor)
        self.seed = None if seed is None else check_int("seed", seed, minimum=0)
        self.jit_compile = jit_compile
        regression = isinstance(build_model, str) and num_classes is None
        self._loss_given = loss is not None
        self.loss = loss if loss is not None else (
            "mse" if regression else "sparse_categorical_crossentropy")
        self.metrics = list(metrics) if metrics is not None else ([] if regression
                                                                  else ["accuracy"])
        self.records: list[dict] = []

    @property
    def total_steps(self) -> int:
        """Steps of a full trial: ``epochs * steps_per_epoch`` (the schedules' length)."""
        return self.epochs * self.steps_per_epoch

    def build(self, hp):
        """Build the model, sample the learning-rate hyperparameters and compile."""
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        if isinstance(self.build_model, str):
            from keras_lr import models

            model = models.build(self.build_model, self.input_shape, self.num_classes,
                                 seed=self.seed or 0, **self.model_kwargs)
        else:
            model = self.build_model(hp)
            if not isinstance(model, keras.Model):
                raise TypeError(
                    "`build_model(hp)` must return a keras.Model. "
                    f"Received: {type(model).__name__}"
                )
            if model.compiled and not self._loss_given:
                raise ValueError(
                    "`build_model(hp)` returned a compiled model, which LRHyperModel compiles "
                    "again with the searched optimizer: pass its `loss` (and `metrics`) to "
                    "LRHyperModel instead of the default sparse categorical crossentropy."
                )
        rate = hp_learning_rate(hp, "learning_rate", *self.learning_rate)
        schedule = hp_schedule(hp, max(2, self.total_steps), self.schedules, learning_rate=rate)
        optimizer = hp_optimizer(hp, schedule, self.optimizers, self.clip)
        model.compile(optimizer=optimizer, loss=self.loss, metrics=list(self.metrics),
                      jit_compile=self.jit_compile)
        return model

    def fit(self, hp, model, *args, **kwargs):
        """Train with the tuner's callbacks, after `DivergencePruning` and `LRMonitor`.

        The pruning callback comes first, so that the tuner's checkpoint callback and
        `History` see the penalty values of a pruned epoch. ``epochs`` defaults to `epochs`.
        """
        from keras_lr.callbacks import LRMonitor

        pruning = copy.deepcopy(self.pruning) if self.pruning is not None else None
        extra = ([pruning] if pruning is not None else []) + ([LRMonitor()] if self.monitor
                                                              else [])
        kwargs["callbacks"] = extra + list(kwargs.get("callbacks") or [])
        kwargs.setdefault("epochs", self.epochs)
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        self._resume_schedule(model, kwargs.get("initial_epoch", 0))
        history = model.fit(*args, **kwargs)
        self.records.append({
            "epochs_run": len(next(iter(history.history.values()), [])),
            "pruned": bool(pruning is not None and pruning.pruned),
            "reason": None if pruning is None else pruning.reason,
            "hyperparameters": {k: v for k, v in hp.values.items() if hp.is_active(k)},
        })
        return history

    def _resume_schedule(self, model, initial_epoch):
        """Start the optimizer's step count at ``initial_epoch * steps_per_epoch``."""
        if not initial_epoch:
            return
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        optimizer.iterations.assign(int(initial_epoch) * self.steps_per_epoch)
