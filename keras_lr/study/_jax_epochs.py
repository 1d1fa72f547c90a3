"""The study's compiled epoch on JAX: Keras's stateless step, scanned or mapped over replicas.

The state is ``(trainable, non_trainable, optimizer)`` values, read from the variables at the
start of an epoch and written back at its end. One step is ``model.stateless_call`` under
``jax.value_and_grad`` and ``optimizer.stateless_apply``, the run's rate of the step put into
the state's ``lr_scale`` slot first (the value the wrapper's variable would hold). For MLPs and
RNNs a whole epoch is one jitted ``lax.scan`` over the batch permutation; a CNN's epoch is
jitted blocks of `BLOCK_STEPS` unrolled steps, dispatched without waiting (on XLA:CPU a
convolution inside ``lax.scan`` runs about ten times slower than at top level, see
`keras_lr.finder.jax_loop`), the losses read once per epoch. The data are arguments of the
compiled functions, not constants in them. Each group's functions are traced when its
`Epochs` is built and compiled by background threads (`_COMPILER`; XLA releases the GIL
while compiling), once per distinct module (`_EXECUTABLES`): the study's engine trains two
groups at once on JAX (`keras_lr.study.engine.group_threads`), or one at a time building the
next before running the current one (`keras_lr.study.runner.Runner.prepare`), so that a
group compiles while another trains. (Tracing in that thread too measured no faster: 233 s
against 225 s for the default study.)

`Replicas` is the same step mapped with ``jax.vmap`` over a leading replica axis of stacked
states and a rate per replica: N runs of one group and seed, compiled once, each replica
computing exactly what its own run computes (nothing mixes replicas; one that diverges only
fills its own state with NaN).
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import threading

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Epochs", "Replicas"]


BLOCK_STEPS = 2
"""Most steps of a CNN's jitted block (the largest divisor of the epoch's steps up to it).
Measured on the digits CNN, 8 epochs, one run: 0.35 s per run with single steps, 0.30 s with
blocks of 2, 4 or 11 (dispatch, then compute, bound the steps); a block's compilation grows
with its length (Prodigy's group: 1.5 s, 2.0 s, 4.1 s, 10 s for 1, 2, 4, 11)."""
_COMPILER = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="keras-lr-xla")
"""Two background threads compiling the groups' functions in the order they were traced (XLA
releases the GIL while it compiles, so a group compiles while the runs before it train, and a
group's epoch and evaluation compile at once)."""


_EXECUTABLES: collections.OrderedDict = collections.OrderedDict()
"""Compilations by the text of the lowered module, the `MAX_EXECUTABLES` latest: groups whose
functions lower to the same module (the evaluation of one model under several optimizers,
the epoch of two groups that differ in their number of epochs only) share one executable.
Measured on the quick plan: 32 groups lower 31 distinct epochs and 12 distinct evaluations."""
MAX_EXECUTABLES = 256
_LOCK = threading.Lock()


def _compiled(lowered) -> concurrent.futures.Future:
    """The future executable of `lowered`, compiled once per distinct module (a failed
    compilation is tried again)."""
    key = hashlib.sha256(lowered.as_text().encode()).hexdigest()
    with _LOCK:
        future = _EXECUTABLES.get(key)
        if future is None or (future.done() and future.exception() is not None):
            future = _EXECUTABLES[key] = _COMPILER.submit(lowered.compile)
        _EXECUTABLES.move_to_end(key)
        while len(_EXECUTABLES) > MAX_EXECUTABLES:
            _EXECUTABLES.popitem(last=False)
    return future


class _Both:
    """The epoch's and the evaluation's futures, read as one: ``result()`` waits for both."""

    def __init__(self, train, evaluate):
        self._futures = (train, evaluate)

    def result(self):
        return tuple(f.result() for f in self._futures)


def _index(variables, variable) -> int:
    for i, v in enumerate(variables):
        if v is variable:
            return i
    raise ValueError(f"variable {variable.path!r} is not one of the optimizer's variables")


class Epochs:
    """The compiled epoch and evaluation of one study group on JAX.

    Args:
        model: the built model; its variables hold the state between epochs.
        optimizer: the built study optimizer.
        scale: the wrapper's ``lr_scale`` variable (its slot takes the step's rate).
        estimate: the variable d of Prodigy or DAdaptAdam, recorded after each step, or None.
        tensors: ``(x_train, y_train, x_val, y_val)`` arrays.
        steps: training steps per epoch.
        batch_size: samples per step.
        loss_and_score: ``f(y, pred) -> (mean loss, mean score)`` in `keras.ops`.
        family: the model family; ``"cnn"`` runs jitted blocks of steps, not a scan.

    The functions are traced here and compiled in a background thread (`_COMPILER`); the first
    epoch or evaluation waits for them. A runner that builds the next group's `Epochs` before
    the current group's runs (`keras_lr.study.runner.Runner.prepare`) thereby compiles it while
    those runs train.
    """

    def __init__(self, model, optimizer, scale, estimate, tensors, steps, batch_size,
                 loss_and_score, family):
        self.model, self.optimizer = model, optimizer
        self.tracks_estimate = estimate is not None
        self.scanned = family != "cnn"
        variables = list(optimizer.variables)
        at_scale = _index(variables, scale)
        at_estimate = None if estimate is None else _index(variables, estimate)
        # The data are arguments of the compiled functions, not constants folded into them
        # (which made XLA compile each group's epoch slower).
        self._train_data = tuple(jnp.asarray(t) for t in tensors[:2])
        self._val_data = tuple(jnp.asarray(t) for t in tensors[2:])

        def step(state, data, idx, rate):
            trainable, non_trainable, opt_values = state
            x, y = jnp.take(data[0], idx, axis=0), jnp.take(data[1], idx, axis=0)

            def loss_fn(trainable, non_trainable):
                pred, non_trainable = model.stateless_call(trainable, non_trainable, x,
                                                           training=True)
                return loss_and_score(y, pred)[0], non_trainable

            (loss, non_trainable), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                trainable, non_trainable)
            opt_values = list(opt_values)
            opt_values[at_scale] = jnp.asarray(rate, opt_values[at_scale].dtype)
            trainable, opt_values = optimizer.stateless_apply(opt_values, grads, trainable)
            d = (jnp.float32(0.0) if at_estimate is None
                 else jnp.asarray(opt_values[at_estimate], jnp.float32))
            return (list(trainable), list(non_trainable), list(opt_values)), (
                jnp.asarray(loss, jnp.float32), d)

        def epoch(state, data, perm, rates):
            return jax.lax.scan(lambda s, inputs: step(s, data, *inputs), state, (perm, rates))

        def block(state, data, perm, rates):  # len(rates) steps, unrolled (no control flow)
            losses, d = [], []
            for j in range(rates.shape[0]):
                state, (loss, value) = step(state, data, perm[j], rates[j])
                losses.append(loss)
                d.append(value)
            return state, (jnp.stack(losses), jnp.stack(d))

        def evaluate(trainable, non_trainable, data):
            pred, _ = model.stateless_call(trainable, non_trainable, data[0], training=False)
            return loss_and_score(data[1], pred)

        self._epoch, self._block, self._evaluate_fn = epoch, block, evaluate
        # a CNN's epoch as jitted blocks of `block_steps` unrolled steps (a divisor of steps)
        self.block_steps = max(k for k in range(1, BLOCK_STEPS + 1) if steps % k == 0)
        self._compile(steps, batch_size)

    def _compile(self, steps, batch_size):
        """Trace the epoch (or the block) and the evaluation for these shapes here; compile
        them in the background thread."""
        spec = jax.ShapeDtypeStruct
        state = self.read()
        i32, f32 = jnp.int32, jnp.float32
        if self.scanned:
            train, k = self._epoch, steps
        else:
            train, k = self._block, self.block_steps
        train = jax.jit(train).lower(state, self._train_data, spec((k, batch_size), i32),
                                     spec((k,), f32))
        evaluate = jax.jit(self._evaluate_fn).lower(state[0], state[1], self._val_data)
        self._compiled = _Both(_compiled(train), _compiled(evaluate))

    # ------------------------------------------------------------------ state
    def _groups(self):
        model = self.model
        return model.trainable_variables, model.non_trainable_variables, self.optimizer.variables

    def read(self):
        """The state held by the variables."""
        return tuple([v.value for v in group] for group in self._groups())

    def write(self, state):
        for group, values in zip(self._groups(), state, strict=True):
            for variable, value in zip(group, values, strict=True):
                variable.assign(value)

    def _train(self, state, perm, rates):
        """Every step of one epoch from `state`: ``(state, losses, d)`` on the device."""
        data, train = self._train_data, self._compiled.result()[0]
        if self.scanned:
            state, (losses, d) = train(state, data, perm, rates)
            return state, losses, d
        losses, d = [], []
        k = self.block_steps
        for j in range(0, perm.shape[-2], k):  # dispatched without waiting; read once below
            state, (loss, value) = train(state, data, perm[j:j + k], rates[j:j + k])
            losses.append(loss)
            d.append(value)
        return state, jnp.concatenate(losses, -1), jnp.concatenate(d, -1)

    def run(self, perm: np.ndarray, rates: np.ndarray):
        """Train one epoch: batch ``j`` is ``x_train[perm[j]]`` at rate ``rates[j]``.

        Returns:
            ``(losses, d)``: the float64 loss of every step, and the estimate after every step
            (None without one).
        """
        state, losses, d = self._train(self.read(), jnp.asarray(perm, jnp.int32),
                                       jnp.asarray(rates, jnp.float32))
        self.write(state)
        d = np.asarray(d, np.float64) if self.tracks_estimate else None
        return np.asarray(losses, np.float64), d

    def evaluate(self):
        """``(loss, score)`` of the model's current variables on the validation set."""
        trainable, non_trainable, _ = self.read()
        evaluate = self._compiled.result()[1]
        return tuple(float(v) for v in evaluate(trainable, non_trainable, self._val_data))


class Replicas(Epochs):
    """`Epochs` mapped over N replicas of one group: stacked states, a rate per replica.

    The state lives here, not in the variables: `load` stacks the states the variables hold
    for each replica; `run` takes rates ``(steps, N)`` and returns losses ``(steps, N)``;
    `evaluate` scores every replica, ``((N,), (N,))``. A replica that diverges fills only
    its own state with NaN.
    """

    def _compile(self, steps, batch_size):
        """Jitted lazily: the number of replicas is known at `load`."""
        del steps, batch_size
        train = jax.jit(jax.vmap(self._epoch if self.scanned else self._block,
                                 in_axes=(0, None, None, 1)))
        evaluate = jax.jit(jax.vmap(self._evaluate_fn, in_axes=(0, 0, None)))
        self._compiled = concurrent.futures.Future()
        self._compiled.set_result((train, evaluate))
        self.state = None

    def load(self, states):
        """Stack per-replica states (each as `read` returns it) into the replicated state."""
        self.state = jax.tree.map(lambda *values: jnp.stack(values), *states)

    def run(self, perm: np.ndarray, rates: np.ndarray):
        """One epoch of every replica; rates and the returned losses are ``(steps, N)``."""
        self.state, losses, d = self._train(self.state, jnp.asarray(perm, jnp.int32),
                                            jnp.asarray(rates, jnp.float32))
        d = np.asarray(d, np.float64).T if self.tracks_estimate else None
        return np.asarray(losses, np.float64).T, d

    def evaluate(self):
        trainable, non_trainable, _ = self.state
        evaluate = self._compiled.result()[1]
        return tuple(np.asarray(v, np.float64)
                     for v in evaluate(trainable, non_trainable, self._val_data))
