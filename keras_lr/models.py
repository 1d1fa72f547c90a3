"""Small reference models for learning-rate experiments: MLP, CNN and RNNs.

Every builder returns an uncompiled, built `keras.Sequential` with stable layer names (the
model is named after its family, so variable paths read ``mlp/dense_0/kernel``) and seeded
initialisation: each layer gets its own initializer seed derived from ``seed`` and its
position, so the same ``seed`` gives bit-identical weights without touching any global random
state, and different seeds give different weights.

Output heads (a design decision):

* classification (``num_classes >= 2``): ``Dense(num_classes, activation="softmax")``
  named ``output``, so compile with ``loss="sparse_categorical_crossentropy"`` and integer
  labels (as `keras_lr.data.load` returns them);
* regression (``num_classes=None``): a linear ``Dense(1)`` named ``output``; compile with
  ``loss="mse"``.

Kernels use Glorot-uniform initialisation, recurrent kernels orthogonal, biases zeros (the
Keras defaults, seeded).

Example:
    >>> from keras_lr import data, models
    >>> ds = data.load("digits", view=data.view_for("cnn"), limit=200)
    >>> model = models.build("cnn", ds.input_shape, ds.num_classes, seed=0)
    >>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    >>> tuple(layer.name for layer in model.layers)
    ('conv_0', 'pool_0', 'conv_1', 'pool_1', 'flatten', 'dense_0', 'output')
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import keras
import numpy as np

from keras_lr._validation import check_choice, check_float, check_int, fail
from keras_lr.data.loader import FAMILY_VIEWS

__all__ = ["FAMILIES", "VIEWS", "build", "cnn", "mlp", "rnn"]

FAMILIES = ("mlp", "cnn", "lstm", "gru", "simple_rnn")
"""Model families `build` knows (the names the CLI uses)."""
VIEWS = MappingProxyType(dict(FAMILY_VIEWS))
"""The `keras_lr.data.load` view each family consumes, e.g. ``VIEWS["cnn"] == "image"``."""

_CELLS = {"lstm": "LSTM", "gru": "GRU", "simple": "SimpleRNN"}
_CELL_NAMES = {"lstm": "lstm", "gru": "gru", "simple": "simple_rnn"}


class _Seeds:
    """Per-layer seeds: ``SeedSequence([seed, i])`` for the i-th request, as a 31-bit int."""

    def __init__(self, seed: int):
        self.seed = seed
        self.count = 0

    def __call__(self) -> int:
        state = np.random.SeedSequence([self.seed, self.count]).generate_state(1)
        self.count += 1
        return int(state[0]) & 0x7FFFFFFF

    def glorot(self) -> keras.initializers.Initializer:
        return keras.initializers.GlorotUniform(seed=self())


def _check_seed(seed: Any) -> _Seeds:
    return _Seeds(check_int("seed", seed, minimum=0))


def _check_input_shape(input_shape: Any, family: str, rank: int | None, layout: str) -> tuple:
    """Validate `input_shape`; ``rank=None`` accepts any rank >= 1."""
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (int(input_shape),)
    if not isinstance(input_shape, Sequence) or isinstance(input_shape, str):
        fail("input_shape", "must be a tuple of positive integers", input_shape, TypeError)
    shape = tuple(input_shape)
    if (rank is None and len(shape) < 1) or (rank is not None and len(shape) != rank):
        view = VIEWS.get(family, "flat")
        fail(
            "input_shape",
            f"must have the form {layout} for the '{family}' family "
            f"(load the data with view='{view}')",
            shape,
        )
    for i, dim in enumerate(shape):
        if dim is None and family in ("lstm", "gru", "simple_rnn") and i == 0:
            continue  # variable-length sequences
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            fail("input_shape", "must be a tuple of positive integers", shape)
    return tuple(None if d is None else int(d) for d in shape)


def _check_num_classes(num_classes: Any) -> int | None:
    if num_classes is None:
        return None
    return check_int("num_classes", num_classes, minimum=2)


def _check_sizes(name: str, values: Any) -> tuple[int, ...]:
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = (values,)
    if not isinstance(values, Sequence) or isinstance(values, str):
        fail(name, "must be a sequence of positive integers", values, TypeError)
    if len(values) == 0:
        fail(name, "must not be empty", values)
    return tuple(check_int(f"{name}[{i}]", v, minimum=1) for i, v in enumerate(values))


def _head(num_classes: int | None, seeds: _Seeds) -> keras.layers.Layer:
    if num_classes is None:
        return keras.layers.Dense(1, kernel_initializer=seeds.glorot(), name="output")
    return keras.layers.Dense(
        num_classes, activation="softmax", kernel_initializer=seeds.glorot(), name="output"
    )


def mlp(
    input_shape: Sequence[int],
    num_classes: int | None,
    hidden: Sequence[int] = (128, 128),
    activation: str = "relu",
    dropout: float = 0.0,
    seed: int = 0,
) -> keras.Sequential:
    """A multilayer perceptron: ``[flatten] -> (dense_i [-> dropout_i])* -> output``.

    Inputs of rank > 1 (e.g. images) are flattened by a first layer named ``flatten``.

    Args:
        input_shape: shape of one sample, e.g. ``(64,)``.
        num_classes: number of classes (>= 2, softmax head) or ``None`` (linear ``Dense(1)``).
        hidden: units of each hidden layer, non-empty, each >= 1 (an int means one layer).
        activation: activation of the hidden layers, any Keras activation name.
        dropout: dropout rate after each hidden layer, in ``[0, 1)``; 0 adds no layer.
        seed: non-negative integer seeding every initializer and dropout layer.

    Returns:
        An uncompiled, built ``keras.Sequential`` named ``"mlp"``.

    Example:
        >>> model = mlp((64,), 10, hidden=(32,))
        >>> tuple(layer.name for layer in model.layers)
        ('dense_0', 'output')
    """
    shape = _check_input_shape(input_shape, "mlp", None, "(features,)")
    num_classes = _check_num_classes(num_classes)
    hidden = _check_sizes("hidden", hidden)
    try:
        keras.activations.get(activation)
    except (ValueError, TypeError):
        fail("activation", "must be the name of a Keras activation", activation)
    dropout = check_float("dropout", dropout, minimum=0.0)
    if dropout >= 1.0:
        fail("dropout", "must be < 1", dropout)
    seeds = _check_seed(seed)

    layers = [keras.Input(shape=shape, name="input")]
    if len(shape) > 1:
        layers.append(keras.layers.Flatten(name="flatten"))
    for i, units in enumerate(hidden):
        layers.append(
            keras.layers.Dense(
                units, activation=activation, kernel_initializer=seeds.glorot(), name=f"dense_{i}"
            )
        )
        if dropout > 0:
            layers.append(keras.layers.Dropout(dropout, seed=seeds(), name=f"dropout_{i}"))
    layers.append(_head(num_classes, seeds))
    return keras.Sequential(layers, name="mlp")


def cnn(
    input_shape: Sequence[int],
    num_classes: int | None,
    filters: Sequence[int] = (32, 64),
    dense: int = 128,
    seed: int = 0,
) -> keras.Sequential:
    """A small convolutional network:
    ``(conv_i -> pool_i)* -> flatten -> dense_0 -> output``.

    Each ``conv_i`` is a 3x3 ``Conv2D`` with ReLU and ``padding="same"``; each ``pool_i`` a
    2x2 ``MaxPooling2D`` with ``padding="same"``, which halves height and width rounding up,
    so any image size works (8x8 digits become 4x4 then 2x2; 28x28 MNIST 14x14 then 7x7).

    Args:
        input_shape: ``(height, width, channels)``, e.g. ``(8, 8, 1)`` or ``(32, 32, 3)``.
        num_classes: number of classes (>= 2, softmax head) or ``None`` (linear ``Dense(1)``).
        filters: filters of each convolution block, non-empty, each >= 1.
        dense: units of the ReLU dense layer before the head, >= 1.
        seed: non-negative integer seeding every initializer.

    Returns:
        An uncompiled, built ``keras.Sequential`` named ``"cnn"``.

    Example:
        >>> model = cnn((28, 28, 1), 10)
        >>> model.get_layer("pool_1").output.shape
        (None, 7, 7, 64)
    """
    shape = _check_input_shape(input_shape, "cnn", 3, "(height, width, channels)")
    num_classes = _check_num_classes(num_classes)
    filters = _check_sizes("filters", filters)
    dense = check_int("dense", dense, minimum=1)
    seeds = _check_seed(seed)

    layers = [keras.Input(shape=shape, name="input")]
    for i, count in enumerate(filters):
        layers.append(
            keras.layers.Conv2D(
                count,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=seeds.glorot(),
                name=f"conv_{i}",
            )
        )
        layers.append(keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{i}"))
    layers.append(keras.layers.Flatten(name="flatten"))
    layers.append(
        keras.layers.Dense(
            dense, activation="relu", kernel_initializer=seeds.glorot(), name="dense_0"
        )
    )
    layers.append(_head(num_classes, seeds))
    return keras.Sequential(layers, name="cnn")


def rnn(
    input_shape: Sequence[int],
    num_classes: int | None,
    cell: str = "lstm",
    units: int = 64,
    layers: int = 1,
    seed: int = 0,
) -> keras.Sequential:
    """A stacked recurrent network: ``{cell}_0 -> ... -> {cell}_{layers-1} -> output``.

    Every recurrent layer but the last returns sequences; the last returns its final state.
    Layer names are ``lstm_i``, ``gru_i`` or ``simple_rnn_i``, the model is named the same
    way (``"lstm"``, ``"gru"``, ``"simple_rnn"``).

    Args:
        input_shape: ``(timesteps, features)``; ``timesteps`` may be ``None``.
        num_classes: number of classes (>= 2, softmax head) or ``None`` (linear ``Dense(1)``).
        cell: ``"lstm"``, ``"gru"`` or ``"simple"`` (``SimpleRNN``).
        units: units of every recurrent layer, >= 1.
        layers: number of stacked recurrent layers, >= 1.
        seed: non-negative integer seeding every initializer (and the layers' dropout
            generators, so that building draws nothing from Python's global `random`).

    Returns:
        An uncompiled, built ``keras.Sequential``.

    Example:
        >>> model = rnn((100, 2), None, cell="gru", units=16, layers=2)
        >>> tuple(layer.name for layer in model.layers)
        ('gru_0', 'gru_1', 'output')
    """
    cell = check_choice("cell", cell, _CELLS)
    family = _CELL_NAMES[cell]
    shape = _check_input_shape(input_shape, family, 2, "(timesteps, features)")
    num_classes = _check_num_classes(num_classes)
    units = check_int("units", units, minimum=1)
    depth = check_int("layers", layers, minimum=1)
    seeds = _check_seed(seed)

    stack = [keras.Input(shape=shape, name="input")]
    layer_class = getattr(keras.layers, _CELLS[cell])
    for i in range(depth):
        stack.append(
            layer_class(
                units,
                return_sequences=i < depth - 1,
                kernel_initializer=seeds.glorot(),
                recurrent_initializer=keras.initializers.Orthogonal(seed=seeds()),
                seed=seeds(),  # the (unused) dropout generator would draw from `random`
                name=f"{family}_{i}",
            )
        )
    stack.append(_head(num_classes, seeds))
    return keras.Sequential(stack, name=family)


def build(
    family: str, input_shape: Sequence[int], num_classes: int | None, **kwargs: Any
) -> keras.Sequential:
    """Build a model of one of `FAMILIES`: ``"mlp"``, ``"cnn"``, ``"lstm"``, ``"gru"``,
    ``"simple_rnn"``.

    Args:
        family: the model family; load its data with ``view=VIEWS[family]``.
        input_shape: shape of one sample (``Dataset.input_shape``).
        num_classes: number of classes, or ``None`` for a regression head
            (``Dataset.num_classes``).
        **kwargs: the builder's other arguments (`mlp`, `cnn`, or `rnn` without ``cell``).

    Returns:
        An uncompiled, built ``keras.Sequential``.

    Example:
        >>> from keras_lr import data
        >>> ds = data.load("adding", view=VIEWS["lstm"], n=100, length=20)
        >>> model = build("lstm", ds.input_shape, ds.num_classes, units=8)
        >>> model.compile("adam", "mse")
    """
    family = check_choice("family", family, FAMILIES)
    if family == "mlp":
        return mlp(input_shape, num_classes, **kwargs)
    if family == "cnn":
        return cnn(input_shape, num_classes, **kwargs)
    if "cell" in kwargs:
        raise TypeError(
            f"build() got an unexpected keyword argument `cell` for family '{family}': the "
            f"family already names the cell. Received: cell={kwargs['cell']!r}"
        )
    cell = "simple" if family == "simple_rnn" else family
    return rnn(input_shape, num_classes, cell=cell, **kwargs)
