"""Device-side snapshots of training state, for `DivergenceGuard`.

A snapshot is a list of copies of the variables' values, kept where the variables live (the
accelerator's memory, or host memory on a CPU backend), never copied to NumPy. Taking one is a
single compiled call per backend that copies every value and tells whether the floating-point
ones are all finite; the same call reads the scalars the caller asks for (the monitored
metric's sums, the step count), so that a check costs one host transfer, not one per scalar:

* TensorFlow: a `tf.function` of ``tf.identity`` reads. A read shares the variable's buffer;
  the next in-place update of the variable copies it first (TensorFlow's copy-on-write for
  resource variables), so the copy costs one buffer copy per variable, done on the device.
* JAX: a `jax.jit` of ``jnp.copy`` over the arrays (fresh buffers, so the train step's donation
  of its state buffers never deletes a snapshot). Mid-epoch the trainer holds the values outside
  the variables: callers pass them (`StateReader.values`, ``_jax_state.py``) rather than
  syncing the state back to the variables through ``callback.model``.
* PyTorch: ``clone`` under ``torch.no_grad`` (eager; one kernel per variable).

Restoring assigns copies (a snapshot may be restored more than once).

Reference:
    Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways", 2022, section 5.1
    (restart from a checkpoint before a loss spike).
"""

from __future__ import annotations

import keras

__all__ = ["Copier", "Snapshot"]


class Snapshot:
    """Copies of the values of `variables`, taken after `step` optimizer steps."""

    __slots__ = ("step", "values")

    def __init__(self, values, step):
        self.values = values
        self.step = step


def _tensorflow_copier(variables, tested):
    import tensorflow as tf

    def copier(scalars):
        @tf.function(autograph=False)
        def copy():
            values = [tf.identity(v.value) for v in variables]
            flags = [tf.reduce_all(tf.math.is_finite(values[i])) for i in tested]
            finite = tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)
            # float64 holds an int64 step count exactly up to 2**53
            numbers = [tf.cast(finite, tf.float64)]
            numbers += [tf.cast(tf.reshape(s.value, ()), tf.float64) for s in scalars]
            return values, tf.stack(numbers)

        def run(values=None):  # the variables always hold the values on TensorFlow
            copies, numbers = copy()
            return copies, numbers.numpy()

        return run

    def restore(values):
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)

    return copier, restore


def _jax_copier(variables, tested):
    import jax
    import jax.numpy as jnp

    @jax.jit
    def _copy(arrays):
        copies = [jnp.copy(a) for a in arrays]
        flags = [jnp.all(jnp.isfinite(arrays[i])) for i in tested]
        return copies, jnp.all(jnp.stack(flags)) if flags else jnp.bool_(True)

    def copier(scalars):
        def copy(values=None):
            if values is None:
                values = [v.value for v in variables] + [s.value for s in scalars]
            copies, finite = _copy(list(values[:len(variables)]))
            # one transfer for the flag and every scalar (JAX has no float64 by default)
            finite, numbers = jax.device_get((finite, list(values[len(variables):])))
            return copies, [finite, *numbers]

        return copy

    def restore(values):
        copies, _ = _copy(list(values))
        for variable, value in zip(variables, copies, strict=True):
            variable.assign(value)

    return copier, restore


def _torch_copier(variables, tested):
    import torch

    def copier(scalars):
        def copy(values=None):  # the variables always hold the values on torch
            with torch.no_grad():
                copies = [v.value.detach().clone() for v in variables]
                flags = [torch.isfinite(copies[i]).all() for i in tested]
                finite = torch.stack(flags).all() if flags else torch.tensor(True)
                numbers = [finite.to(torch.float64).reshape(())]
                numbers += [s.value.detach().to(torch.float64).reshape(()) for s in scalars]
                return copies, torch.stack(numbers).cpu().numpy()

        return copy

    def restore(values):
        with torch.no_grad():
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value.clone())

    return copier, restore


_COPIERS = {
    "tensorflow": _tensorflow_copier,
    "jax": _jax_copier,
    "torch": _torch_copier,
}


class Copier:
    """Takes and restores snapshots of a fixed list of variables on the current backend.

    Args:
        variables: the `keras.Variable`s to copy, in a fixed order.
        untested: ids of variables allowed to be non-finite in a good state.
    """

    def __init__(self, variables, untested=()):
        backend = keras.backend.backend()
        if backend not in _COPIERS:
            raise NotImplementedError(
                f"DivergenceGuard supports the TensorFlow, JAX and PyTorch backends, not "
                f"{backend!r}."
            )
        self.variables = list(variables)
        self._key = ([id(v) for v in self.variables], frozenset(untested))
        untested = set(untested)
        tested = [
            i for i, v in enumerate(self.variables)
            if id(v) not in untested and "float" in str(v.dtype)
        ]
        self._copier, self._restore = _COPIERS[backend](self.variables, tested)
        self._copies = {}  # ids of the scalars read with the copy -> its copy function

    def serves(self, variables, untested=()):
        """Whether this copier was built for exactly these variables."""
        return self._key == ([id(v) for v in variables], frozenset(untested))

    def take(self, scalars=(), values=None):
        """Copy the variables and read `scalars`, in one compiled call and one host transfer.

        Args:
            scalars: scalar `keras.Variable`s to read with the copy (a metric's sums, the step
                count); their values as of the copy.
            values: the current values of ``variables + scalars`` where the variables do not
                hold them (JAX mid-epoch: `StateReader.values`); None reads the variables.

        Returns:
            ``(copies, finite, numbers)``: copies of the variables' values (on the device),
            whether all tested ones are finite, and the scalars' values as Python floats
            (integer counters exactly: they travel as float64, or on JAX as themselves).
        """
        key = tuple(map(id, scalars))
        if key not in self._copies:
            self._copies[key] = self._copier(list(scalars))
        copies, numbers = self._copies[key](values)
        return copies, bool(numbers[0]), [float(n) for n in numbers[1:]]

    def restore(self, snapshot):
        """Assign the snapshot's values to the variables."""
        self._restore(snapshot.values)
