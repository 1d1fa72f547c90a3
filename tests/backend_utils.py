"""What the backend under test can do, for parametrizing tests over it.

`JIT_MODES` are the `jit_compile` values a test of training should try on this backend:
TensorFlow (XLA on and off) and JAX (jitted and eager) have both; on torch `jit_compile=True`
means `torch.compile`, whose first compile takes minutes per model on a 2-core machine, so the
suite runs torch eagerly (Keras's default there).
"""

import keras

BACKEND = keras.backend.backend()

JIT_MODES = {"tensorflow": (False, True), "jax": (False, True), "torch": (False,)}[BACKEND]

__all__ = ["BACKEND", "JIT_MODES"]
