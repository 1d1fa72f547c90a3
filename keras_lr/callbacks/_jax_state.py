"""Reading a model's variables during `fit` without a JAX state sync, for `DivergenceGuard`.

During an epoch, Keras's JAX trainer keeps the training state outside the variables: the first
step of an epoch gathers every value into lists of arrays and empties the variables (a purged
variable reads as its *initializer*, silently), and each step replaces the arrays; the latest
ones are in ``model._jax_state``, a dict of four lists in the order of
``model.trainable_variables``, ``model.non_trainable_variables``, ``model.optimizer.variables``
and ``model.metrics_variables``. Reading ``callback.model`` calls ``model.jax_state_sync()``,
which assigns every array back to its variable and marks the state synced, so that the next
step gathers (and empties) every variable again (Keras 3.15, ``keras/src/backend/jax/trainer.py``
and ``keras/src/callbacks/callback.py``). A callback that only reads ``self.model`` every 10
steps cost 1.27x per step on the reference CNN (``benchmarks/divergence_snapshot.py``).

`StateReader` reads the arrays of ``model._jax_state`` instead, by each variable's position in
those lists, recorded at the start of each epoch (`index`). It reads the variables themselves
whenever they hold the current values: on TensorFlow and PyTorch (no ``_jax_state``), outside
`fit`, between epochs and after any callback synced. When a variable is not in the state (or the
lists changed length) it syncs and reads the variables: never a wrong value, at worst Keras's
own cost. Writes (a restore, a rate change, a metrics reset) must go through
``callback.model``: after its sync the next step gathers the assigned values.

The arrays are the trainer's own buffers, which the next step donates: anything kept beyond
the callback must be a copy (`Copier.take` copies on the device; the guard turns what `read`
returns into Python numbers at once).
"""

from __future__ import annotations

import keras

__all__ = ["StateReader"]

# The keys of `model._jax_state`, in the order of `_lists`.
_GROUPS = ("trainable_variables", "non_trainable_variables", "optimizer_variables",
           "metrics_variables")


def _lists(model):
    """The variable lists whose values the JAX trainer gathers, in its order."""
    return (list(model.trainable_variables), list(model.non_trainable_variables),
            list(model.optimizer.variables), list(model.metrics_variables))


class StateReader:
    """The current values of a model's variables during `fit`, read without a JAX state sync.

    Args:
        model: the `keras.Model` being trained (not a callback's syncing ``model`` property:
            pass the model it returns, or the callback's ``_model``).

    Example:

    ```python
    reader = StateReader(callback.model)     # at on_train_begin
    reader.index()                            # at each on_epoch_begin
    steps = int(reader.read(model.optimizer.iterations))   # in on_train_batch_end
    ```
    """

    def __init__(self, model):
        self.model = model
        self._where = None  # id(variable) -> (list, position) in the trainer's state
        self._sizes = None
        self._plans = {}

    def index(self):
        """Record where each variable sits in the trainer's state lists.

        Call while those lists are the ones the next step gathers: at the start of an epoch.
        Does nothing on the backends without a JAX trainer.
        """
        if not hasattr(self.model, "jax_state_sync"):
            return
        lists = _lists(self.model)
        self._sizes = tuple(len(group) for group in lists)
        # A variable listed twice gets the last position, whose value `jax_state_sync` assigns last.
        self._where = {id(v): (g, i) for g, group in enumerate(lists) for i, v in enumerate(group)}
        self._plans = {}

    def _pending(self):
        """The trainer's state lists when the variables do not hold them, else None."""
        state = getattr(self.model, "_jax_state", None)
        if not state or getattr(self.model, "_jax_state_synced", True):
            return None
        return tuple(state.get(key) or () for key in _GROUPS)

    def values(self, variables):
        """The current values of `variables`, from the trainer's state, or None.

        None means that the variables themselves hold the current values (read them): the
        backend is not JAX, the state was synced, or a variable is not in the state, in which
        case this syncs first.
        """
        lists = self._pending()
        if lists is None:
            return None
        key = tuple(map(id, variables))
        if key not in self._plans:
            where = self._where or {}
            self._plans[key] = (None if not all(k in where for k in key)
                                else [where[k] for k in key])
        plan = self._plans[key]
        if plan is None or tuple(len(group) for group in lists) != self._sizes:
            self.model.jax_state_sync()
            return None
        return [lists[g][i] for g, i in plan]

    def read(self, variable):
        """The current value of `variable` in NumPy (it may share the trainer's buffer, which the
        next step donates: convert it to a Python number at once)."""
        values = self.values([variable])
        return keras.ops.convert_to_numpy(variable if values is None else values[0])
