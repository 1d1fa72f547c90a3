"""What the backend under test can do, for parametrizing tests over it.

`JIT_MODES` are the `jit_compile` values a test of training should try on this backend:
TensorFlow (XLA on and off) and JAX (jitted and eager) have both; on torch `jit_compile=True`
means `torch.compile`, whose first compile takes minutes per model on a 2-core machine, so the
suite runs torch eagerly (Keras's default there).
"""

import keras

BACKEND = keras.backend.backend()

JIT_MODES = {"tensorflow": (False, True), "jax": (False, True), "torch": (False,)}[BACKEND]

__all__ = ["BACKEND", "FIT_JIT", "JIT_MODES", "as_computed", "assert_same", "compiled_apply",
           "schedule_atol"]


def schedule_atol(peak, atol=0.0):
    """The absolute tolerance for a schedule's values whose largest is `peak`, on this backend.

    TensorFlow and torch keep int64 steps and compute a schedule in float64 before the final
    float32 cast. JAX without ``jax_enable_x64`` (its default, which Keras keeps) computes in
    float32, where an interpolation ``start + (end - start) * pct`` is exact to an ulp of its
    operands, not of a small result (measured: 6.4e-9 absolute near a OneCycle minimum of 2e-6,
    peak 0.5, an ulp of the peak being 3e-8). On JAX the tolerance is two float32 ulps of
    `peak`; elsewhere `atol`.
    """
    import numpy as np

    if BACKEND == "jax":
        return max(atol, 2.0 * float(np.finfo(np.float32).eps) * abs(float(peak)))
    return atol


def as_computed(values):
    """Reference values as the backend holds a schedule's float64 arguments.

    On JAX without ``jax_enable_x64`` a float64 argument (a knot of `PiecewiseLinear`) is
    stored as float32, so the schedule returns exactly ``float32(value)`` there.
    """
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    return values.astype(np.float32).astype(np.float64) if BACKEND == "jax" else values


def assert_same(actual, expected, rtol=1e-6, atol=1e-7):
    """Bit-identical on TensorFlow; within float32 rounding on JAX and torch.

    Two computations that are the same expression compile to the same kernels on TensorFlow,
    so keras-lr's tests hold them to the last bit there. XLA under `jax.jit` fuses and
    reassociates the product of a rate and a scale with the update (measured: up to 2.2e-7
    relative after 3 Adam steps), and torch's fused `_foreach` kernels round differently from
    the per-variable path, so the other backends are held to float32 rounding.
    """
    import numpy as np

    for a, e in zip(actual, expected, strict=True):
        if BACKEND == "tensorflow":
            np.testing.assert_array_equal(a, e)
        else:
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def compiled_apply(optimizer, variables, jit):
    """``step(grads)``: apply gradients to `variables` the way a compiled train step does.

    TensorFlow: `optimizer.apply` in a `tf.function` (XLA with `jit`). JAX: Keras's trainer
    path, `optimizer.stateless_apply` on the current values (in `jax.jit` with `jit`), then
    the new values assigned. torch: `optimizer.apply` eagerly (see `JIT_MODES`).
    """
    from keras import ops

    if BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=jit)
        def tf_step(grads):
            optimizer.apply(grads, variables)

        return tf_step
    if BACKEND == "jax":
        import jax

        pure = jax.jit(optimizer.stateless_apply) if jit else optimizer.stateless_apply

        def jax_step(grads):
            if not optimizer.built:
                optimizer.build(variables)
            new_variables, new_state = pure(
                [v.value for v in optimizer.variables],
                [ops.convert_to_tensor(g) for g in grads],
                [v.value for v in variables],
            )
            for v, value in zip(variables, new_variables, strict=True):
                v.assign(value)
            for v, value in zip(optimizer.variables, new_state, strict=True):
                v.assign(value)

        return jax_step

    def torch_step(grads):
        optimizer.apply([ops.convert_to_tensor(g) for g in grads], variables)

    return torch_step


#: `jit_compile` for tests that train with `fit` in one mode only: compiled where the backend
#: compiles quickly (XLA, `jax.jit`), eager on torch (see `JIT_MODES`).
FIT_JIT = BACKEND != "torch"
