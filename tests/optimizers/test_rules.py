"""Rule helpers: layer_decay, discriminative, gate_multipliers, Paths."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_lr.optimizers import (
    LayerwiseLR,
    Paths,
    discriminative,
    gate_multipliers,
    layer_decay,
)

RNG = np.random.default_rng(0)
XS = RNG.normal(size=(32, 5, 3)).astype("float32")
YS = RNG.normal(size=(32, 1)).astype("float32")


def stack(n=4):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((3,))]
    for i in range(n):
        layers.append(keras.layers.Dense(3, name=f"d{i}"))
        if i == 1:
            layers.append(keras.layers.Dropout(0.1, name="drop"))  # no weights: skipped
    return keras.Sequential(layers, name="stack")


# ---------------------------------------------------------------------- layer_decay
def test_layer_decay_matches_timm_formula():
    model = stack(4)
    rules = layer_decay(model, decay=0.5)
    assert [layer.name for layer, _ in rules] == ["d0", "d1", "d2", "d3"]
    np.testing.assert_allclose([v for _, v in rules], [0.125, 0.25, 0.5, 1.0])
    floored = layer_decay(model, decay=0.5, min_multiplier=0.3)
    np.testing.assert_allclose([v for _, v in floored], [0.3, 0.3, 0.5, 1.0])


def test_layer_decay_groups_and_describe():
    model = stack(3)
    rules = layer_decay(model, decay=0.1, layers=[[model.get_layer("d0"), "d1/"], "d2/"])
    rows = LayerwiseLR(keras.optimizers.Adam(), rules).bind(model).describe(print_fn=None)
    np.testing.assert_allclose([r.multiplier for r in rows], [0.1] * 4 + [1.0] * 2)


@settings(max_examples=25, deadline=None)
@given(
    decay=st.floats(0.01, 1.0),
    n=st.integers(1, 12),
    floor=st.floats(0.0, 0.5),
)
def test_layer_decay_properties(decay, n, floor):
    layers = [f"l{i}/" for i in range(n)]
    values = [v for _, v in layer_decay(None, decay, floor, layers=layers)]
    assert values[-1] == max(1.0, floor)
    assert all(v >= floor for v in values)
    assert all(a <= b for a, b in zip(values, values[1:]))
    for a, b in zip(values, values[1:]):
        if a > floor:
            assert a == pytest.approx(b * decay)


def test_layer_decay_validation():
    with pytest.raises(ValueError, match=r"`decay` must be > 0"):
        layer_decay(stack(), decay=0.0)
    with pytest.raises(ValueError, match=r"`min_multiplier` must be >= 0"):
        layer_decay(stack(), min_multiplier=-1)
    with pytest.raises(TypeError, match="`layers` list"):
        layer_decay(keras.layers.Dense(2))


# ---------------------------------------------------------------------- discriminative
def even_mults(start, stop, n):
    """fastai.torch_core.even_mults."""
    step = (stop / start) ** (1 / (n - 1))
    return np.array([start * (step**i) for i in range(n)])


def test_discriminative_matches_fastai_even_mults():
    values = [v for _, v in discriminative(stack(4), 0.01, 1.0)]
    np.testing.assert_allclose(values, even_mults(0.01, 1.0, 4), rtol=1e-12)
    assert [v for _, v in discriminative(stack(1), 0.01, 1.0)] == [1.0]


@settings(max_examples=25, deadline=None)
@given(low=st.floats(1e-4, 10), high=st.floats(1e-4, 10), n=st.integers(2, 10))
def test_discriminative_is_geometric(low, high, n):
    values = [v for _, v in discriminative(None, low, high, layers=[str(i) for i in range(n)])]
    assert values[0] == pytest.approx(low) and values[-1] == pytest.approx(high)
    ratios = np.array(values[1:]) / np.array(values[:-1])
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)


def test_discriminative_validation():
    with pytest.raises(ValueError, match=r"`low` must be > 0"):
        discriminative(stack(), 0.0, 1.0)


# ---------------------------------------------------------------------- gate multipliers
def rnn(kind, reset_after=True, units=2):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 3))
    if kind == "lstm":
        layer = keras.layers.LSTM(units, name="rec")
    elif kind == "gru":
        layer = keras.layers.GRU(units, reset_after=reset_after, name="rec")
    else:
        layer = keras.layers.Bidirectional(keras.layers.LSTM(units), name="rec")
    outputs = keras.layers.Dense(1, name="out")(layer(inputs))
    return keras.Model(inputs, outputs, name="rnn")


def test_lstm_gate_vectors():
    layer = rnn("lstm").get_layer("rec")
    rules = gate_multipliers(layer, f=0.5, o=0.0)
    expected = np.array([1, 1, 0.5, 0.5, 1, 1, 0, 0], "float32")  # order i, f, c, o
    assert [sel.paths for sel, _ in rules] == [
        ("rec/lstm_cell/kernel",), ("rec/lstm_cell/recurrent_kernel",), ("rec/lstm_cell/bias",)]
    for _, value in rules:
        np.testing.assert_array_equal(value, expected)
    # Keras initialises the forget-gate bias to 1 (unit_forget_bias): same columns as "f".
    forget = gate_multipliers(layer, f=0.0)[2][1] == 0
    np.testing.assert_array_equal(forget, layer.cell.bias.numpy() == 1.0)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_gate_vectors_and_bias_layout(reset_after):
    cell = rnn("gru", reset_after).get_layer("rec").cell
    rules = gate_multipliers(cell, r=0.0, h=3.0)
    vector = np.array([1, 1, 0, 0, 3, 3], "float32")  # order z, r, h
    np.testing.assert_array_equal(rules[0][1], vector)
    np.testing.assert_array_equal(rules[1][1], vector)
    bias = rules[2][1]
    assert bias.shape == tuple(cell.bias.shape)
    np.testing.assert_array_equal(bias, np.tile(vector, (2, 1)) if reset_after else vector)


def test_bidirectional_covers_both_directions():
    rules = gate_multipliers(rnn("bi").get_layer("rec"), i=2.0)
    assert len(rules) == 6
    assert len({sel.paths for sel, _ in rules}) == 6


def test_gate_errors():
    layer = rnn("lstm").get_layer("rec")
    with pytest.raises(ValueError, match=r"Unknown gate\(s\) \['z'\].*i, f, c, o"):
        gate_multipliers(layer, z=0.0)
    with pytest.raises(ValueError, match=r"must be >= 0"):
        gate_multipliers(layer, i=-1.0)
    with pytest.raises(TypeError, match="LSTM, GRU"):
        gate_multipliers(keras.layers.Dense(3))
    with pytest.raises(ValueError, match="must be built"):
        gate_multipliers(keras.layers.LSTM(3), i=0.5)


def _train(model, rules):
    opt = LayerwiseLR(keras.optimizers.AdamW(0.05, weight_decay=0.5), rules)
    model.compile(optimizer=opt, loss="mse")
    model.fit(XS, YS, batch_size=8, epochs=1, verbose=0)


@pytest.mark.parametrize(
    "kind, reset_after, gate, index, gates",
    [("lstm", True, "f", 1, 4), ("lstm", True, "c", 2, 4), ("gru", True, "r", 1, 3),
     ("gru", False, "r", 1, 3), ("gru", True, "h", 2, 3)],
)
def test_frozen_gate_keeps_exactly_its_columns(kind, reset_after, gate, index, gates):
    model = rnn(kind, reset_after, units=3)
    cell = model.get_layer("rec").cell
    variables = [cell.kernel, cell.recurrent_kernel, cell.bias]
    before = [v.numpy() for v in variables]
    _train(model, gate_multipliers(model.get_layer("rec"), **{gate: 0.0}))
    columns = np.zeros(gates * 3, bool)
    columns[index * 3:(index + 1) * 3] = True
    for old, variable in zip(before, variables):
        new = variable.numpy()
        np.testing.assert_array_equal(new[..., columns], old[..., columns])
        assert np.all(new[..., ~columns] != old[..., ~columns])


# ---------------------------------------------------------------------- Paths
def test_paths_selector_round_trip_and_validation():
    paths = Paths("a/kernel", label="mine")
    assert paths.matches("a/kernel") and not paths.matches("a/kernel2")
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(paths), safe_mode=True
    )
    assert clone.paths == ("a/kernel",) and clone.label == "mine"
    with pytest.raises(TypeError, match="strings"):
        Paths([1, 2])
