"""The schedule-free evaluation point: x for validation, evaluation and saving, y for training.

A schedule-free optimizer trains at ``y = beta * x + (1 - beta) * z`` and its answer is the
average x. Like the reference's ``optimizer.eval()`` / ``optimizer.train()``, the swaps are
one interpolation per variable, in place::

    to x:  p = p + (1 - 1 / beta) * (z - p)      # p = (y - (1 - beta) * z) / beta
    to y:  p = p + (1 - beta) * (z - p)

`ScheduleFreeEval` does them at the right moments of `fit`, `evaluate` and `predict`, for
`keras_lr.optimizers.ScheduleFreeAdamW` / `ScheduleFreeSGD` and for Keras's own
`keras.optimizers.ScheduleFreeAdamW` (under any keras-lr wrapper or `LossScaleOptimizer`).
`schedule_free_eval` / `schedule_free_train` are the manual swaps, and
`recompute_batchnorm_statistics` is the reference's BatchNorm recipe (statistics at x).

Reference: facebookresearch/schedule_free 1.4.1, ``AdamWScheduleFree.eval`` / ``train`` and
the README's BatchNorm section.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_lr._validation import check_int

__all__ = [
    "ScheduleFreeEval",
    "recompute_batchnorm_statistics",
    "schedule_free_eval",
    "schedule_free_mode",
    "schedule_free_train",
]

# Mode of a Keras `ScheduleFreeAdamW` (it has no variable for it), kept on the instance.
_KERAS_MODE_ATTR = "_keras_lr_schedule_free_mode"


def _schedule_free_optimizer(optimizer):
    """The schedule-free optimizer under any wrappers, or None."""
    from keras_lr.optimizers.schedule_free import _ScheduleFree

    keras_sf = getattr(keras.optimizers, "ScheduleFreeAdamW", None)
    while optimizer is not None:
        if isinstance(optimizer, _ScheduleFree):
            return optimizer
        if keras_sf is not None and isinstance(optimizer, keras_sf):
            return optimizer
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return None


class _State:
    """Uniform view of the state of either kind of schedule-free optimizer."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.ours = hasattr(optimizer, "z_variables")
        if self.ours:
            self.pairs = optimizer.z_variables()
            self.beta = float(optimizer.interpolation)
        else:
            self.pairs = list(zip(optimizer._trainable_variables, optimizer._momentums))
            self.beta = float(optimizer.beta_1)

    def mode(self):
        if self.ours:
            return "eval" if float(ops.convert_to_numpy(self.optimizer.eval_mode)) else "train"
        mode = getattr(self.optimizer, _KERAS_MODE_ATTR, None)
        if mode is None:
            # Unknown (a model just loaded): `fit` ends at x and checkpoints written through
            # ScheduleFreeEval hold x, so a trained optimizer's variables are taken to be x.
            mode = "eval" if int(ops.convert_to_numpy(self.optimizer.iterations)) else "train"
        return mode

    def set_mode(self, mode):
        if self.ours:
            self.optimizer.eval_mode.assign(1.0 if mode == "eval" else 0.0)
        else:
            object.__setattr__(self.optimizer, _KERAS_MODE_ATTR, mode)

    def swap(self, mode):
        """Put the model at x (``mode="eval"``) or y (``"train"``); False if already there."""
        if self.mode() == mode:
            self.set_mode(mode)
            return False
        if self.ours and not int(ops.convert_to_numpy(self.optimizer.iterations)):
            self.set_mode(mode)  # before the first step x = y = z (z is set at that step)
            return False
        weight = 1.0 - 1.0 / self.beta if mode == "eval" else 1.0 - self.beta
        for variable, z in self.pairs:
            if z is None:
                continue
            value = variable.value
            w = ops.cast(weight, value.dtype)
            variable.assign(value + w * (ops.cast(z.value, value.dtype) - value))
        self.set_mode(mode)
        return True


def _state(model_or_optimizer, caller):
    optimizer = getattr(model_or_optimizer, "optimizer", model_or_optimizer)
    found = _schedule_free_optimizer(optimizer)
    if found is None:
        raise ValueError(
            f"{caller} needs a schedule-free optimizer (keras_lr.optimizers.ScheduleFreeAdamW, "
            "ScheduleFreeSGD or keras.optimizers.ScheduleFreeAdamW), possibly wrapped. "
            f"Received: optimizer={optimizer!r}"
        )
    if not found.built:
        return None
    return _State(found)


def schedule_free_eval(model):
    """Put the evaluation point x into `model` (the reference's ``optimizer.eval()``).

    Args:
        model: a compiled Keras model whose optimizer is schedule-free (or the optimizer).

    Returns:
        True if the variables changed, False if they already held x (or the optimizer is not
        built yet, when x = y).

    Example:

    ```python
    keras_lr.callbacks.schedule_free_eval(model)    # model.evaluate / model.save now use x
    keras_lr.callbacks.schedule_free_train(model)   # back to y before training again
    ```
    """
    state = _state(model, "schedule_free_eval")
    return False if state is None else state.swap("eval")


def schedule_free_train(model):
    """Put the training point y back into `model` (the reference's ``optimizer.train()``).

    Returns:
        True if the variables changed, False if they already held y.
    """
    state = _state(model, "schedule_free_train")
    return False if state is None else state.swap("train")


def schedule_free_mode(model) -> str:
    """``"train"`` (the variables hold y) or ``"eval"`` (they hold x)."""
    state = _state(model, "schedule_free_mode")
    return "train" if state is None else state.mode()


class ScheduleFreeEval(keras.callbacks.Callback):
    """Swap the schedule-free evaluation point x in and out of the model around training.

    In `fit`: y at the start of training and of every epoch; x for the validation pass, and
    from the end of each epoch's training until the next epoch begins (so callbacks listed
    after it, `ModelCheckpoint` above all, save x); y again after validation, so callbacks
    listed before it see the training state; x at the end of `fit`, so the model you get
    back holds x. Given to `evaluate` or `predict` on their own, it puts x in for the call
    and puts back what the model held before.

    Order: list it **after** `keras_lr.callbacks.DivergenceGuard` (which then snapshots and
    restores the training state y) and **before** `ModelCheckpoint` and
    `BackupAndRestore` (which then save x). Whatever is saved records which point it holds in
    the optimizer variable `eval_mode` (keras-lr optimizers), and this callback puts y back
    when training resumes from it, so a resumed run continues exactly. Checkpoints written in
    the middle of an epoch (``save_freq`` an int) hold y.

    Example:

    ```python
    model.compile(optimizer=keras_lr.optimizers.ScheduleFreeAdamW(1e-3), loss="mse")
    model.fit(x, y, validation_split=0.2, epochs=3,
              callbacks=[keras_lr.callbacks.ScheduleFreeEval(),
                         keras.callbacks.ModelCheckpoint("sf.keras")])
    ```

    Reference: the README of facebookresearch/schedule_free ("call optimizer.eval() ... when
    storing checkpoints").
    """

    def __init__(self):
        super().__init__()
        self._in_fit = False
        self._before = None

    def get_config(self):
        return {}

    def _swap(self, mode):
        state = _state(self.model, "ScheduleFreeEval")
        if state is not None:
            state.swap(mode)

    def on_train_begin(self, logs=None):
        self._in_fit = True
        optimizer = _schedule_free_optimizer(self.model.optimizer)
        if optimizer is not None and not optimizer.built:
            # Built here, eagerly, rather than inside the first traced step on TensorFlow:
            # Keras's own ScheduleFreeAdamW then starts its z at the weights (inside the
            # trace its initial assign is lost and z starts at 0).
            self.model.optimizer.build(self.model.trainable_variables)
        self._swap("train")

    def on_epoch_begin(self, epoch, logs=None):
        self._swap("train")

    def on_epoch_end(self, epoch, logs=None):
        self._swap("eval")

    def on_train_end(self, logs=None):
        self._in_fit = False
        self._swap("eval")

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._before = schedule_free_mode(self.model)
        self._swap("eval")

    def on_test_end(self, logs=None):
        if self._in_fit:
            self._swap("train")
        elif self._before is not None:
            self._swap(self._before)

    def on_predict_begin(self, logs=None):
        self.on_test_begin(logs)

    def on_predict_end(self, logs=None):
        self.on_test_end(logs)


def recompute_batchnorm_statistics(model, data, steps=50):
    """Recompute BatchNormalization moving statistics at the evaluation point x.

    The statistics a schedule-free model gathers during training belong to y. The reference
    recipe runs about 50 training-mode forward passes at x before evaluating; here the
    moving mean and variance of every `BatchNormalization` layer are replaced by the
    equal-weight average of the batch statistics of up to `steps` batches (momentum
    ``1 - 1/i`` at batch i, as in PreciseBN), so the result does not depend on the layers'
    momentum. No weight is trained. Call it after `schedule_free_eval` (or after `fit` with
    `ScheduleFreeEval`, which leaves x in the model); batches are taken from `data`.

    Args:
        model: a built Keras model.
        data: an iterable of input batches, or of ``(x, ...)`` tuples (a `tf.data.Dataset`,
            a generator, a list of arrays); NumPy arrays are split into batches of 32.
        steps: int >= 1, the number of batches to use.

    Returns:
        The number of batches used.

    Example:

    ```python
    keras_lr.callbacks.schedule_free_eval(model)
    keras_lr.callbacks.recompute_batchnorm_statistics(model, x_train, steps=50)
    model.evaluate(x_test, y_test)
    ```

    Reference: facebookresearch/schedule_free README, "Caveats" (BatchNorm).
    """
    steps = check_int("steps", steps, minimum=1)
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return 0
    if isinstance(data, np.ndarray):
        data = [data[i:i + 32] for i in range(0, len(data), 32)]
    momenta = [layer.momentum for layer in layers]
    used = 0
    try:
        for batch in data:
            if used >= steps:
                break
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            used += 1
            for layer in layers:
                layer.momentum = 1.0 - 1.0 / used
            model(batch, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return used
