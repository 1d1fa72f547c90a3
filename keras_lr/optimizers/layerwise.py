"""Layer-wise learning-rate multipliers: one optimizer, one schedule, many rates.

`LayerwiseLR` wraps any Keras optimizer and multiplies the learning rate of each variable by a
multiplier chosen by rules (a regex on `variable.path`, a layer class, a layer instance, ...):

    lr_eff(v, step) = optimizer.learning_rate(step) * lr_scale * multiplier(v)

Unlike `keras.optimizers.MultiOptimizer` (one optimizer and one schedule per group, no
`learning_rate` attribute), there is a single schedule and a single `learning_rate` property,
so `keras.callbacks.LearningRateScheduler`, `ReduceLROnPlateau` and every keras-lr schedule or
callback drive all the groups at once. This is PyTorch's `param_groups` with a shared schedule,
optax's `multi_transform` with scaled copies of one transform, and timm's layer decay.
"""

from __future__ import annotations

import collections
import dataclasses

import keras
import numpy as np

from keras_lr._validation import check_float, fail
from keras_lr.optimizers.base import LRWrapper, base_optimizer, unwrap
from keras_lr.optimizers.rules import Paths, normalize_rules, resolve_rule

__all__ = ["LayerwiseLR", "LayerwiseRow"]

LayerwiseRow = collections.namedtuple("LayerwiseRow", ["path", "shape", "multiplier", "rule"])
LayerwiseRow.__doc__ = """One row of `LayerwiseLR.describe()`: a variable and its multiplier.

Fields: `path` (str), `shape` (tuple), `multiplier` (float or NumPy array), `rule` (str, the
label of the rule that set it, or ``"default"``)."""


class _State:
    """Plain container (kept out of Keras/TF variable tracking) for the wrapper's rules."""

    def __init__(self, rules, default):
        self.rules = rules
        self.default = default
        self.model = None
        self.rows = None
        self.factors = {}


@keras.saving.register_keras_serializable(package="keras_lr")
class LayerwiseLR(LRWrapper):
    """Per-variable learning-rate multipliers on top of any Keras optimizer.

    The effective rate of variable `v` is::

        lr_eff(v, step) = optimizer.learning_rate(step) * lr_scale * multiplier(v)

    where `multiplier(v)` is the value of the **first** rule whose selector matches `v`, or
    `default`. Selectors (see `keras_lr.optimizers.rules`):

    * a string: a regular expression matched with `re.search` against `variable.path`
      (``"dense_1/"`` matches ``sequential/dense_1/kernel`` and ``.../bias``; anchor with ``^``
      and ``$`` for an exact match);
    * a layer class (`keras.layers.Conv2D`): all variables of layers of that type (needs
      `bind(model)` before training);
    * a layer or model instance: all its variables (a pretrained backbone, a new head);
    * a `keras.Variable`, or `Paths([...])` of exact variable paths.

    A value is a float >= 0 or an array broadcastable to the variable's shape (per-unit
    rates, see `gate_multipliers`). A multiplier of exactly 0 freezes the variable
    completely: no update, no weight decay, and its optimizer slots do not move.

    The multiplier scales the learning rate, not the gradient, so it is exact for Adam-type
    optimizers. Weight decay (`AdamW`, or `weight_decay=` on any optimizer) reads the same
    rate and is therefore scaled by the same multiplier, as with PyTorch param groups.
    For SGD (with momentum or Nesterov), Adam, AdamW, RMSprop, Adagrad, Adamax, Nadam, Lion
    and Lamb, `LayerwiseLR(opt(lr), {A: a, B: b})` updates each variable exactly as a separate
    `opt(lr * a)` / `opt(lr * b)` would (`MultiOptimizer`), because their update is linear in
    the rate (Lamb's trust ratio does not depend on it; Nadam's momentum product is shared per
    step). Results are bit-identical when `lr * a` is exact in float32 (e.g. power-of-two
    multipliers) and otherwise differ by the rounding of that product.

    Rules are resolved against the trained variables at `build` (the first training step);
    resolution fails with a `ValueError` if a rule matches no variable, or if an array cannot
    broadcast to its variable. The resolved rules (classes and layers replaced by the exact
    variable paths) are what `get_config` stores, so a saved model loads without the code that
    built the rules.

    Args:
        optimizer: a `keras.optimizers.Optimizer` instance (a plain optimizer or a keras-lr
            wrapper such as `GradientGuard`, but not another `LayerwiseLR`). Put
            `LossScaleOptimizer` outside: `LossScaleOptimizer(LayerwiseLR(...))`.
        multipliers: an ordered list of ``(selector, value)`` pairs, or a dict
            ``{selector: value}``. First matching rule wins.
        default: float >= 0, the multiplier of variables no rule matches. Default 1.0; use
            0.0 to train only the selected variables.
        name: optional name of the wrapper.

    Example:

    ```python
    opt = keras_lr.optimizers.LayerwiseLR(
        keras.optimizers.AdamW(keras_lr.schedules.CosineDecay(1e-3, 1000)),
        [(keras.layers.Conv2D, 0.5), ("head/", 2.0)],
    ).bind(model)                       # needed here because a layer class is used
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1)
    opt.describe()                      # path, shape, multiplier, rule
    ```
    """

    def __init__(self, optimizer, multipliers, default=1.0, name=None, **kwargs):
        for inner in unwrap(optimizer):
            if isinstance(inner, LayerwiseLR):
                raise ValueError(
                    "LayerwiseLR cannot wrap another LayerwiseLR; put all rules in one "
                    f"LayerwiseLR instead. Received: optimizer={optimizer!r}"
                )
        rules = normalize_rules(multipliers)
        default = check_float("default", default, minimum=0.0)
        super().__init__(optimizer, name=name, **kwargs)
        self._state = _State(rules, default)
        self._hook.providers.append(self._factor)

    @property
    def default(self):
        """The multiplier of the variables that no rule matches."""
        return self._state.default

    # ------------------------------------------------------------------ binding and resolving
    def bind(self, model):
        """Resolve layer-class and layer-instance selectors against `model`; return self.

        Needed before training when a rule selects layers by class. Binding also lets
        `describe()` work before the first training step.
        """
        if not isinstance(model, keras.layers.Layer):
            fail("model", "must be a Keras model or layer", model, TypeError)
        self._state.model = model
        self._state.rules = [resolve_rule(rule, model) for rule in self._state.rules]
        return self

    def _resolved_rules(self):
        rules = [resolve_rule(rule, self._state.model) for rule in self._state.rules]
        for rule in rules:
            if rule.resolved:
                continue
            if isinstance(rule.selector, type):
                raise ValueError(
                    f"The rule {rule.label!r} selects layers by class, which needs the model: "
                    "call `optimizer.bind(model)` (it returns the optimizer) before training, "
                    "saving or describe()."
                )
            raise ValueError(
                f"The rule {rule.label!r} selects a layer that is not built yet; build the "
                "model (or call it on data) before training, saving or describe()."
            )
        self._state.rules = rules
        return rules

    def _rows(self, variables):
        paths = [v.path for v in variables]
        rules = [
            dataclasses.replace(rule, selector=rule.selector.align(paths))
            if isinstance(rule.selector, Paths) else rule
            for rule in self._resolved_rules()
        ]
        self._state.rules = rules
        if rules:
            seen = collections.Counter(paths)
            duplicated = sorted(p for p, n in seen.items() if n > 1)
            if duplicated:
                raise ValueError(
                    "LayerwiseLR needs unique variable paths, but these appear more than "
                    f"once: {duplicated}. Give the layers unique names."
                )
        used = [False] * len(rules)
        rows = []
        for variable, path in zip(variables, paths):
            shape = tuple(variable.shape)
            chosen = None
            for index, rule in enumerate(rules):
                if rule.matches(path):
                    used[index] = True
                    if chosen is None:
                        chosen = rule
            if chosen is None:
                rows.append(LayerwiseRow(path, shape, self._state.default, "default"))
                continue
            value = chosen.value
            if isinstance(value, np.ndarray):
                try:
                    fits = np.broadcast_shapes(value.shape, shape) == shape
                except ValueError:
                    fits = False
                if not fits:
                    raise ValueError(
                        f"The multiplier array of rule {chosen.label!r} has shape "
                        f"{value.shape}, which does not broadcast to the shape {shape} of "
                        f"variable {path!r}."
                    )
            rows.append(LayerwiseRow(path, shape, value, chosen.label))
        unused = [rule.label for rule, hit in zip(rules, used) if not hit]
        if unused:
            raise ValueError(
                f"LayerwiseLR rule(s) {unused} match no trainable variable. The variable "
                f"paths are: {paths}"
            )
        return rows

    def build(self, var_list):
        rows = self._rows(var_list)
        key = base_optimizer(self)._var_key
        factors = {}
        for variable, row in zip(var_list, rows):
            factor = _as_factor(row.multiplier)
            if factor is not None:
                factors[key(variable)] = factor
        self._state.rows = rows
        self._state.factors = factors
        super().build(var_list)

    def _factor(self, variable):
        """Hook provider: the static factor of `variable` (None means 1)."""
        factors = self._state.factors
        if not factors:
            return None
        return factors.get(base_optimizer(self)._var_key(variable))

    # ------------------------------------------------------------------ reporting
    def describe(self, print_fn=print):
        """Return (and print) the table of variable path, shape, multiplier and rule.

        Works after the first training step (or `build`), or before it once `bind(model)`
        was called.

        Args:
            print_fn: function called with the formatted table; None to print nothing.

        Returns:
            A list of `LayerwiseRow(path, shape, multiplier, rule)`.
        """
        rows = self._state.rows
        if rows is None:
            if self._state.model is None:
                raise ValueError(
                    "LayerwiseLR.describe() needs the variables: call it after training "
                    "starts, or call `bind(model)` first."
                )
            rows = self._rows(self._state.model.trainable_variables)
        if print_fn is not None:
            print_fn(format_table(rows))
        return rows

    # ------------------------------------------------------------------ serialization
    def get_config(self):
        config = super().get_config()
        multipliers = []
        for rule in self._resolved_rules():
            if isinstance(rule.selector, Paths):
                selector = keras.saving.serialize_keras_object(rule.selector)
            else:
                selector = rule.selector.pattern
            value = rule.value.tolist() if isinstance(rule.value, np.ndarray) else rule.value
            multipliers.append([selector, value])
        config["multipliers"] = multipliers
        config["default"] = self._state.default
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        multipliers = []
        for selector, value in config.get("multipliers", []):
            if isinstance(selector, dict):
                selector = keras.saving.deserialize_keras_object(
                    selector, custom_objects=custom_objects
                )
            if isinstance(value, list):
                value = np.asarray(value, dtype="float32")
            multipliers.append((selector, value))
        config["multipliers"] = multipliers
        return super().from_config(config, custom_objects=custom_objects)


def _as_factor(multiplier):
    """The hook factor: None for 1, a Python float (0.0 freezes), or a float32 array."""
    if isinstance(multiplier, np.ndarray):
        if np.all(multiplier == 0):
            return 0.0
        if np.all(multiplier == 1):
            return None
        return multiplier
    return None if multiplier == 1.0 else float(multiplier)


def _format_multiplier(value):
    if isinstance(value, np.ndarray):
        return f"array{value.shape} {value.min():.4g}..{value.max():.4g}"
    return f"{value:.4g}"


def format_table(rows):
    """Format `LayerwiseRow`s as a plain aligned text table."""
    header = ("variable", "shape", "multiplier", "rule")
    lines = [
        (row.path, str(row.shape), _format_multiplier(row.multiplier), row.rule) for row in rows
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    out = [
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip()
        for line in [header, tuple("-" * w for w in widths), *lines]
    ]
    return "\n".join(out)
