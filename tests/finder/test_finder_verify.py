"""`check_verifiable`: what `verify_rates` can train, decided without training."""

from __future__ import annotations

import keras
import pytest

from keras_lr import models
from keras_lr.finder.verify import check_verifiable


def test_check_verifiable_accepts_reference_models_and_leaves_them_alone():
    for family, shape in (("mlp", (64,)), ("cnn", (8, 8, 1)), ("lstm", (8, 8))):
        model = models.build(family, shape, 10, seed=0)
        model.compile("adam", "sparse_categorical_crossentropy")
        before = [w.copy() for w in model.get_weights()]
        check_verifiable(model)
        assert all((a == b).all() for a, b in zip(before, model.get_weights(), strict=True))
        assert not model.optimizer.built


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
