"""The range-test loop on JAX: chunks of steps in one jitted `jax.lax.scan`.

The state is Keras's JAX training state, ``(trainable, non_trainable, optimizer, metrics)``
values, read from the variables once; the model's variables are not touched during the test
(the state flows through the compiled calls) and are written once at the end: the saved
values (``restore=True``) or the state reached. A chunk of same-shaped batches is stacked and
run by one jitted call: `jax.lax.scan` over ``model.train_step(state, batch)`` -- the
stateless step of Keras's JAX trainer -- with the metrics reset before each step, and a
`jax.lax.cond` that skips the steps after a non-finite loss (and the padding of a short
chunk: every chunk of one batch shape has the same length, so it compiles once). The host then smooths the losses
and applies the stop tests (`loop.Smoother`, float64 as on TensorFlow); when the curve
diverged inside a chunk and the state must be the one reached (``restore=False``), the chunk
is run again from its first state for just the kept steps (the same compiled call, exact:
every random state is part of the state). Without ``model.jit_compile`` (or with
``run_eagerly``) the steps run one by one, uncompiled, as ``model.fit`` runs them.

The rate enters the traced step as a value: for the run, the innermost optimizer's learning
rate is a `RangeTestRate` that returns the rate of the step being traced (a plain attribute
swap; the optimizer's rate variable, if any, stays in the state untouched and its schedule or
variable is put back afterwards).
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import keras
import numpy as np

from keras_lr.finder.loop import RangeTestRate, run_on_host

__all__ = ["Loop"]


class Loop:
    """The range-test loop of one compiled model on JAX (cached by `make_loop`)."""

    def __init__(self, model, inner, key):
        self.model, self.inner, self.key = model, inner, key
        self._rate = None  # the rate of the step being traced or run
        self.schedule = RangeTestRate(lambda: self._rate)
        self.compiled = bool(model.jit_compile) and not model.run_eagerly
        self._scan = jax.jit(self._scan_steps) if self.compiled else None
        self.state = None

    # ------------------------------------------------------------------ state
    def _groups(self):
        model = self.model
        return (model.trainable_variables, model.non_trainable_variables,
                model.optimizer.variables, model.metrics_variables)

    def save(self):
        self.state = tuple([v.value for v in group] for group in self._groups())
        return self.state  # JAX arrays are immutable, and nothing here donates them

    def finish(self, saved):
        state = saved if saved is not None else self.state
        for group, values in zip(self._groups(), state):
            for variable, value in zip(group, values):
                variable.assign(value)

    @contextlib.contextmanager
    def driving(self):
        original = self.inner._learning_rate
        try:
            # A plain swap: the setter would untrack a rate variable (and change the state).
            object.__setattr__(self.inner, "_learning_rate", self.schedule)
            yield
        finally:
            object.__setattr__(self.inner, "_learning_rate", original)
            self._rate = None

    # ------------------------------------------------------------------ steps
    def _step(self, state, batch, rate, metrics):
        trainable, non_trainable, optimizer, _ = state
        self._rate = rate
        try:
            logs, state = self.model.train_step(
                (trainable, non_trainable, optimizer, metrics), batch
            )
        finally:
            self._rate = None
        if not isinstance(logs, dict) or "loss" not in logs:
            raise ValueError(
                "find_lr reads the batch loss from `model.train_step(state, data)['loss']`; "
                f"this model's train_step returned {type(logs).__name__} without a 'loss' entry."
            )
        return tuple(state), jnp.reshape(logs["loss"], ()).astype("float32")

    def _scan_steps(self, state, batches, rates, count, metrics):
        def body(carry, xs):
            state, alive, j = carry
            batch, rate = xs
            active = jnp.logical_and(alive, j < count)

            def run(state):
                return self._step(state, batch, rate, metrics)

            def skip(state):
                return state, jnp.float32(jnp.nan)

            state, loss = jax.lax.cond(active, run, skip, state)
            alive = jnp.logical_and(active, jnp.isfinite(loss))
            return (state, alive, j + 1), loss

        (state, _, _), losses = jax.lax.scan(
            body, (state, jnp.bool_(True), jnp.int32(0)), (batches, rates)
        )
        return state, losses

    def chunk(self, batches, rates, first, smoother, exact):
        rates = np.asarray(rates, dtype="float32")
        metrics = self._metrics_reset()
        if not self.compiled:
            for j, batch in enumerate(batches):
                self.state, loss = self._step(self.state, batch, jnp.asarray(rates[j]), metrics)
                code = smoother.push(first + j, np.asarray(loss))
                if code:
                    return code
            return 0
        # One compiled length per batch shape: a short run is padded with its last batch,
        # whose steps the scan skips (`count`).
        count = len(batches)
        padded = [*batches, *[batches[-1]] * (self.length - count)]
        rates = np.concatenate([rates, np.full(self.length - count, rates[-1], "float32")])
        stacked = keras.tree.map_structure(lambda *leaves: np.stack(leaves), *padded)
        start = self.state
        state, losses = self._scan(start, stacked, rates, np.int32(count), metrics)
        losses = np.asarray(losses)
        for j in range(count):
            code = smoother.push(first + j, losses[j])
            if code:
                if code == 1 and exact and j + 1 < count:
                    # Diverged before the chunk's end: the state after step j, exactly.
                    state, _ = self._scan(start, stacked, rates, np.int32(j + 1), metrics)
                self.state = state
                return code
        self.state = state
        return 0

    def _metrics_reset(self):
        """The metrics' values after ``reset_metrics()`` (computed once per run)."""
        if getattr(self, "_reset_values", None) is None:
            variables = self.model.metrics_variables
            current = [v.value for v in variables]
            self.model.reset_metrics()
            self._reset_values = [v.value for v in variables]
            for variable, value in zip(variables, current):
                variable.assign(value)
        return self._reset_values

    def run(self, batches, rates, smoothing, stop_factor, steps_per_chunk, exact):
        self._reset_values = None
        self.length = min(steps_per_chunk, len(rates))
        return run_on_host(self, batches, rates, smoothing, stop_factor, steps_per_chunk, exact)
