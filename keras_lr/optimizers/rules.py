"""Rules for `LayerwiseLR`: selectors, and helpers that build multiplier rules.

A rule is a ``(selector, value)`` pair. The selector picks variables; the value multiplies their
learning rate. Selectors may be:

* a string: a regular expression matched with `re.search` against `variable.path` (for example
  ``"dense_1/"``, or ``"^encoder/.*/kernel$"``; anchor it with ``^`` and ``$`` for an exact
  match). Paths look like ``dense/kernel`` or ``sequential/dense/kernel``: a
  `keras.Sequential` model puts its own name first while it is built in its scope, but not
  after `keras.models.load_model`, so leave the model's name out of a regex (``"(^|/)dense/"``
  rather than ``"^sequential/dense/"``). Exact selectors (layers, variables, `Paths`) are
  matched through this difference.
* a Keras layer class such as `keras.layers.Conv2D`: every variable of every layer of that type
  (`isinstance`, so subclasses too). Resolving a class needs the model: call
  `LayerwiseLR.bind(model)`.
* a layer (or model) instance: all its variables, including those of nested layers.
* a `keras.Variable`: that variable.
* `Paths`: a fixed set of exact variable paths. Class and instance selectors resolve to `Paths`,
  which is what `LayerwiseLR.get_config` stores, so a saved model loads without the model code
  that built the rules.

A value is a non-negative float, or an array broadcastable to the variable's shape (a rate per
unit or per column, as `gate_multipliers` builds).

The helpers return lists of rules to pass (or concatenate) as `LayerwiseLR(multipliers=...)`:

* `layer_decay`: layer-wise learning-rate decay for fine-tuning (BEiT, timm's `layer_decay`).
* `discriminative`: fastai's discriminative rates (``slice(low, high)``), a geometric spread.
* `gate_multipliers`: per-gate rates for the kernels and bias of an LSTM or GRU.

Reference:
    Clark et al., "ELECTRA: Pre-training Text Encoders as Discriminators Rather Than
    Generators", ICLR 2020 (layer-wise decay); Bao et al., "BEiT: BERT Pre-Training of Image
    Transformers", ICLR 2022; Howard & Ruder, "Universal Language Model Fine-tuning for Text
    Classification", ACL 2018 (discriminative fine-tuning).
"""

from __future__ import annotations

import dataclasses
import numbers
import re

import keras
import numpy as np

from keras_lr._validation import check_float, fail

__all__ = [
    "Paths",
    "discriminative",
    "gate_multipliers",
    "layer_decay",
]


@keras.saving.register_keras_serializable(package="keras_lr")
class Paths:
    """Selector for a fixed set of variables, by exact `variable.path`.

    Args:
        paths: iterable of variable paths (strings), matched exactly.
        label: optional text shown by `LayerwiseLR.describe` as the rule's name.

    Example:

    ```python
    rules = [(keras_lr.optimizers.Paths(["sequential/dense/bias"]), 0.0)]
    ```
    """

    def __init__(self, paths, label=None):
        if isinstance(paths, str):
            paths = [paths]
        paths = list(paths)
        for path in paths:
            if not isinstance(path, str):
                fail("paths", "must contain strings only", paths, TypeError)
        self.paths = tuple(dict.fromkeys(paths))
        self._set = frozenset(self.paths)
        self.label = label if label is not None else f"paths {list(self.paths)!r}"

    def matches(self, path):
        return path in self._set

    def align(self, available):
        """These paths mapped onto the variable paths `available`; returns a `Paths`.

        A path found in `available` stays. A missing one maps to the single available path
        that equals it up to leading scope components: a `keras.Sequential` model names its
        variables ``sequential/dense/kernel`` when built in its own scope and ``dense/kernel``
        when `keras.models.load_model` rebuilds it, and the ``sequential_N`` counter
        depends on the session. Missing paths with no such match, or several, stay as they
        are (`LayerwiseLR` then reports the rule that matches nothing).

        Example:
            >>> Paths(["sequential/dense/kernel"]).align(["dense/kernel", "dense/bias"]).paths
            ('dense/kernel',)
        """
        available = list(available)
        present = set(available)
        if all(path in present for path in self.paths):
            return self
        aligned = []
        for path in self.paths:
            if path not in present:
                found = [c for c in available
                         if c.endswith("/" + path) or path.endswith("/" + c)]
                path = found[0] if len(found) == 1 else path
            aligned.append(path)
        return Paths(aligned, label=self.label)

    def get_config(self):
        return {"paths": list(self.paths), "label": self.label}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"Paths({list(self.paths)!r}, label={self.label!r})"


@dataclasses.dataclass
class _Rule:
    """One normalized rule. `selector` is a compiled regex, `Paths`, a layer class or layer."""

    selector: object
    value: object  # float or np.ndarray (float32)
    label: str

    @property
    def resolved(self):
        return isinstance(self.selector, (re.Pattern, Paths))

    def matches(self, path):
        if isinstance(self.selector, re.Pattern):
            return self.selector.search(path) is not None
        return self.selector.matches(path)


def _check_value(value, where):
    """A multiplier: non-negative finite float, or a non-negative finite float32 array."""
    name = f"multipliers[{where}]"
    if isinstance(value, (bool, str, bytes)) or value is None:
        fail(name, "must be a non-negative float or an array of them", value, TypeError)
    if isinstance(value, numbers.Real):
        return check_float(name, value, minimum=0.0)
    try:
        array = np.asarray(keras.ops.convert_to_numpy(value), dtype="float32")
    except (TypeError, ValueError):
        fail(name, "must be a non-negative float or an array of them", value, TypeError)
    if array.ndim == 0:
        return check_float(name, float(array), minimum=0.0)
    if not np.all(np.isfinite(array)):
        fail(name, "must contain finite values only", value)
    if np.any(array < 0):
        fail(name, "must contain values >= 0 only", value)
    return array


def _layer_paths(layer):
    return Paths([w.path for w in layer.weights], label=f"layer {layer.name!r}")


def _make_rule(selector, value, where):
    value = _check_value(value, where)
    if isinstance(selector, str):
        try:
            pattern = re.compile(selector)
        except re.error as error:
            fail(f"multipliers[{where}]", f"has an invalid regular expression ({error})",
                 selector)
        return _Rule(pattern, value, f"regex {selector!r}")
    if isinstance(selector, Paths):
        return _Rule(selector, value, selector.label)
    if isinstance(selector, type) and issubclass(selector, keras.layers.Layer):
        return _Rule(selector, value, f"{selector.__name__} layers")
    if isinstance(selector, keras.layers.Layer):
        # A built layer resolves now; an unbuilt one when the optimizer is built.
        return resolve_rule(_Rule(selector, value, f"layer {selector.name!r}"))
    if isinstance(selector, keras.Variable):
        paths = Paths([selector.path], label=f"variable {selector.path!r}")
        return _Rule(paths, value, paths.label)
    fail(
        f"multipliers[{where}]",
        "must have a selector that is a regex string, a Keras layer class, a layer instance, "
        "a keras.Variable or keras_lr.optimizers.Paths",
        selector,
        TypeError,
    )


def normalize_rules(multipliers):
    """Turn the user's `multipliers` (list of pairs or dict) into a list of `_Rule`."""
    if isinstance(multipliers, dict):
        pairs = list(multipliers.items())
    elif isinstance(multipliers, (list, tuple)):
        pairs = list(multipliers)
    else:
        fail("multipliers", "must be a list of (selector, value) pairs or a dict", multipliers,
             TypeError)
    rules = []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            fail(f"multipliers[{index}]", "must be a (selector, value) pair", pair, TypeError)
        rules.append(_make_rule(pair[0], pair[1], index))
    return rules


def _iter_layers(model):
    """Every layer inside `model`, depth first, the model itself excluded."""
    return model._flatten_layers(include_self=False, recursive=True)


def resolve_rule(rule, model=None):
    """Return `rule` with a class or layer-instance selector replaced by `Paths`.

    A class needs `model`; without it (or with an unbuilt layer) the rule is returned as is.
    """
    selector = rule.selector
    if rule.resolved:
        return rule
    if isinstance(selector, keras.layers.Layer):
        if not selector.built:
            return rule
        return dataclasses.replace(rule, selector=_layer_paths(selector))
    if model is None:
        return rule
    paths = []
    for layer in _iter_layers(model):
        if isinstance(layer, selector):
            paths.extend(w.path for w in layer.weights)
    return dataclasses.replace(rule, selector=Paths(paths, label=rule.label))


def _trainable_layers(model, layers):
    if layers is None:
        if not hasattr(model, "layers"):
            fail("model", "must be a Keras model with a `layers` list", model, TypeError)
        layers = [layer for layer in model.layers if layer.trainable_weights]
    else:
        layers = list(layers)
    if not layers:
        fail("model", "must have at least one layer with trainable weights", model)
    return layers


def _group_rules(layers, values):
    rules = []
    for group, value in zip(layers, values):
        members = group if isinstance(group, (list, tuple)) else [group]
        rules.extend((member, float(value)) for member in members)
    return rules


def layer_decay(model, decay=0.75, min_multiplier=0.0, layers=None):
    """Layer-wise learning-rate decay (LLRD) for fine-tuning, as in BEiT and timm.

    With ``n`` layers (or groups), layer ``i`` (0 = the first, nearest the input) gets::

        multiplier(i) = max(decay ** (n - 1 - i), min_multiplier)

    so the last layer (the head) keeps the full rate and each earlier layer gets `decay` times
    the rate of the next.

    Args:
        model: a Keras model. By default its top-level layers that have trainable weights are
            the layers, in order (a nested backbone counts as one layer; pass `layers` to split
            it).
        decay: float > 0, the factor between consecutive layers. Default 0.75.
        min_multiplier: float >= 0, the smallest multiplier handed out. Default 0.0.
        layers: optional ordered list of selectors (layers, classes, regexes, `Paths`) or of
            lists of selectors (one group per entry), first to last.

    Returns:
        A list of ``(selector, multiplier)`` rules for `LayerwiseLR`.

    Example:

    ```python
    rules = keras_lr.optimizers.layer_decay(model, decay=0.65)
    opt = keras_lr.optimizers.LayerwiseLR(keras.optimizers.AdamW(1e-4), rules)
    ```

    Reference:
        Bao et al., "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022.
    """
    decay = check_float("decay", decay, minimum=0.0, strict=True)
    min_multiplier = check_float("min_multiplier", min_multiplier, minimum=0.0)
    layers = _trainable_layers(model, layers)
    n = len(layers)
    values = [max(decay ** (n - 1 - i), min_multiplier) for i in range(n)]
    return _group_rules(layers, values)


def discriminative(model, low, high, layers=None):
    """Discriminative learning rates: a geometric spread from the first layer to the last.

    fastai's ``lr=slice(low, high)``. With ``n`` layers (or groups), layer ``i`` gets::

        multiplier(i) = low * (high / low) ** (i / (n - 1))     # n == 1: high

    Args:
        model: a Keras model; layers chosen as in `layer_decay`.
        low: float > 0, the multiplier of the first layer.
        high: float > 0, the multiplier of the last layer.
        layers: optional ordered list of selectors or groups of selectors, first to last.

    Returns:
        A list of ``(selector, multiplier)`` rules for `LayerwiseLR`.

    Example:

    ```python
    rules = keras_lr.optimizers.discriminative(model, low=0.01, high=1.0)
    opt = keras_lr.optimizers.LayerwiseLR(keras.optimizers.Adam(1e-3), rules)
    ```

    Reference:
        Howard & Ruder, "Universal Language Model Fine-tuning for Text Classification",
        ACL 2018.
    """
    low = check_float("low", low, minimum=0.0, strict=True)
    high = check_float("high", high, minimum=0.0, strict=True)
    layers = _trainable_layers(model, layers)
    n = len(layers)
    if n == 1:
        values = [high]
    else:
        values = [low * (high / low) ** (i / (n - 1)) for i in range(n)]
    return _group_rules(layers, values)


_GATES = {"LSTMCell": ("i", "f", "c", "o"), "GRUCell": ("z", "r", "h")}


def _recurrent_cells(layer):
    if isinstance(layer, keras.layers.Bidirectional):
        return _recurrent_cells(layer.forward_layer) + _recurrent_cells(layer.backward_layer)
    cell = getattr(layer, "cell", layer)
    if isinstance(cell, keras.layers.LSTMCell):
        return [(layer, cell, _GATES["LSTMCell"])]
    if isinstance(cell, keras.layers.GRUCell):
        return [(layer, cell, _GATES["GRUCell"])]
    fail(
        "layer",
        "must be a keras.layers.LSTM, GRU, LSTMCell, GRUCell or a Bidirectional of them",
        layer,
        TypeError,
    )


def gate_multipliers(layer, **per_gate):
    """Per-gate learning-rate multipliers for an LSTM or a GRU.

    Keras stacks the gates along the last axis of the kernel ``(input, G*units)``, recurrent
    kernel ``(units, G*units)`` and bias: LSTM in the order ``i, f, c, o`` (G=4), GRU in the
    order ``z, r, h`` (G=3). A GRU with ``reset_after=True`` has a bias of shape
    ``(2, 3*units)`` (input bias, recurrent bias), each row in ``z, r, h`` order. This helper
    builds, for each of these variables, the vector (or for that bias the ``(2, 3*units)``
    array) with each gate's multiplier repeated over its ``units`` columns::

        multiplier[..., g*units:(g+1)*units] = per_gate[gate_g]     # 1.0 when not given

    A gate given 0 keeps its columns exactly unchanged (no update, no weight decay).

    Args:
        layer: a built `keras.layers.LSTM` or `GRU` (or their cells, or a `Bidirectional`
            of them, in which case both directions get the same multipliers).
        **per_gate: multipliers by gate name: ``i, f, c, o`` (LSTM) or ``z, r, h`` (GRU).

    Returns:
        A list of ``(Paths, array)`` rules for `LayerwiseLR`.

    Example:

    ```python
    rules = keras_lr.optimizers.gate_multipliers(model.get_layer("lstm"), f=0.1, o=2.0)
    opt = keras_lr.optimizers.LayerwiseLR(keras.optimizers.Adam(1e-3), rules)
    ```
    """
    rules = []
    for owner, cell, gates in _recurrent_cells(layer):
        unknown = sorted(set(per_gate) - set(gates))
        if unknown:
            raise ValueError(
                f"Unknown gate(s) {unknown} for {type(cell).__name__}; its gates are "
                f"{', '.join(gates)} (Keras order). Received: {per_gate}"
            )
        if not cell.built:
            fail("layer", "must be built (build or call the model first)", layer)
        values = [
            check_float(f"per_gate[{gate!r}]", per_gate.get(gate, 1.0), minimum=0.0)
            for gate in gates
        ]
        vector = np.repeat(np.asarray(values, "float32"), cell.units)
        label = f"{type(owner).__name__} {owner.name!r} gates " + ", ".join(
            f"{g}={v:g}" for g, v in zip(gates, values)
        )
        variables = [cell.kernel, cell.recurrent_kernel]
        bias = cell.bias if getattr(cell, "use_bias", False) else None
        if bias is not None:
            variables.append(bias)
        for variable in variables:
            value = vector
            if variable is bias and len(variable.shape) == 2:
                # GRU(reset_after=True): rows are the input and the recurrent bias.
                value = np.tile(vector, (variable.shape[0], 1))
            rules.append((Paths([variable.path], label=label), value))
    return rules
