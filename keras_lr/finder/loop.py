"""The range-test loop behind `find_lr`: what every backend shares, and the per-model cache.

Each backend has one small module with a ``Loop`` class (`tf_loop`, `jax_loop`, `torch_loop`):

* TensorFlow: a `tf.function` runs a chunk of steps in a `tf.while_loop` (the smoothed loss and
  the stop tests in the graph, float64);
* JAX: jitted blocks of `steps_per_execution` steps run a chunk over ``model.train_step(state, batch)``
  (the stateless train step of Keras's JAX trainer), or the steps one by one when the model is
  not jit-compiled;
* PyTorch: the steps one by one through ``model.train_step(batch)`` (torch-compiled when
  ``model.jit_compile``).

On JAX and PyTorch the host keeps the smoothed loss and makes the stop decision, in float64
with the formula of the TensorFlow graph (`Smoother`), so a curve is the same on every backend.

A ``Loop`` offers ``save()`` (an exact copy of the state `find_lr` restores), ``driving()`` (a
context that routes each step's rate to the innermost optimizer and puts the optimizer's own
rate back), ``run(...)`` and ``finish(saved)`` (write back the saved state, or on JAX the
state reached). The loop is cached on the model (a plain attribute, never saved) and built
again when the model is recompiled or its optimizer changes.
"""

from __future__ import annotations

import math

import keras
import numpy as np

__all__ = ["RangeTestRate", "Smoother", "make_loop", "unique_variables"]

CODES = {0: "completed", 1: "diverged", 2: "non-finite"}
_CACHE_ATTR = "_keras_lr_finder_loop"


class RangeTestRate(keras.optimizers.schedules.LearningRateSchedule):
    """Private schedule installed for the duration of a range test: reads the finder's rate.

    `source` is a `keras.Variable` (TensorFlow, PyTorch) or a zero-argument callable returning
    the current step's rate (JAX, where it returns the traced rate of the step being traced).
    Never saved: `find_lr` always puts the optimizer's own rate back before it returns.
    """

    def __init__(self, source):
        self.source = source

    def __call__(self, step):
        value = self.source() if callable(self.source) else self.source
        return keras.ops.convert_to_tensor(value)


def unique_variables(variables):
    """`variables` without repeats (by identity), in order."""
    seen, out = set(), []
    for variable in variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            out.append(variable)
    return out


class Smoother:
    """The host-side smoothed loss and stop tests, exactly the TensorFlow graph's arithmetic.

    ``push(i, loss)`` records step ``i``'s loss (a float32 value, computed on in float64) and
    returns 0 (go on), 1 (diverged: step ``i`` kept) or 2 (non-finite: step ``i`` dropped).
    """

    def __init__(self, smoothing, stop_factor):
        self.beta, self.factor = float(smoothing), float(stop_factor)
        self.avg, self.best = 0.0, math.inf
        self.losses, self.smoothed = [], []

    def push(self, i, loss):
        loss = float(loss)
        if not math.isfinite(loss):
            return 2
        avg = self.beta * self.avg + (1.0 - self.beta) * loss
        value = avg / (1.0 - self.beta ** (i + 1))
        self.avg, self.best = avg, min(self.best, value)
        self.losses.append(loss)
        self.smoothed.append(value)
        return 1 if self.best > 0.0 and value > self.factor * self.best else 0

    def result(self, code):
        return np.array(self.losses), np.array(self.smoothed), CODES[code]


def same_shape_runs(batches):
    """Split a list of batches into runs of consecutive batches with the same leaf shapes."""
    runs, shapes = [], None
    for batch in batches:
        key = tuple(np.shape(leaf) for leaf in keras.tree.flatten(batch))
        if key != shapes:
            runs.append([])
            shapes = key
        runs[-1].append(batch)
    return runs


def backend_module():
    """The loop module of the current Keras backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from keras_lr.finder import tf_loop as module
    elif backend == "jax":
        from keras_lr.finder import jax_loop as module
    elif backend == "torch":
        from keras_lr.finder import torch_loop as module
    else:
        raise ValueError(
            "find_lr runs on the TensorFlow, JAX and PyTorch backends. "
            f"Received: keras.backend.backend()={backend!r}"
        )
    return module


def make_loop(model, inner):
    """The model's cached ``Loop``, built again when the model was recompiled."""
    learning_rate = inner._learning_rate
    variable = learning_rate if isinstance(learning_rate, keras.Variable) else None
    key = (
        model.optimizer, inner, variable,
        getattr(model, "_compile_loss", None), getattr(model, "_compile_metrics", None),
        bool(model.jit_compile), bool(model.run_eagerly),
    )
    loop = model.__dict__.get(_CACHE_ATTR)
    if loop is not None and len(key) == len(loop.key) and all(
        a is b for a, b in zip(key, loop.key)
    ):
        return loop
    loop = backend_module().Loop(model, inner, key)
    # Plain attribute, bypassing Keras tracking: never saved, never in `model.variables`.
    object.__setattr__(model, _CACHE_ATTR, loop)
    return loop


def run_on_host(loop, batches, rates, smoothing, stop_factor, steps_per_chunk, exact):
    """Drive `loop.chunk` over the test (JAX, PyTorch): the host smooths and stops.

    ``loop.chunk(batches, rates, first, smoother, exact)`` runs the steps of one run of
    same-shaped batches, pushes each loss into `smoother` and returns the first non-zero code
    (or 0). With `exact` the model state afterwards is the state after the last kept step.
    """
    smoother = Smoother(smoothing, stop_factor)
    num_steps, done = len(rates), 0
    while done < num_steps:
        count = min(steps_per_chunk, num_steps - done)
        for run in same_shape_runs(batches.take(count)):
            code = loop.chunk(run, rates[done : done + len(run)], done, smoother, exact)
            done += len(run)
            if code:
                return smoother.result(code)
    return smoother.result(0)
