"""`check_verifiable`: what `verify_rates` can train, decided without training."""

from __future__ import annotations

import keras
import pytest

from keras_lr import models
from keras_lr.finder.verify import check_verifiable, verify_rates

SWEEP = "keras_lr.sweep replicates models with TensorFlow ops (until issue 15 part 2)"


@pytest.mark.backends("jax", "torch", reason="the refusal of the backends keras_lr.sweep lacks")
def test_verify_refuses_other_backends_in_one_line():
    model = models.mlp((64,), 10, hidden=(16,))
    model.compile("adam", "sparse_categorical_crossentropy")
    backend = keras.backend.backend()
    for call in (lambda: check_verifiable(model),
                 lambda: verify_rates(model, None, None, 1e-2)):
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message
        assert "needs the TensorFlow backend (KERAS_BACKEND=tensorflow)" in message
        assert f"on {backend} " in message and "without --verify" in message


@pytest.mark.backends("tensorflow", reason=SWEEP)
def test_check_verifiable_accepts_reference_models_and_leaves_them_alone():
    for family, shape in (("mlp", (64,)), ("cnn", (8, 8, 1)), ("lstm", (8, 8))):
        model = models.build(family, shape, 10, seed=0)
        model.compile("adam", "sparse_categorical_crossentropy")
        before = [w.copy() for w in model.get_weights()]
        check_verifiable(model)
        assert all((a == b).all() for a, b in zip(before, model.get_weights(), strict=True))
        assert not model.optimizer.built


@pytest.mark.backends("tensorflow", reason=SWEEP)
def test_check_verifiable_refuses_what_verify_rates_refuses():
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    functional.compile("adam", "mse")
    with pytest.raises(ValueError, match="Sequential"):
        check_verifiable(functional)
    normed = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2),
                               keras.layers.LayerNormalization()])
    normed.compile("adam", "mse")
    with pytest.raises(ValueError, match="LayerNormalization"):
        check_verifiable(normed)
    with pytest.raises(TypeError, match="compiled"):
        check_verifiable(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    wrapped = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    wrapped.compile(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()), "mse")
    with pytest.raises(TypeError, match="wrappers"):
        check_verifiable(wrapped)
