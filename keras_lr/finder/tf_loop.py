"""The range-test loop on TensorFlow: chunks of steps in one `tf.function`.

A `tf.function` runs up to ``steps_per_chunk`` training steps in a `tf.while_loop`; each step
assigns the rate, resets the model's metrics and calls ``model.train_step(batch)``
(XLA-compiled when ``model.jit_compile``, like `model.fit`). The losses are collected in a
`TensorArray` and the smoothed loss and both stop tests are computed in the graph (float64, the
arithmetic of `loop.Smoother`), so the host reads the losses once per chunk and a stop is exact
to the step. The batches come from `finder.data` as a `tf.data` pipeline.

The rate reaches the optimizer without retracing anything of Keras's: if the innermost plain
optimizer holds its rate in a variable (it was built with a float), that variable is assigned
each step and its value put back at the end; if it holds a `LearningRateSchedule` (or a
callable), a private schedule that reads the finder's rate variable is installed with the
public ``optimizer.learning_rate`` setter and the original object is set back at the end.
"""

from __future__ import annotations

import contextlib
import math

import keras
import numpy as np
import tensorflow as tf

from keras_lr.finder.loop import CODES, RangeTestRate, unique_variables

__all__ = ["Loop"]


class Loop:
    """The traced range-test loop of one compiled model (cached on the model by `make_loop`).

    Attributes:
        key: the objects the trace depends on, compared by identity.
        rate: the variable each step's rate is assigned to: the innermost optimizer's own
            rate variable, or a private one read by an installed `RangeTestRate`.
        install: whether `RangeTestRate(rate)` is installed for the run.
    """

    def __init__(self, model, inner, key):
        self.model, self.inner, self.key = model, inner, key
        variable = key[2]
        self.install = variable is None
        self.rate = variable if variable is not None else keras.Variable(
            0.0, dtype="float32", trainable=False, name="lr_finder_rate"
        )
        self._chunk = _make_chunk_function(model, self.rate)
        self._state = None

    # ------------------------------------------------------------------ state
    def _variables(self):
        model = self.model
        return unique_variables(
            [*model.variables, *model.metrics_variables, *model.optimizer.variables]
        )

    def save(self):
        variables = self._variables()
        if self._state is None or not self._state.matches(variables):
            self._state = _State(variables)
        return self._state.read()  # on-device copies, bit for bit

    def finish(self, saved):
        if saved is not None:
            self._state.write(saved)

    @contextlib.contextmanager
    def driving(self):
        original = self.inner._learning_rate
        saved_rate = np.array(keras.ops.convert_to_numpy(self.rate), copy=True)
        try:
            if self.install:
                self.inner.learning_rate = RangeTestRate(self.rate)
            yield
        finally:
            if self.install:
                self.inner.learning_rate = original
            self.rate.assign(saved_rate)

    # ------------------------------------------------------------------ running
    def chunk(self, iterator, first, count, avg, best, constants):
        """One compiled call: up to `count` steps from step `first`."""
        return self._chunk(iterator, first=first, count=count, avg=avg, best=best, **constants)

    def run(self, batches, rates, smoothing, stop_factor, steps_per_chunk, exact):
        iterator = iter(batches.tf_dataset(tf))
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
                raw, smooth, avg, best, code = self.chunk(
                    iterator, tf.constant(done, tf.int32), tf.constant(count, tf.int32),
                    avg, best, constants,
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
                reason = CODES[code]
                break
        return np.concatenate(losses), np.concatenate(smoothed), reason


class _State:
    """Read and write a fixed list of variables in one compiled call each."""

    def __init__(self, variables):
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


def _make_chunk_function(model, rate_variable):
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
