"""End to end on the digits MLP: the valley suggestion lands among the rates that train well."""

from __future__ import annotations

import keras
import numpy as np
import pytest

pytest.importorskip("sklearn")

from keras_lr import data, models  # noqa: E402
from keras_lr.finder import find_lr  # noqa: E402

GRID = 10.0 ** np.arange(-4.0, -0.99, 0.5)  # 1e-4 .. 1e-1, half decades


def compiled_mlp(dataset, lr, seed):
    keras.utils.set_random_seed(seed)
    model = models.build("mlp", dataset.input_shape, dataset.num_classes, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.mark.slow
def test_valley_is_in_the_band_of_good_rates():
    dataset = data.load("digits", view="flat", seed=0)
    (x, y), (x_val, y_val) = dataset
    accuracy = []
    for lr in GRID:
        model = compiled_mlp(dataset, lr, seed=0)
        model.fit(x, y, batch_size=32, epochs=5, verbose=0)
        accuracy.append(model.evaluate(x_val, y_val, verbose=0)[1])
    accuracy = np.array(accuracy)
    good = GRID[accuracy >= accuracy.max() - 0.02]
    assert accuracy.argmax() < len(GRID) - 1, "the grid must reach past the best rate"
    assert accuracy[-1] < accuracy.max() - 0.02, "the grid must reach past the good band"

    valleys = []
    for seed in range(3):
        model = compiled_mlp(dataset, 1e-3, seed)
        result = find_lr(model, x, y, batch_size=32, num_steps=100, seed=seed)
        valleys.append(result.suggestion("valley"))
    valley = float(np.median(valleys))
    assert good.min() <= valley <= good.max(), (valleys, dict(zip(GRID, accuracy)))
