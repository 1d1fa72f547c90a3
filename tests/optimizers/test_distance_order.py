"""`after`: values made to depend on a tensor on JAX, bit for bit unchanged, and what for.

D-Adaptation's dot product reads v and s before their updates overwrite them. On JAX, where
Keras donates the optimizer state to the compiled step, XLA copied both slots of every
variable each step to keep the old values alive (10 whole-tensor copies on the digits MLP)
until the updates were made to depend on the dot product.
"""

import collections
import re

import keras
import numpy as np
import pytest
from backend_utils import BACKEND
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_lr import models
from keras_lr.optimizers import DAdaptAdam
from keras_lr.optimizers._distance import after

jax_only = pytest.mark.skipif(BACKEND != "jax", reason="XLA's copies of donated buffers: JAX")
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)


def _bits(value, dtype):
    return np.asarray(keras.ops.convert_to_numpy(value), dtype).tobytes()


@pytest.mark.skipif(BACKEND == "jax", reason="JAX adds the dependency")
def test_after_hands_the_tensors_back_elsewhere():
    token, a, b = (keras.ops.convert_to_tensor(np.float32(x)) for x in (1.0, 0.9, 0.5))
    result = after(token, a, b)
    assert result[0] is a and result[1] is b


@jax_only
@settings(max_examples=60, deadline=None)
@given(token=FLOATS, values=st.lists(FLOATS, min_size=1, max_size=3))
def test_after_leaves_each_value_bit_for_bit(token, values):
    values = [np.float32(v) for v in values]
    result = after(keras.ops.convert_to_tensor(np.float32(token)),
                   *(keras.ops.convert_to_tensor(v) for v in values))
    assert [_bits(r, "float32") for r in result] == [v.tobytes() for v in values]


@jax_only
@pytest.mark.parametrize("value", [0.0, -0.0, 0.999, -2.5, 6e-8, np.inf, np.nan])
@pytest.mark.parametrize("token", [3e38, np.inf, -np.inf, np.nan, -0.0])
def test_after_keeps_a_half_precision_value(value, token):
    half = np.float16(value)
    (result,) = after(keras.ops.convert_to_tensor(np.float32(token)),
                      keras.ops.convert_to_tensor(half))
    assert keras.backend.standardize_dtype(result.dtype) == "float16"
    assert _bits(result, "float16") == half.tobytes()


def _tensor_copies(optimizer):
    import jax

    model = models.mlp(input_shape=(64,), num_classes=10)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  jit_compile=True)
    x, y = np.zeros((32, 64), "float32"), np.zeros((32,), "int32")
    model.fit(x, y, epochs=1, verbose=0)
    state = tuple([v.value for v in variables] for variables in (
        model.trainable_variables, model.non_trainable_variables,
        model.optimizer.variables, model.metrics_variables))
    text = jax.jit(model.train_step, donate_argnums=0).lower(state, (x, y)).compile().as_text()
    entry = text[text.index("ENTRY"):]
    return collections.Counter(re.findall(r"= (f32\[\d[\d,]*\])\S* copy\(", entry))


@jax_only
def test_dadapt_copies_no_slot_on_jax():
    adam = _tensor_copies(keras.optimizers.Adam())
    dadapt = _tensor_copies(DAdaptAdam())
    assert adam, "the pattern no longer finds the copies Adam makes (two kernels)"
    assert not dadapt - adam, f"copies Adam does not make: {dadapt - adam}"
