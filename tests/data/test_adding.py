"""Tests for the adding problem generator and its `load("adding")` entry."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_lr import data


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 50), length=st.integers(2, 60), seed=st.integers(0, 2**32))
def test_adding_structure(n, length, seed):
    x, y = data.adding_problem(n=n, length=length, seed=seed)
    assert x.shape == (n, length, 2) and y.shape == (n,)
    assert x.dtype == np.float32 and y.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    assert set(np.unique(markers)) <= {0.0, 1.0}
    assert np.array_equal(markers.sum(axis=1), np.full(n, 2.0))
    half = length // 2
    assert np.array_equal(markers[:, :half].sum(axis=1), np.ones(n))  # one in each half
    assert np.array_equal(markers[:, half:].sum(axis=1), np.ones(n))
    assert values.min() >= 0.0 and values.max() < 1.0
    marked = np.where(markers == 1.0, values.astype(np.float64), 0.0).sum(axis=1)
    np.testing.assert_allclose(y, marked, rtol=0, atol=1e-6)


def test_adding_is_seeded():
    a = data.adding_problem(n=20, length=30, seed=5)
    b = data.adding_problem(n=20, length=30, seed=5)
    c = data.adding_problem(n=20, length=30, seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_adding_baseline_mse_and_marker_spread():
    x, y = data.adding_problem(n=20000, length=20, seed=0)
    assert abs(np.mean((y - 1.0) ** 2) - data.BASELINE_MSE) < 0.01
    positions = np.argmax(x[..., 1], axis=1)  # the first marker: uniform over the first half
    assert np.array_equal(np.unique(positions), np.arange(10))


def test_load_adding():
    ds = data.load("adding", n=50, length=12, seed=1)
    assert ds.task == "regression" and ds.num_classes is None and ds.view == "sequence"
    assert ds.x_train.shape == (40, 12, 2) and ds.x_val.shape == (10, 12, 2)
    assert ds.y_train.dtype == np.float32 and ds.input_shape == (12, 2)
    flat = data.load("adding", view="mlp", n=50, length=12, seed=1)
    assert flat.input_shape == (24,)
    np.testing.assert_array_equal(flat.x_train, ds.x_train.reshape(40, 24))
    for x, y in ds:
        np.testing.assert_allclose(y, (x[..., 0] * x[..., 1]).sum(axis=1), atol=1e-6)
    default = data.load("adding", limit=30)
    assert default.input_shape == (100, 2) and len(default.x_train) + len(default.x_val) == 30
    assert len(data.load("adding", validation_split=0.0).x_train) == 2000


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n": 0}, "Argument `n` must be >= 1"), ({"length": 1}, "Argument `length` must be >= 2")],
)
def test_adding_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.adding_problem(**kwargs)
