"""The range-test loop on JAX: jitted blocks of steps, dispatched without waiting.

The state is Keras's JAX training state, ``(trainable, non_trainable, optimizer, metrics)``
values, read from the variables once; the model's variables are not touched during the test
(the state flows through the compiled calls) and are written once at the end: the saved
values (``restore=True``) or the state reached. A chunk of same-shaped batches runs as jitted
blocks of ``model.steps_per_execution`` steps (one by default), each
``model.train_step(state, batch)`` -- the stateless step of Keras's JAX trainer -- with the
metrics reset before each step. The block is unrolled the way Keras's own JAX trainer unrolls
``steps_per_execution``, and a step after a non-finite loss (or on the padding of a chunk's last
block: one block shape per batch shape, so it compiles once)
keeps the previous state by a select, not a `jax.lax.cond`: on XLA:CPU a convolution inside
any control flow (`lax.scan`, `lax.cond`, `fori_loop`) runs about ten times slower than at top
level (the digits CNN: 13-28 ms a step in a scanned chunk, 1.4 ms in the blocks, 1.4 ms in
``model.fit``). The blocks are dispatched asynchronously and the host reads a chunk's losses
once, at its end; it then smooths them and applies the stop tests (`loop.Smoother`, float64
as on TensorFlow). When the curve stopped inside a chunk and the state must be the one reached
(``restore=False``), the chunk is run again from its first state for just the kept steps (the
same compiled blocks, exact: every random state is part of the state). Without
``model.jit_compile`` (or with ``run_eagerly``) the steps run one by one, uncompiled, as
``model.fit`` runs them.

The rate enters the traced step as a value: for the run, the innermost optimizer's learning
rate is a `RangeTestRate` that returns the rate of the step being traced (a plain attribute
swap; the optimizer's rate variable, if any, stays in the state untouched and its schedule or
variable is put back afterwards).
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
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
        self._block = jax.jit(self._block_steps) if self.compiled else None
        self.per_block = max(1, int(getattr(model, "steps_per_execution", 1) or 1))
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

    def _block_steps(self, state, alive, batches, rates, index, count, metrics):
        """`len(rates)` steps from `state`; step ``index + i`` runs only while alive and < count."""
        losses = []
        for i, batch in enumerate(batches):
            active = jnp.logical_and(alive, index + i < count)
            stepped, loss = self._step(state, batch, rates[i], metrics)
            state = jax.tree.map(functools.partial(jnp.where, active), stepped, state)
            loss = jnp.where(active, loss, jnp.float32(jnp.nan))
            alive = jnp.logical_and(active, jnp.isfinite(loss))
            losses.append(loss)
        return state, alive, jnp.stack(losses)

    def _run_blocks(self, state, blocks, count, metrics):
        """Dispatch every block of a padded chunk; the losses stay on the device."""
        alive, losses = jnp.bool_(True), []
        for index, (batches, rates) in blocks:
            state, alive, block_losses = self._block(
                state, alive, batches, rates, np.int32(index), np.int32(count), metrics
            )
            losses.append(block_losses)
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
        # One compiled block per batch shape: the last block of a chunk is padded with the
        # chunk's last batch, whose steps are not kept.
        count, size = len(batches), self.per_block
        total = -(-count // size) * size
        padded = [*batches, *[batches[-1]] * (total - count)]
        rates = np.concatenate([rates, np.full(total - count, rates[-1], "float32")])
        blocks = [(i, (padded[i : i + size], rates[i : i + size])) for i in range(0, total, size)]
        start = self.state
        state, losses = self._run_blocks(start, blocks, count, metrics)
        losses = np.concatenate([np.asarray(block) for block in losses])
        for j in range(count):
            code = smoother.push(first + j, losses[j])
            if code:
                if code == 1 and exact and j + 1 < count:
                    # Stopped before the chunk's end: the state after step j, exactly.
                    state, _ = self._run_blocks(start, blocks[: j // size + 1], j + 1, metrics)
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
        return run_on_host(self, batches, rates, smoothing, stop_factor, steps_per_chunk, exact)
