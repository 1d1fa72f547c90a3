"""The range-test loop on PyTorch: one ``model.train_step(batch)`` per step.

Keras 3.15's torch trainer runs one step per call (``steps_per_execution`` must be 1), and so
does this loop: each step assigns the rate, resets the metrics, trains on one batch and reads
its loss (one host read per step); `loop.Smoother` smooths and stops, exact to the step. With
``model.jit_compile`` the step is `torch.compile`-d, as Keras's own train function is. The rate
reaches the optimizer as on TensorFlow: the innermost optimizer's own rate variable is
assigned, or a `RangeTestRate` reading a private variable is installed for the run.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

from keras_lr.finder.loop import RangeTestRate, run_on_host, unique_variables

__all__ = ["Loop"]


class Loop:
    """The range-test loop of one compiled model on PyTorch (cached by `make_loop`)."""

    def __init__(self, model, inner, key):
        self.model, self.inner, self.key = model, inner, key
        variable = key[2]
        self.install = variable is None
        self.rate = variable if variable is not None else keras.Variable(
            0.0, dtype="float32", trainable=False, name="lr_finder_rate"
        )
        self._step = self._one_step
        if model.jit_compile and not model.run_eagerly:
            import torch

            self._step = torch.compile(self._one_step)

    def _variables(self):
        model = self.model
        return unique_variables(
            [*model.variables, *model.metrics_variables, *model.optimizer.variables]
        )

    def save(self):
        self._saved_variables = self._variables()
        return [keras.ops.copy(v.value) for v in self._saved_variables]

    def finish(self, saved):
        if saved is not None:
            for variable, value in zip(self._saved_variables, saved):
                variable.assign(value)

    @contextlib.contextmanager
    def driving(self):
        original = self.inner._learning_rate
        saved_rate = np.array(keras.ops.convert_to_numpy(self.rate), copy=True)
        training = self.model.training
        try:
            self.model.train()  # torch training mode, as `fit` sets it (torch layers read it)
            if self.install:
                self.inner.learning_rate = RangeTestRate(self.rate)
            yield
        finally:
            if self.install:
                self.inner.learning_rate = original
            self.rate.assign(saved_rate)
            self.model.train(training)

    def _one_step(self, data):
        self.model.reset_metrics()  # the logged "loss" is then this batch's loss alone
        logs = self.model.train_step(data)
        if not isinstance(logs, dict) or "loss" not in logs:
            raise ValueError(
                "find_lr reads the batch loss from `model.train_step(data)['loss']`; this "
                f"model's train_step returned {type(logs).__name__} without a 'loss' entry."
            )
        return logs["loss"]

    def chunk(self, batches, rates, first, smoother, exact):
        for j, batch in enumerate(batches):
            self.rate.assign(np.float32(rates[j]))
            data = keras.tree.map_structure(keras.ops.convert_to_tensor, batch)
            loss = keras.ops.convert_to_numpy(self._step(data))
            code = smoother.push(first + j, np.reshape(loss, ()))
            if code:
                return code
        return 0

    def run(self, batches, rates, smoothing, stop_factor, steps_per_chunk, exact):
        return run_on_host(self, batches, rates, smoothing, stop_factor, steps_per_chunk, exact)
