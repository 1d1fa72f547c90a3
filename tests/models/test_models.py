"""Tests for keras_lr.models: shapes, layer names, seeding, heads, errors, serialization."""

import math
import random

import keras
import numpy as np
import pytest

from keras_lr import data, models


def _kernels(model):
    return {w.path: np.array(w) for w in model.weights if "kernel" in w.path}


# ----------------------------------------------------------------- structure


@pytest.mark.parametrize(
    "family, input_shape, names",
    [
        ("mlp", (64,), ["dense_0", "dense_1", "output"]),
        ("mlp", (8, 8, 1), ["flatten", "dense_0", "dense_1", "output"]),
        ("cnn", (8, 8, 1), ["conv_0", "pool_0", "conv_1", "pool_1", "flatten", "dense_0", "output"]),
        ("lstm", (8, 8), ["lstm_0", "output"]),
        ("gru", (8, 8), ["gru_0", "output"]),
        ("simple_rnn", (8, 8), ["simple_rnn_0", "output"]),
    ],
)
def test_layer_names_and_output_shape(family, input_shape, names):
    model = models.build(family, input_shape, 10)
    assert isinstance(model, keras.Sequential)
    assert model.name == family
    assert [layer.name for layer in model.layers] == names
    assert tuple(model.input_shape) == (None,) + input_shape
    assert tuple(model.output_shape) == (None, 10)
    assert model.get_layer("output").activation is keras.activations.softmax
    assert not model.compiled  # uncompiled
    assert model.weights[0].path.startswith(f"{family}/")


def test_mlp_hidden_units_and_dropout():
    model = models.mlp((5,), 3, hidden=(7, 4, 2), dropout=0.25, activation="tanh")
    names = [layer.name for layer in model.layers]
    assert names == ["dense_0", "dropout_0", "dense_1", "dropout_1", "dense_2", "dropout_2", "output"]
    assert [model.get_layer(f"dense_{i}").units for i in range(3)] == [7, 4, 2]
    assert model.get_layer("dense_1").activation is keras.activations.tanh
    assert model.get_layer("dropout_1").rate == 0.25
    assert models.mlp((5,), 3, hidden=6).get_layer("dense_0").units == 6  # an int is one layer


@pytest.mark.parametrize("input_shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3), (5, 7, 2)])
def test_cnn_pooling_shapes(input_shape):
    filters = (4, 6, 8)
    model = models.cnn(input_shape, 10, filters=filters, dense=16)
    h, w, _ = input_shape
    for i, count in enumerate(filters):
        h, w = math.ceil(h / 2), math.ceil(w / 2)  # 2x2 max pooling, padding "same"
        assert tuple(model.get_layer(f"conv_{i}").output.shape)[-1] == count
        assert tuple(model.get_layer(f"pool_{i}").output.shape) == (None, h, w, count)
    assert tuple(model.get_layer("flatten").output.shape) == (None, h * w * filters[-1])
    assert model.get_layer("dense_0").units == 16


def test_rnn_stacking_and_sequences():
    model = models.rnn((None, 3), 4, cell="gru", units=5, layers=3)
    assert [layer.name for layer in model.layers] == ["gru_0", "gru_1", "gru_2", "output"]
    assert [layer.return_sequences for layer in model.layers[:3]] == [True, True, False]
    assert all(isinstance(layer, keras.layers.GRU) for layer in model.layers[:3])
    assert model.predict(np.zeros((2, 11, 3), "float32"), verbose=0).shape == (2, 4)
    assert isinstance(models.build("simple_rnn", (4, 2), 3).layers[0], keras.layers.SimpleRNN)
    assert isinstance(models.build("lstm", (4, 2), 3).layers[0], keras.layers.LSTM)


@pytest.mark.parametrize("family", models.FAMILIES)
def test_regression_head(family):
    shape = (6, 6, 1) if family == "cnn" else (6, 2)
    model = models.build(family, shape, None)
    head = model.get_layer("output")
    assert head.units == 1 and head.activation is keras.activations.linear
    assert tuple(model.output_shape) == (None, 1)


def test_softmax_outputs_are_probabilities():
    model = models.mlp((4,), 3, hidden=(8,))
    probs = model.predict(np.random.default_rng(0).normal(size=(5, 4)).astype("float32"), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert (probs > 0).all()


def test_views_match_data():
    assert set(models.VIEWS) == set(models.FAMILIES)
    for family in models.FAMILIES:
        assert models.VIEWS[family] == data.view_for(family)
        ds = data.load("digits", view=family, limit=40)
        model = models.build(family, ds.input_shape, ds.num_classes, **(
            {"hidden": (4,)} if family == "mlp" else
            {"filters": (2,), "dense": 4} if family == "cnn" else {"units": 3}
        ))
        assert model.predict(ds.x_val, verbose=0).shape == (len(ds.x_val), 10)


# ----------------------------------------------------------------- seeding


@pytest.mark.parametrize("family", models.FAMILIES)
def test_same_seed_gives_identical_weights(family):
    shape = (8, 8, 1) if family == "cnn" else (8, 8)
    a = models.build(family, shape, 10, seed=3)
    b = models.build(family, shape, 10, seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert wa.tobytes() == wb.tobytes()
    c = models.build(family, shape, 10, seed=4)
    for path, kernel in _kernels(a).items():
        assert not np.array_equal(kernel, _kernels(c)[path]), path


def test_layers_get_distinct_seeds():
    model = models.mlp((16,), 16, hidden=(16, 16))  # three kernels of the same shape
    kernels = list(_kernels(model).values())
    assert len(kernels) == 3
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.array_equal(kernels[i], kernels[j])
    lstm = models.rnn((4, 4), 2, units=4, layers=2)
    k = _kernels(lstm)
    assert not np.array_equal(
        k["lstm/lstm_1/lstm_cell/kernel"], k["lstm/lstm_1/lstm_cell/recurrent_kernel"]
    )


def test_seeding_ignores_and_keeps_global_random_state():
    keras.utils.set_random_seed(123)
    a = models.build("lstm", (5, 3), 4, units=6)
    keras.utils.set_random_seed(456)
    state_np, state_py = np.random.get_state(), random.getstate()
    b = models.build("lstm", (5, 3), 4, units=6)
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))
    after = np.random.get_state()
    assert after[0] == state_np[0] and np.array_equal(after[1], state_np[1])
    assert random.getstate() == state_py


def test_initializers_glorot_and_orthogonal():
    model = models.rnn((3, 5), 2, cell="simple", units=7, seed=1)
    kernel = np.array(model.get_layer("simple_rnn_0").cell.kernel)
    bound = math.sqrt(6.0 / (5 + 7))  # Glorot uniform limit, fan_in + fan_out
    assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.5 * bound
    recurrent = np.array(model.get_layer("simple_rnn_0").cell.recurrent_kernel)
    np.testing.assert_allclose(recurrent.T @ recurrent, np.eye(7), atol=1e-5)
    dense = np.array(models.mlp((30,), 10, hidden=(20,)).get_layer("dense_0").kernel)
    assert np.abs(dense).max() <= math.sqrt(6.0 / 50)
    for w in models.mlp((30,), 10, hidden=(20,)).weights:
        if "bias" in w.path:
            assert not np.array(w).any()


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: models.cnn((64,), 10), ValueError, "Argument `input_shape` must have the form"),
        (lambda: models.cnn((8, 8), 10), ValueError, "view='image'"),
        (lambda: models.rnn((8, 8, 1), 10), ValueError, "(timesteps, features)"),
        (lambda: models.rnn((64,), 10), ValueError, "view='sequence'"),
        (lambda: models.mlp((), 10), ValueError, "Argument `input_shape`"),
        (lambda: models.mlp((0,), 10), ValueError, "positive integers"),
        (lambda: models.mlp("64", 10), TypeError, "Argument `input_shape`"),
        (lambda: models.cnn((8, None, 1), 10), ValueError, "positive integers"),
        (lambda: models.rnn((8, 8), 10, cell="rnn"), ValueError, "Argument `cell` must be one of"),
        (lambda: models.rnn((8, 8), 10, units=0), ValueError, "Received: units=0"),
        (lambda: models.rnn((8, 8), 10, layers=0), ValueError, "Received: layers=0"),
        (lambda: models.mlp((4,), 10, hidden=()), ValueError, "Argument `hidden` must not be empty"),
        (lambda: models.mlp((4,), 10, hidden=(8, -1)), ValueError, "Received: hidden[1]=-1"),
        (lambda: models.cnn((8, 8, 1), 10, filters=(0,)), ValueError, "Received: filters[0]=0"),
        (lambda: models.cnn((8, 8, 1), 10, dense=0), ValueError, "Received: dense=0"),
        (lambda: models.mlp((4,), 1), ValueError, "Argument `num_classes` must be >= 2"),
        (lambda: models.mlp((4,), 2.5), TypeError, "num_classes"),
        (lambda: models.mlp((4,), 3, dropout=1.0), ValueError, "Argument `dropout` must be < 1"),
        (lambda: models.mlp((4,), 3, dropout=-0.1), ValueError, "Argument `dropout` must be >= 0"),
        (lambda: models.mlp((4,), 3, activation="nope"), ValueError, "Argument `activation`"),
        (lambda: models.mlp((4,), 3, seed=-1), ValueError, "Argument `seed` must be >= 0"),
        (lambda: models.build("transformer", (4,), 3), ValueError, "Argument `family`"),
        (lambda: models.build("lstm", (4, 2), 3, cell="gru"), TypeError, "cell"),
    ],
)
def test_bad_arguments(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


# ----------------------------------------------------------------- training and saving


def test_save_and_load_round_trip(tmp_path):
    model = models.build("cnn", (8, 8, 1), 10, filters=(2, 3), dense=4, seed=5)
    path = tmp_path / "cnn.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = np.random.default_rng(0).random((3, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["mlp", "cnn", "lstm"])
def test_trains_under_xla(family):
    if keras.backend.backend() == "torch":
        # torch.compile caches Keras's train step (one code object for every model); a second
        # model's shapes make dynamo recompile with dynamic sizes, and torch 2.13's Inductor
        # then fails on the CNN ("cannot determine truth value of Relational: 1 < s8") after
        # the MLP in the same process. Each model here starts from a fresh dynamo cache.
        import torch

        torch._dynamo.reset()
    ds = data.load("digits", view=family, limit=96)
    small = {"mlp": {"hidden": (16,)}, "cnn": {"filters": (4,), "dense": 8}}.get(
        family, {"units": 8}
    )
    model = models.build(family, ds.input_shape, ds.num_classes, **small)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", jit_compile=True)
    history = model.fit(ds.x_train, ds.y_train, batch_size=32, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
