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

Structure (the axes of the study's structure stage): the MLP and the CNN take ``width``,
``depth``, ``norm`` (``"none"``, ``"batch"``, ``"layer"``) and ``residual``; the recurrent stack
takes ``depth`` and ``norm`` (``"none"`` or ``"layer"``). Their defaults build the models that
existed before these arguments, variable for variable and bit for bit.

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

__all__ = ["FAMILIES", "NORMS", "VIEWS", "build", "cnn", "mlp", "rnn"]

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


NORMS = ("none", "batch", "layer")
"""Values of the ``norm`` argument: no normalization, `BatchNormalization`, `LayerNormalization`."""


def _check_norm(norm: Any, allowed: Sequence[str] = NORMS, why: str = "") -> str:
    if not isinstance(norm, str) or norm not in allowed:
        choices = ", ".join(repr(n) for n in allowed)
        fail("norm", f"must be one of {choices}{why}", norm)
    return norm


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        fail(name, "must be True or False", value, TypeError)
    return bool(value)


def _exclusive(name: str, value: Any, other: str, other_value: Any) -> None:
    if value is not None and other_value is not None:
        fail(
            name,
            f"cannot be combined with `{other}` (pass one of them; {other}={other_value!r})",
            value,
        )


def _norm_layer(norm: str, name: str) -> keras.layers.Layer:
    if norm == "batch":
        return keras.layers.BatchNormalization(name=name)
    return keras.layers.LayerNormalization(name=name)


def _block_layers(units, *, index, activation, norm, dropout, seeds, conv=False):
    """The layers of hidden block ``index``: ``linear [-> norm -> act] [-> dropout]``.

    Without norm this is exactly the layer the plain builders add (same name, same seed
    draws: the linear layer's, then the dropout's).
    """
    kind = "conv" if conv else "dense"
    options = {
        "activation": activation if norm == "none" else None,
        "use_bias": norm != "batch",  # BatchNormalization's beta replaces the bias
        "kernel_initializer": seeds.glorot(),
        "name": f"{kind}_{index}",
    }
    if conv:
        layers = [keras.layers.Conv2D(units, 3, padding="same", **options)]
    else:
        layers = [keras.layers.Dense(units, **options)]
    if norm != "none":
        layers.append(_norm_layer(norm, f"norm_{index}"))
        layers.append(keras.layers.Activation(activation, name=f"act_{index}"))
    if dropout > 0:
        layers.append(keras.layers.Dropout(dropout, seed=seeds(), name=f"dropout_{index}"))
    return layers


def _residual(x, layers, units, *, index, seeds, conv=False):
    """``shortcut(x) + layers(x)``; the shortcut projects (no bias) when widths differ."""
    y = x
    for layer in layers:
        y = layer(y)
    shortcut = x
    if x.shape[-1] != units:
        options = {"use_bias": False, "kernel_initializer": seeds.glorot(),
                   "name": f"shortcut_{index}"}
        if conv:
            shortcut = keras.layers.Conv2D(units, 1, **options)(x)
        else:
            shortcut = keras.layers.Dense(units, **options)(x)
    return keras.layers.Add(name=f"add_{index}")([shortcut, y])


def _functional(layers_fn, shape, name):
    """A functional model whose variable paths read like a Sequential's (``mlp/dense_0/...``)."""
    inputs = keras.Input(shape=shape, name="input")
    with keras.name_scope(name):
        outputs = layers_fn(inputs)
    return keras.Model(inputs, outputs, name=name)


def mlp(
    input_shape: Sequence[int],
    num_classes: int | None,
    hidden: Sequence[int] | None = None,
    activation: str = "relu",
    dropout: float = 0.0,
    seed: int = 0,
    *,
    width: int | None = None,
    depth: int | None = None,
    norm: str = "none",
    residual: bool = False,
) -> keras.Model:
    """A multilayer perceptron: ``[flatten] -> (dense_i [-> dropout_i])* -> output``.

    Inputs of rank > 1 (e.g. images) are flattened by a first layer named ``flatten``.

    Hidden block ``i`` (``norm="none"``, ``residual=False``: one ``Dense`` with the activation)::

        h = act(norm_i(dense_i(h)))            # norm="batch" | "layer"
        h = shortcut_i(h) + act(...)           # residual=True (He et al. 2016)

    where ``shortcut_i`` is the identity when the widths agree and a bias-free ``Dense``
    projection otherwise (so ``depth=1`` residual networks work). Before ``BatchNormalization``
    the ``Dense`` has no bias (the norm's ``beta`` replaces it).

    Args:
        input_shape: shape of one sample, e.g. ``(64,)``.
        num_classes: number of classes (>= 2, softmax head) or ``None`` (linear ``Dense(1)``).
        hidden: units of each hidden layer, non-empty, each >= 1 (an int means one layer).
            Default ``(128, 128)``; cannot be combined with `width` or `depth`.
        activation: activation of the hidden layers, any Keras activation name.
        dropout: dropout rate after each hidden layer, in ``[0, 1)``; 0 adds no layer.
        seed: non-negative integer seeding every initializer and dropout layer.
        width: units of every hidden layer (default 128), instead of `hidden`.
        depth: number of hidden blocks (default 2), instead of `hidden`.
        norm: ``"none"`` (default), ``"batch"`` or ``"layer"`` after each hidden ``Dense``.
        residual: add a shortcut around every hidden block.

    Returns:
        An uncompiled, built model named ``"mlp"``: a ``keras.Sequential``, or a functional
        ``keras.Model`` when ``residual=True``.

    Example:
        >>> model = mlp((64,), 10, hidden=(32,))
        >>> tuple(layer.name for layer in model.layers)
        ('dense_0', 'output')
        >>> deep = mlp((64,), 10, width=16, depth=3, norm="layer", residual=True)
        >>> names = [layer.name for layer in deep.layers]
        >>> tuple(names[1:6])
        ('dense_0', 'norm_0', 'shortcut_0', 'act_0', 'add_0')
    """
    shape = _check_input_shape(input_shape, "mlp", None, "(features,)")
    num_classes = _check_num_classes(num_classes)
    _exclusive("width", width, "hidden", hidden)
    _exclusive("depth", depth, "hidden", hidden)
    if hidden is None:
        hidden = (
            (128, 128)
            if width is None and depth is None
            else (check_int("width", 128 if width is None else width, minimum=1),)
            * check_int("depth", 2 if depth is None else depth, minimum=1)
        )
    hidden = _check_sizes("hidden", hidden)
    norm = _check_norm(norm)
    residual = _check_bool("residual", residual)
    try:
        keras.activations.get(activation)
    except (ValueError, TypeError):
        fail("activation", "must be the name of a Keras activation", activation)
    dropout = check_float("dropout", dropout, minimum=0.0)
    if dropout >= 1.0:
        fail("dropout", "must be < 1", dropout)
    seeds = _check_seed(seed)

    if residual:

        def stack(x):
            if len(shape) > 1:
                x = keras.layers.Flatten(name="flatten")(x)
            for i, units in enumerate(hidden):
                block = _block_layers(units, index=i, activation=activation, norm=norm,
                                      dropout=dropout, seeds=seeds)
                x = _residual(x, block, units, index=i, seeds=seeds)
            return _head(num_classes, seeds)(x)

        return _functional(stack, shape, "mlp")

    layers = [keras.Input(shape=shape, name="input")]
    if len(shape) > 1:
        layers.append(keras.layers.Flatten(name="flatten"))
    for i, units in enumerate(hidden):
        layers.extend(_block_layers(units, index=i, activation=activation, norm=norm,
                                    dropout=dropout, seeds=seeds))
    layers.append(_head(num_classes, seeds))
    return keras.Sequential(layers, name="mlp")


def cnn(
    input_shape: Sequence[int],
    num_classes: int | None,
    filters: Sequence[int] | None = None,
    dense: int | None = None,
    seed: int = 0,
    *,
    width: int | None = None,
    depth: int | None = None,
    norm: str = "none",
    residual: bool = False,
) -> keras.Model:
    """A small convolutional network:
    ``(conv_i -> pool_i)* -> flatten -> dense_0 -> output``.

    Each ``conv_i`` is a 3x3 ``Conv2D`` with ReLU and ``padding="same"``; each ``pool_i`` a
    2x2 ``MaxPooling2D`` with ``padding="same"``, which halves height and width rounding up,
    so any image size works (8x8 digits become 4x4 then 2x2; 28x28 MNIST 14x14 then 7x7).

    Structure: a stage is ``depth`` conv blocks then a pooling (one stage per entry of
    `filters`); convolutions are numbered across stages (``conv_0 .. conv_{k-1}``). A block
    is ``act(norm_k(conv_k(h)))`` with a norm, and ``shortcut_k(h) + act(...)`` with
    ``residual=True`` (a bias-free 1x1 convolution ``shortcut_k`` where the channels change,
    the identity elsewhere). ``width=w`` means ``filters=(w, 2w)`` and ``dense=4w``
    (``width=32`` is the default network).

    Args:
        input_shape: ``(height, width, channels)``, e.g. ``(8, 8, 1)`` or ``(32, 32, 3)``.
        num_classes: number of classes (>= 2, softmax head) or ``None`` (linear ``Dense(1)``).
        filters: filters of each stage, non-empty, each >= 1. Default ``(32, 64)``.
        dense: units of the ReLU dense layer before the head, >= 1. Default 128.
        seed: non-negative integer seeding every initializer.
        width: channel width ``w`` (instead of `filters` and `dense`), >= 1.
        depth: conv blocks per stage, >= 1. Default 1.
        norm: ``"none"`` (default), ``"batch"`` or ``"layer"`` after each convolution
            (bias-free before ``"batch"``).
        residual: add a shortcut around every conv block.

    Returns:
        An uncompiled, built model named ``"cnn"``: a ``keras.Sequential``, or a functional
        ``keras.Model`` when ``residual=True``.

    Example:
        >>> model = cnn((28, 28, 1), 10)
        >>> model.get_layer("pool_1").output.shape
        (None, 7, 7, 64)
        >>> wide = cnn((8, 8, 1), 10, width=8, depth=2, norm="batch")
        >>> names = [layer.name for layer in wide.layers]
        >>> tuple(names[:7])
        ('conv_0', 'norm_0', 'act_0', 'conv_1', 'norm_1', 'act_1', 'pool_0')
    """
    shape = _check_input_shape(input_shape, "cnn", 3, "(height, width, channels)")
    num_classes = _check_num_classes(num_classes)
    _exclusive("width", width, "filters", filters)
    _exclusive("width", width, "dense", dense)
    if width is not None:
        width = check_int("width", width, minimum=1)
        filters, dense = (width, 2 * width), 4 * width
    filters = _check_sizes("filters", (32, 64) if filters is None else filters)
    dense = check_int("dense", 128 if dense is None else dense, minimum=1)
    depth = check_int("depth", 1 if depth is None else depth, minimum=1)
    norm = _check_norm(norm)
    residual = _check_bool("residual", residual)
    seeds = _check_seed(seed)

    def blocks(stage, count):
        return [
            (stage * depth + j, _block_layers(count, index=stage * depth + j, activation="relu",
                                              norm=norm, dropout=0.0, seeds=seeds, conv=True))
            for j in range(depth)
        ]

    def top():
        return [
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(
                dense, activation="relu", kernel_initializer=seeds.glorot(), name="dense_0"
            ),
        ]

    if residual:

        def stack(x):
            for stage, count in enumerate(filters):
                for index, block in blocks(stage, count):
                    x = _residual(x, block, count, index=index, seeds=seeds, conv=True)
                x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{stage}")(x)
            for layer in top():
                x = layer(x)
            return _head(num_classes, seeds)(x)

        return _functional(stack, shape, "cnn")

    layers = [keras.Input(shape=shape, name="input")]
    for stage, count in enumerate(filters):
        for _, block in blocks(stage, count):
            layers.extend(block)
        layers.append(keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{stage}"))
    layers.extend(top())
    layers.append(_head(num_classes, seeds))
    return keras.Sequential(layers, name="cnn")


def rnn(
    input_shape: Sequence[int],
    num_classes: int | None,
    cell: str = "lstm",
    units: int = 64,
    layers: int | None = None,
    seed: int = 0,
    *,
    depth: int | None = None,
    norm: str = "none",
) -> keras.Sequential:
    """A stacked recurrent network: ``{cell}_0 -> ... -> {cell}_{layers-1} -> output``.

    With ``norm="layer"`` a ``LayerNormalization`` ``norm_i`` follows every recurrent layer
    (on its outputs, between layers; Ba et al. 2016 normalize inside the cell, which Keras's
    cells do not offer). Batch normalization is refused for recurrent stacks: its statistics
    would mix time steps and padded positions.

    Every recurrent layer but the last returns sequences; the last returns its final state.
    Layer names are ``lstm_i``, ``gru_i`` or ``simple_rnn_i``, the model is named the same
    way (``"lstm"``, ``"gru"``, ``"simple_rnn"``).

    Args:
        input_shape: ``(timesteps, features)``; ``timesteps`` may be ``None``.
        num_classes: number of classes (>= 2, softmax head) or ``None`` (linear ``Dense(1)``).
        cell: ``"lstm"``, ``"gru"`` or ``"simple"`` (``SimpleRNN``).
        units: units of every recurrent layer, >= 1.
        layers: number of stacked recurrent layers, >= 1. Default 1.
        seed: non-negative integer seeding every initializer (and the layers' dropout
            generators, so that building draws nothing from Python's global `random`).
        depth: the same as `layers` (the name the other families use); pass one of them.
        norm: ``"none"`` (default) or ``"layer"``.

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
    _exclusive("depth", depth, "layers", layers)
    if depth is not None:
        depth = check_int("depth", depth, minimum=1)
    else:
        depth = check_int("layers", 1 if layers is None else layers, minimum=1)
    norm = _check_norm(
        norm, ("none", "layer"),
        " for recurrent stacks (batch statistics would mix time steps and padding)",
    )
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
        if norm == "layer":
            stack.append(keras.layers.LayerNormalization(name=f"norm_{i}"))
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
        **kwargs: the builder's other arguments (`mlp`, `cnn`, or `rnn` without ``cell``),
            e.g. ``width``, ``depth``, ``norm`` and ``residual`` (the last two: MLP and CNN).

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
    for name in ("width", "residual"):
        if name in kwargs:
            raise TypeError(
                f"build() got an unexpected keyword argument `{name}` for family '{family}': "
                f"recurrent stacks take `units`, `depth` and `norm`. "
                f"Received: {name}={kwargs[name]!r}"
            )
    cell = "simple" if family == "simple_rnn" else family
    return rnn(input_shape, num_classes, cell=cell, **kwargs)
