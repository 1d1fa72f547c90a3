"""End-to-end: clipping lets an LSTM train on the adding problem at a rate that explodes it."""

import keras
import numpy as np
import pytest

from keras_lr import guards
from keras_lr.data import BASELINE_MSE, adding_problem


def _train_lstm(clip):
    x, y = adding_problem(n=256, length=30, seed=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((30, 2)), keras.layers.LSTM(8), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(1.0, momentum=0.9)  # far too high without clipping
    if clip is not None:
        optimizer = guards.GradientGuard(optimizer, clip=clip)
    model.compile(optimizer=optimizer, loss="mse", jit_compile=False)
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    return history.history["loss"][-1], weights, optimizer


@pytest.mark.slow
def test_clipping_trains_an_lstm_where_the_unclipped_one_diverges():
    loss, _, _ = _train_lstm(None)
    assert not loss < 5 * BASELINE_MSE  # diverged (or NaN)
    for clip in (guards.GlobalNorm(1.0), guards.AdaptiveClip(0.05)):
        loss, weights, optimizer = _train_lstm(clip)
        assert loss < 2 * BASELINE_MSE, clip
        assert all(np.isfinite(w).all() for w in weights)
        assert optimizer.stats()["clipped_steps"] > 0
