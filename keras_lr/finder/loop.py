"""The compiled range-test loop behind `find_lr`, its cache and the state copy.

A `tf.function` runs up to ``steps_per_chunk`` training steps in a `tf.while_loop`; each step
assigns the rate, resets the model's metrics and calls ``model.train_step(batch)``
(XLA-compiled when ``model.jit_compile``, like `model.fit`). The losses are collected in a
`TensorArray` and the smoothed loss and both stop tests are computed in the graph, so the host
reads the losses once per chunk and a stop is exact to the step. The traced loop is cached on
the model (a plain attribute that is never saved) and traced again only when the model is
recompiled or its optimizer changes.
"""

from __future__ import annotations

import math

import keras
import numpy as np

__all__ = ["RangeTestRate", "compiled_loop", "run_loop"]

_CODES = {0: "completed", 1: "diverged", 2: "non-finite"}


class RangeTestRate(keras.optimizers.schedules.LearningRateSchedule):
    """Private schedule installed for the duration of a range test: reads the finder's rate.

    Never saved: `find_lr` always puts the optimizer's own schedule back before it returns.
    """

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, step):
        return keras.ops.convert_to_tensor(self.rate)


def _unique(variables):
    seen, out = set(), []
    for variable in variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            out.append(variable)
    return out


class _State:
    """Read and write a fixed list of variables in one compiled call each."""

    def __init__(self, tf, variables):
        self.variables = variables

        @tf.function
        def read():
            return [tf.identity(v.value) for v in variables]

        @tf.function
        def write(values):
            for variable, value in zip(variables, values):
                variable.assign(value)

        self.read, self._write = read, write

    def write(self, values):
        self._write(list(values))

    def matches(self, variables):
        return len(variables) == len(self.variables) and all(
            a is b for a, b in zip(variables, self.variables)
        )


# ---------------------------------------------------------------------- the loop
class _Loop:
    """The traced range-test loop of one compiled model, cached on the model.

    Attributes:
        key: the objects the trace depends on (optimizer, innermost optimizer, its rate
            variable, the compiled loss/metrics, execution mode); compared by identity.
        rate: the variable the loop assigns each step's rate to: the innermost optimizer's
            own rate variable, or a private one read by an installed `RangeTestRate`.
        install: whether `RangeTestRate(rate)` must be installed for the run.
        chunk: ``chunk(iterator, rates, first, count, avg, best, beta, factor)``.
    """

    def __init__(self, key, rate, install, chunk):
        self.key, self.rate, self.install, self.chunk = key, rate, install, chunk
        self._state = None

    def matches(self, key):
        return len(key) == len(self.key) and all(a is b for a, b in zip(key, self.key))

    def state(self, tf, variables):
        """The `_State` of these variables (deduplicated), cached while the list is the same."""
        variables = _unique(variables)
        if self._state is None or not self._state.matches(variables):
            self._state = _State(tf, variables)
        return self._state


_CACHE_ATTR = "_keras_lr_finder_loop"


def compiled_loop(tf, model, inner):
    """Return the model's cached `_Loop`, tracing a new one when the model was recompiled."""
    learning_rate = inner._learning_rate
    variable = learning_rate if isinstance(learning_rate, keras.Variable) else None
    key = (
        model.optimizer, inner, variable,
        getattr(model, "_compile_loss", None), getattr(model, "_compile_metrics", None),
        bool(model.jit_compile), bool(model.run_eagerly),
    )
    loop = model.__dict__.get(_CACHE_ATTR)
    if loop is not None and loop.matches(key):
        return loop
    if variable is None:
        rate = keras.Variable(0.0, dtype="float32", trainable=False, name="lr_finder_rate")
    else:
        rate = variable
    loop = _Loop(key, rate, variable is None, _make_chunk_function(tf, model, rate))
    # Plain attribute, bypassing Keras/TF tracking: never saved, never in `model.variables`.
    object.__setattr__(model, _CACHE_ATTR, loop)
    return loop


def _make_chunk_function(tf, model, rate_variable):
    @tf.autograph.experimental.do_not_convert
    def one_step(data):
        model.reset_metrics()  # the logged "loss" is then this batch's loss alone
        logs = model.train_step(data)
        if not isinstance(logs, dict) or "loss" not in logs:
            raise ValueError(
                "find_lr reads the batch loss from `model.train_step(data)['loss']`; this "
                f"model's train_step returned {type(logs).__name__} without a 'loss' entry."
            )
        return tf.cast(tf.reshape(logs["loss"], []), tf.float64)

    if not model.run_eagerly:
        one_step = tf.function(one_step, jit_compile=bool(model.jit_compile), reduce_retracing=True)

    @tf.autograph.experimental.do_not_convert
    def chunk(iterator, rates, first, count, avg, best, beta, factor):
        def cond(j, raw, smooth, avg, best, code):
            return tf.logical_and(j < count, tf.equal(code, 0))

        def body(j, raw, smooth, avg, best, code):
            i = first + j
            data = iterator.get_next()
            rate_variable.assign(tf.cast(rates[i], rate_variable.dtype))
            loss = one_step(data)
            finite = tf.math.is_finite(loss)
            new_avg = beta * avg + (1.0 - beta) * loss
            value = new_avg / (1.0 - tf.pow(beta, tf.cast(i + 1, tf.float64)))
            new_best = tf.minimum(best, value)
            diverged = tf.logical_and(new_best > 0.0, value > factor * new_best)
            code = tf.where(finite, tf.where(diverged, 1, 0), 2)
            return (
                j + 1,
                raw.write(j, loss),
                smooth.write(j, value),
                tf.where(finite, new_avg, avg),
                tf.where(finite, new_best, best),
                code,
            )

        def empty():  # two objects: eager TensorArrays are written in place
            return tf.TensorArray(tf.float64, size=0, dynamic_size=True, element_shape=())

        _, raw, smooth, avg, best, code = tf.while_loop(
            cond, body, (tf.constant(0, tf.int32), empty(), empty(), avg, best, tf.constant(0)),
            maximum_iterations=count,
        )
        return raw.stack(), smooth.stack(), avg, best, code

    if not model.run_eagerly:
        chunk = tf.function(chunk, reduce_retracing=True)
    return chunk


def run_loop(tf, loop, dataset, rates, smoothing, stop_factor, steps_per_chunk):
    iterator = iter(dataset)
    num_steps = len(rates)
    constants = dict(
        rates=tf.constant(rates, tf.float64),
        beta=tf.constant(smoothing, tf.float64),
        factor=tf.constant(stop_factor, tf.float64),
    )
    avg = tf.constant(0.0, tf.float64)
    best = tf.constant(math.inf, tf.float64)
    losses, smoothed, reason, done = [], [], "completed", 0
    while done < num_steps:
        count = min(steps_per_chunk, num_steps - done)
        try:
            raw, smooth, avg, best, code = loop.chunk(
                iterator, first=tf.constant(done, tf.int32), count=tf.constant(count, tf.int32),
                avg=avg, best=best, **constants,
            )
        except tf.errors.OutOfRangeError:
            raise ValueError("Argument `x` yielded no batch: the data is empty.") from None
        raw, smooth, code = raw.numpy(), smooth.numpy(), int(code)
        if code == 2:  # the last step's loss was NaN/inf: not recorded
            raw, smooth = raw[:-1], smooth[:-1]
        losses.append(raw)
        smoothed.append(smooth)
        done += len(raw)
        if code:
            reason = _CODES[code]
            break
    return np.concatenate(losses), np.concatenate(smoothed), reason
