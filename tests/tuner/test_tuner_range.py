"""`finder_range`: a search range centred (in log space) on the range test's suggestion."""

from __future__ import annotations

import keras
import numpy as np
import pytest

pytest.importorskip("keras_tuner")
pytest.importorskip("sklearn")  # the digits data

from keras_lr import data, find_lr, models  # noqa: E402
from keras_lr.tuner import finder_range  # noqa: E402


def compiled(ds):
    model = models.mlp(ds.input_shape, ds.num_classes, hidden=(32,), seed=0)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


def test_range_is_centred_on_the_suggestion_and_leaves_the_model(clear_session):
    ds = data.load("digits", view="flat", limit=400)
    model = compiled(ds)
    before = [np.array(w) for w in model.get_weights()]
    kwargs = dict(num_steps=40, start_lr=1e-5, end_lr=10.0, seed=0)
    low, high = finder_range(model, ds.x_train, ds.y_train, decades=0.5, **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    suggestion = find_lr(compiled(ds), ds.x_train, ds.y_train, **kwargs).suggestion("valley")
    assert (low, high) == pytest.approx((suggestion / 10**0.5, suggestion * 10**0.5), rel=1e-6)
    assert 1e-5 < low < suggestion < high


def test_bad_width_is_refused_before_any_training():
    with pytest.raises(ValueError, match=r"^Argument `decades` must be > 0. Received: decades=0.0$"):
        finder_range(None, None, decades=0)
