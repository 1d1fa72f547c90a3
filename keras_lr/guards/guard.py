"""`GradientGuard`: clip gradients and skip non-finite steps, in graph, with saved counters.

One train step through the guard::

    norm = global_norm(grads)                         # recorded in `guard.grad_norm`
    if skip_nonfinite and not all(isfinite(grads)):   # an `ops.cond` (torch: a Python if)
        skipped_steps += 1; consecutive_skips += 1    # variables, slots, iterations untouched
    else:
        grads, clipped = clip(grads, variables, norm) # optional rule from `keras_lr.guards`
        inner_optimizer.apply(grads)
        clipped_steps += clipped; consecutive_skips = 0

Two things keep the step cheap (each graph op costs a few microseconds on a small model
without XLA, whatever its size):

* the finiteness test reads the norm first: a sum of squares is finite only when every
  gradient is, so the element-wise test runs (in a nested `cond`) only on the rare step
  whose norm is NaN or inf, which also catches a float32 overflow of finite gradients;
* a stateless rule is computed in the same pass as the norm (`ClipRule.norm_and_clip`),
  before the finiteness test; only a stateful rule (`AutoClip`) runs inside the finite branch.

A skipped step leaves every trainable variable, every optimizer slot and the inner
optimizer's iteration count exactly as they were (optax's `apply_if_finite`); zeroing the
gradients instead would still move Adam's moments. Non-trainable state that the forward pass
updates before the optimizer runs is not covered: a NaN batch makes BatchNormalization's
moving mean and variance NaN even though the step is skipped. Add
`keras_lr.callbacks.DivergenceGuard`, whose snapshots hold all of `model.weights`, to roll
that state back.

`max_consecutive_skips`: when `consecutive_skips` reaches it, training must stop rather than
skip forever. Where that error comes from:

* TensorFlow graph or eager execution without XLA: an assert op in the step raises
  `tf.errors.InvalidArgumentError` (message starting "GradientGuard skipped") from the very
  step that reached the limit. No extra host synchronisation: the error travels with the step.
* Under XLA (`jit_compile=True`, Keras's "auto" default on GPUs) assert ops are compiled away,
  so the guard keeps skipping (nothing is lost: each skipped step changes nothing but the
  counters) and the error is raised on the host by `GradientGuard.check()`, which the keras-lr
  callbacks `LRMonitor` and `DivergenceGuard` call at their cadence (every epoch, or every
  batch with ``every="batch"``); it raises `NonFiniteGradientsError`.
* JAX: as under XLA (nothing raises inside a jitted step): `check()` raises on the host.
* torch: the step runs eagerly and branches on the flag with a Python ``if`` (what
  ``ops.cond`` does there, without building an op per call), so the step that reaches the
  limit raises `NonFiniteGradientsError` itself.

On JAX, which allows no state change inside a conditional, both outcomes of a step are
computed in their own `keras.StatelessScope` and the values of the taken one are assigned
(the pattern of `keras.optimizers.LossScaleOptimizer`).

The counters (`skipped_steps`, `clipped_steps`, `consecutive_skips`, `grad_norm`) are
optimizer variables: saved in checkpoints and `model.save()`, read only when asked
(`guard.stats()` or `LRMonitor`).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_lr._validation import check_int, fail
from keras_lr.guards import clipping
from keras_lr.optimizers.base import LRWrapper, unwrap

__all__ = ["GradientGuard", "NonFiniteGradientsError", "find_guard"]


class NonFiniteGradientsError(RuntimeError):
    """Raised on the host when a guard has skipped `max_consecutive_skips` steps in a row."""


def find_guard(optimizer):
    """Return the first `GradientGuard` in an optimizer chain (through LossScaleOptimizer)."""
    for opt in unwrap(optimizer):
        if isinstance(opt, GradientGuard):
            return opt
    return None


def _is_sparse(g):
    """True for a `tf.IndexedSlices` (an `Embedding`'s gradient on TensorFlow).

    Not a duck test on `indices` and `values` alone: every `torch.Tensor` has those methods.
    """
    return all(hasattr(g, name) for name in ("indices", "values", "dense_shape"))


def _values(g):
    """The dense values of a gradient (the `values` of an IndexedSlices)."""
    return g.values if _is_sparse(g) else g


def _global_norm(grads):
    """The L2 norm over all gradients (sparse ones made dense: repeated rows add up first)."""
    return clipping.global_norm([_densify(g) for g in grads])


def _densify(g):
    """A sparse gradient (`tf.IndexedSlices`, from an `Embedding`) as a dense tensor.

    `keras.ops.convert_to_tensor` returns an IndexedSlices unchanged on TensorFlow, and the
    rules would then see its rows one by one: an index repeated in a batch must add up first
    (torch's `clip_grad_norm_` sees the summed row too).
    """
    if g is not None and _is_sparse(g):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return tf.convert_to_tensor(g)
        return ops.convert_to_tensor(g)
    return g


@keras.saving.register_keras_serializable(package="keras_lr")
class GradientGuard(LRWrapper):
    """Optimizer wrapper that clips gradients and skips steps with non-finite gradients.

    Args:
        optimizer: the `keras.optimizers.Optimizer` to protect (a plain Keras optimizer or a
            keras-lr wrapper such as `LayerwiseLR`). Put a `LossScaleOptimizer` outside.
        clip: a clipping rule from `keras_lr.guards` (`GlobalNorm`, `ValueClip`,
            `PerLayerNorm`, `AdaptiveClip`, `AutoClip`), a string alias ("agc", "autoclip")
            or None for no clipping. The rule is copied: guards never share rule state.
        skip_nonfinite: bool, skip steps whose gradients contain NaN or inf (default True).
        max_consecutive_skips: int >= 1 or None; stop training with an error after this many
            skipped steps in a row (see the module docstring for where the error is raised).
        name: optional name.

    Attributes:
        skipped_steps, clipped_steps, consecutive_skips: int64 counter variables.
        grad_norm: float32 variable, the global gradient norm of the last step (before
            clipping; NaN or inf on a skipped step).

    Example:

    ```python
    opt = keras_lr.guards.GradientGuard(
        keras.optimizers.Adam(1e-3), clip=keras_lr.guards.AdaptiveClip(0.01),
        max_consecutive_skips=10)
    model.compile(optimizer=opt, loss="mse")
    model.fit(x, y, callbacks=[keras_lr.callbacks.LRMonitor()])   # logs grad_norm, counts
    ```
    """

    def __init__(
        self,
        optimizer,
        clip=None,
        skip_nonfinite=True,
        max_consecutive_skips=None,
        name=None,
        **kwargs,
    ):
        rule = clipping.get(clip)
        if not isinstance(skip_nonfinite, bool):
            fail("skip_nonfinite", "must be a bool", skip_nonfinite, TypeError)
        if max_consecutive_skips is not None:
            max_consecutive_skips = check_int(
                "max_consecutive_skips", max_consecutive_skips, minimum=1
            )
            if not skip_nonfinite:
                fail("max_consecutive_skips", "needs skip_nonfinite=True",
                     max_consecutive_skips)
        super().__init__(optimizer, name=name, **kwargs)
        self.clip = rule
        self.skip_nonfinite = skip_nonfinite
        self.max_consecutive_skips = max_consecutive_skips

    # ------------------------------------------------------------------ state
    def build(self, var_list):
        super().build(var_list)

        def counter(name, dtype="int"):
            return self.add_variable((), initializer="zeros", dtype=dtype, name=name,
                                     aggregation="only_first_replica")

        self.skipped_steps = counter("skipped_steps")
        self.clipped_steps = counter("clipped_steps")
        self.consecutive_skips = counter("consecutive_skips")
        self.grad_norm = counter("grad_norm", "float32")
        if self.clip is not None:
            self.clip.build(self, var_list)

    def stats(self):
        """The counters as Python numbers (reads variables: call from a callback)."""
        if not self.built:
            return {"grad_norm": float("nan"), "clipped_steps": 0, "skipped_steps": 0,
                    "consecutive_skips": 0}
        read = ops.convert_to_numpy
        return {
            "grad_norm": float(read(self.grad_norm)),
            "clipped_steps": int(read(self.clipped_steps)),
            "skipped_steps": int(read(self.skipped_steps)),
            "consecutive_skips": int(read(self.consecutive_skips)),
        }

    def check(self):
        """Raise `NonFiniteGradientsError` when `max_consecutive_skips` has been reached.

        One small host read; the keras-lr callbacks call it at their cadence.
        """
        if self.max_consecutive_skips is None or not self.built:
            return
        run = int(ops.convert_to_numpy(self.consecutive_skips))
        if run >= self.max_consecutive_skips:
            raise NonFiniteGradientsError(self._message(run))

    def _message(self, run):
        return (
            f"GradientGuard skipped {run} consecutive steps with non-finite gradients "
            f"(max_consecutive_skips={self.max_consecutive_skips}); the model and optimizer "
            "still hold the last finite state. Lower the learning rate, check the data for "
            "NaN/inf, or use keras_lr.callbacks.DivergenceGuard."
        )

    # ------------------------------------------------------------------ the step
    def check_finite(self, grads):
        flags = [ops.all(ops.isfinite(_values(g))) for g in grads if g is not None]
        if not flags:
            return ops.convert_to_tensor(True)
        return ops.all(ops.stack(flags))

    def _apply(self, grads, trainable_variables=None):
        grads = list(grads)
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        backend = keras.backend.backend()
        if backend == "tensorflow":
            self._tf_apply(grads, trainable_variables)
        elif backend == "jax":
            self._jax_apply(grads, trainable_variables)
        else:
            self._torch_apply(grads, trainable_variables)
            return
        self._assert_not_stuck()

    def all_finite(self, grads, norm):
        """True when every gradient is finite, given their global `norm` (exact).

        A finite sum of squares proves every element finite; only when it is NaN or inf (a
        non-finite gradient, or finite ones whose squares overflow float32) does the
        element-wise `check_finite` run.
        """
        return ops.cond(ops.isfinite(norm), lambda: ops.convert_to_tensor(True),
                        lambda: self.check_finite(grads))

    def _norm_and_clip(self, grads, trainable_variables):
        """``(norm, clipped_grads, clipped)``; the last two None unless the rule is stateless."""
        if self.clip is None or self.clip.stateful:
            return _global_norm(grads), None, None
        dense = [_densify(g) for g in grads]
        return self.clip.norm_and_clip(dense, trainable_variables)

    def _finite_step(self, grads, trainable_variables, clipped_grads=None, clipped=None):
        if self.clip is not None:
            if clipped_grads is None:
                grads = [_densify(g) for g in grads]
                grads, clipped = self.clip.clip(grads, trainable_variables, self.grad_norm.value)
            else:
                grads = clipped_grads
            self.clipped_steps.assign_add(ops.cast(clipped, self.clipped_steps.dtype))
        self.inner_optimizer.apply(grads, trainable_variables)
        self.consecutive_skips.assign(ops.zeros((), self.consecutive_skips.dtype))

    def _skip_step(self):
        self.skipped_steps.assign_add(ops.ones((), self.skipped_steps.dtype))
        self.consecutive_skips.assign_add(ops.ones((), self.consecutive_skips.dtype))

    def _common_apply(self, grads, trainable_variables):
        norm, clipped_grads, clipped = self._norm_and_clip(grads, trainable_variables)
        self.grad_norm.assign(norm)

        def finite_step():
            self._finite_step(grads, trainable_variables, clipped_grads, clipped)

        if not self.skip_nonfinite:
            finite_step()
            return
        ops.cond(self.all_finite(grads, norm), finite_step, self._skip_step)

    def _torch_apply(self, grads, trainable_variables):
        """torch: the step runs eagerly, so the branch is a Python ``if`` on the host flag.

        This is what ``ops.cond`` does on torch too, after building an `Operation` (and
        inspecting its signature) on every call: measured, the two conds were a fifth of the
        guard's cost on a small MLP. The limit is checked on a skipped step only, the one
        step that can reach it (a finite step resets the run to 0).
        """
        norm, clipped_grads, clipped = self._norm_and_clip(grads, trainable_variables)
        self.grad_norm.assign(norm)
        if not self.skip_nonfinite or bool(ops.isfinite(norm)) or bool(self.check_finite(grads)):
            self._finite_step(grads, trainable_variables, clipped_grads, clipped)
            return
        self._skip_step()
        self.check()

    def _jax_apply(self, grads, trainable_variables):
        """JAX: no state change inside a conditional (`LossScaleOptimizer`'s pattern).

        Each branch runs in its own `keras.StatelessScope` over the current values of every
        trainable and optimizer variable and returns their new values; only the selected
        values are assigned. Under `stateless_apply` (what `fit` calls) the current values
        and the assignments are those of the enclosing stateless scope.
        """
        state = list(trainable_variables) + list(self.variables)
        norm, clipped_grads, clipped = self._norm_and_clip(grads, trainable_variables)

        def branch(step):
            def run():
                mapping = [(v, v.value) for v in state]
                with keras.StatelessScope(state_mapping=mapping) as scope:
                    self.grad_norm.assign(norm)
                    step()
                return [scope.get_current_value(v) for v in state]

            return run

        finite = branch(lambda: self._finite_step(
            grads, trainable_variables, clipped_grads, clipped))
        if self.skip_nonfinite:
            values = ops.cond(self.all_finite(grads, norm), finite, branch(self._skip_step))
        else:
            values = finite()
        for variable, value in zip(state, values, strict=True):
            variable.assign(value)

    def _tf_apply(self, grads, trainable_variables):
        """tf.distribute-aware apply, the pattern of `LossScaleOptimizer._tf_apply`."""
        import tensorflow as tf

        if tf.distribute.in_cross_replica_context():
            raise ValueError("apply() must be called in a replica context.")
        if not self.skip_nonfinite or tf.__internal__.distribute.strategy_supports_no_merge_call():
            self._common_apply(grads, trainable_variables)
            return

        def cross_replica(distribution, grads, trainable_variables):
            def record(grads):
                norm = _global_norm(grads)
                self.grad_norm.assign(norm)
                return self.all_finite(grads, norm)

            finite = distribution.experimental_local_results(
                distribution.extended.call_for_each_replica(record, args=(grads,))
            )[0]

            def apply_fn():
                distribution.extended.call_for_each_replica(
                    self._finite_step, args=(grads, trainable_variables)
                )

            # The cond runs in cross-replica context: the inner apply calls merge_call.
            ops.cond(finite, apply_fn, self._skip_step)

        tf.distribute.get_replica_context().merge_call(
            cross_replica, args=(grads, trainable_variables)
        )

    def _assert_not_stuck(self):
        if self.max_consecutive_skips is None or keras.backend.backend() == "jax":
            return  # JAX: nothing can raise inside a jitted step; `check()` raises on the host
        import tensorflow as tf

        # Compiled away under XLA; then `check()` raises on the host (see module docstring).
        tf.debugging.Assert(
            tf.less(self.consecutive_skips.value, self.max_consecutive_skips),
            [self._message(self.max_consecutive_skips)],
        )

    # ------------------------------------------------------------------ serialization
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "clip": None if self.clip is None
                else keras.saving.serialize_keras_object(self.clip),
                "skip_nonfinite": self.skip_nonfinite,
                "max_consecutive_skips": self.max_consecutive_skips,
            }
        )
        return config
