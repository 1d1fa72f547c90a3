"""The coordinate check: how far each layer's activations move in the first steps, over width.

For a model of width ``n``, layer ``l`` and step ``t`` (``t`` optimizer steps done on one
fixed batch), the check records::

    change(n, l, t) = mean over the batch and units of |x_l,t - x_l,0|
    size(n, l, t)   = mean over the batch and units of |x_l,t|      (mup's ``l1``)
    slope(l, t)     = least-squares slope of log change(n, l, t) (or of log size) against log n

where ``x_l`` is the layer's output (for a softmax or sigmoid head: its logits). Under μP the
change of every layer is of the same size at every width (slopes near 0: feature learning
that neither blows up nor vanishes); under the standard parametrization with Adam the hidden
layers' and the logits' changes grow with width (the logits' about as ``n``), which is why
the best rate falls as a network widens. This is the check of Tensor Programs V (Figure 5:
"std of x_t - x_0" over width) and of mup 1.0.0's ``coord_check`` module, which the mup
authors advise running before trusting a μP model. The sizes are recorded too (mup plots
them): under μP they are flat for the hidden layers, but the logits start at about
``n**-0.5`` (μP's readout initialization) until training moves them, so the changes are
what the slopes read by default.

Example:
    >>> import keras
    >>> import numpy as np
    >>> from keras_lr import models
    >>> x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    >>> y = np.arange(32) % 3
    >>> fn = lambda w: models.mlp((8,), 3, width=w, depth=2, seed=0)
    >>> check = coord_check(fn, [16, 32, 64], x, y, keras.optimizers.Adam(1e-3), steps=2)
    >>> print(*check.layers)
    dense_0 dense_1 output:logits

Reference:
    Yang et al. 2022, "Tensor Programs V" (arXiv 2203.03466), section 9 and Figure 5;
    microsoft/mup 1.0.0 ``coord_check.py``.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_lr._validation import check_choice, check_int, check_list, fail
from keras_lr.mup.build import parametrize

__all__ = ["CoordCheck", "activations", "coord_check"]

_HEADS = ("softmax", "sigmoid")


def _is_head(layer):
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) in _HEADS


def activations(model, x):
    """Each top-level layer's output for `x`, in NumPy (a probability head: its logits).

    One eager forward pass (``training=False``). Each layer's ``call`` is wrapped for that
    pass only and restored afterwards, even when the pass fails; the model's variables are
    not touched.

    Returns:
        A dict from layer name (``"<name>:logits"`` for a softmax or sigmoid head) to array.

    Example:
        >>> import numpy as np
        >>> from keras_lr import models
        >>> model = models.mlp((8,), 3, width=4, depth=1, seed=0)
        >>> found = activations(model, np.zeros((2, 8), "float32"))
        >>> for name, value in found.items():
        ...     print(name, value.shape)
        dense_0 (2, 4)
        output:logits (2, 3)
    """
    found = {}
    wrapped = []

    def wrap(layer):
        inner = layer.call

        def call(*args, **kwargs):
            out = inner(*args, **kwargs)
            if _is_head(layer):
                activation = layer.activation
                layer.activation = keras.activations.linear
                try:
                    found[f"{layer.name}:logits"] = keras.ops.convert_to_numpy(
                        inner(*args, **kwargs))
                finally:
                    layer.activation = activation
            else:
                found[layer.name] = keras.ops.convert_to_numpy(out)
            return out

        layer.call = call  # an instance attribute: `del` restores the class's method
        wrapped.append(layer)

    try:
        for layer in model.layers:
            if not isinstance(layer, keras.layers.InputLayer):
                wrap(layer)
        model(x, training=False)
    finally:
        for layer in wrapped:
            del layer.call
    return found


class CoordCheck:
    """The result of `coord_check`: the changes per width, layer and step, and their slopes.

    Attributes:
        widths: the widths, increasing.
        steps: the number of optimizer steps.
        parametrization: ``"mup"`` or ``"standard"``.
        changes: dict from ``(layer, step)`` to a list of changes, one per width
            (``step`` from 1 to `steps`).
        sizes: dict from ``(layer, step)`` to a list of mean absolute activations, one per
            width (``step`` from 0 to `steps`).

    Example:
        >>> check = CoordCheck([16, 64], 1, "mup", {("h", 1): [0.1, 0.2]},
        ...                    {("h", 0): [1.0, 1.0], ("h", 1): [1.0, 1.0]})
        >>> round(check.slopes()["h"], 3)  # the change doubles over 4x the width
        0.5
    """

    def __init__(self, widths, steps, parametrization, changes, sizes):
        self.widths = list(widths)
        self.steps = steps
        self.parametrization = parametrization
        self.changes = changes
        self.sizes = sizes

    @property
    def layers(self):
        """The layer names, in the model's order."""
        return list(dict.fromkeys(layer for layer, _ in self.sizes))

    def slopes(self, step=None, of="change"):
        """Dict from layer to the log-log slope against width at `step`.

        Args:
            step: the step (default: the last one); ``of="size"`` also takes 0.
            of: ``"change"`` (``mean |x_t - x_0|``) or ``"size"`` (``mean |x_t|``).

        A value of exactly 0 (a layer that did not move) gives a slope of nan.
        """
        of = check_choice("of", of, ("change", "size"))
        step = self.steps if step is None else check_int(
            "step", step, minimum=1 if of == "change" else 0)
        if step > self.steps:
            fail("step", f"must be <= steps={self.steps}", step)
        table = self.changes if of == "change" else self.sizes
        logs = np.log(np.asarray(self.widths, dtype="float64"))
        out = {}
        for layer in self.layers:
            values = np.asarray(table[(layer, step)], dtype="float64")
            out[layer] = (float(np.polyfit(logs, np.log(values), 1)[0])
                          if np.all(values > 0) else float("nan"))
        return out

    def table(self):
        """A plain-text table: one row per layer and step, the change per width and the slope."""
        head = ["layer", "step", *[f"n={w}" for w in self.widths], "slope"]
        rows = []
        for step in range(1, self.steps + 1):
            slopes = self.slopes(step)
            for layer in self.layers:
                rows.append([layer, str(step),
                             *[f"{v:.3g}" for v in self.changes[(layer, step)]],
                             f"{slopes[layer]:+.3f}"])
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head, *rows]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def plot(self, path=None, ax=None):
        """Change against width (log-log), one line per layer at the last step.

        Args:
            path: optional file to save the figure to.
            ax: optional matplotlib axes to draw on.

        Returns:
            The matplotlib `Figure`.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 3.6))
        else:
            fig = ax.figure
        slopes = self.slopes()
        for layer in self.layers:
            ax.plot(self.widths, self.changes[(layer, self.steps)], marker="o",
                    label=f"{layer} (slope {slopes[layer]:+.2f})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width")
        ax.set_ylabel(f"mean |x_t - x_0| after {self.steps} steps")
        ax.set_title({"mup": "μP", "standard": "standard parametrization"}[self.parametrization])
        ax.legend(fontsize="small")
        if path is not None:
            fig.savefig(path, dpi=120, bbox_inches="tight")
        return fig


def coord_check(build_fn, widths, x, y, optimizer, *, loss="sparse_categorical_crossentropy",
                steps=3, base_width=None, parametrization="mup"):
    """Train the model at each width for `steps` steps on one batch; record each layer's change.

    Args:
        build_fn: a function of one width returning a built Keras model, the same structure
            and seed at every width (as for `keras_lr.mup.build`).
        widths: at least two distinct widths.
        x: the batch of inputs (every step trains on it; its size is the batch size).
        y: the targets.
        optimizer: a Keras optimizer, copied for every width (through its config).
        loss: the loss to compile with.
        steps: optimizer steps per width, >= 1.
        base_width: μP's base width (default: the smallest width).
        parametrization: ``"mup"`` (`keras_lr.mup.parametrize` against ``build_fn(base_width)``,
            as `keras_lr.mup.build` does) or ``"standard"`` (the models as `build_fn` makes
            them).

    Returns:
        A `CoordCheck`.

    Raises:
        ValueError: fewer than two distinct widths, a width or `steps` below 1, or an
            unknown `parametrization`.
        TypeError: `build_fn` is not callable or `optimizer` is not a Keras optimizer.

    Example:
        >>> import keras
        >>> import numpy as np
        >>> from keras_lr import models
        >>> x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
        >>> fn = lambda w: models.mlp((8,), 3, width=w, depth=2, seed=0)
        >>> check = coord_check(fn, [16, 64], x, np.arange(32) % 3,
        ...                     keras.optimizers.Adam(1e-3), steps=1)
        >>> sorted(check.slopes()) == sorted(check.layers)
        True
    """
    if not callable(build_fn):
        fail("build_fn", "must be a function of the width returning a Keras model", build_fn,
             TypeError)
    widths = sorted({check_int("widths", w, minimum=1) for w in check_list("widths", widths)})
    if len(widths) < 2:
        fail("widths", "must hold at least two distinct widths", widths)
    steps = check_int("steps", steps, minimum=1)
    parametrization = check_choice("parametrization", parametrization, ("mup", "standard"))
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        fail("optimizer", "must be a keras.optimizers.Optimizer instance", optimizer, TypeError)
    base_width = widths[0] if base_width is None else check_int("base_width", base_width,
                                                                  minimum=1)
    config = keras.saving.serialize_keras_object(optimizer)
    base = build_fn(base_width) if parametrization == "mup" else None  # only read
    changes, sizes = {}, {}
    for width in widths:
        fresh = keras.saving.deserialize_keras_object(config)
        model = build_fn(width)
        if base is not None:
            model, fresh = parametrize(model, base, fresh)
        model.compile(fresh, loss)
        start = activations(model, x)
        for name, value in start.items():
            sizes.setdefault((name, 0), []).append(float(np.mean(np.abs(value))))
        for step in range(1, steps + 1):
            model.train_on_batch(x, y)
            for name, value in activations(model, x).items():
                sizes.setdefault((name, step), []).append(float(np.mean(np.abs(value))))
                changes.setdefault((name, step), []).append(
                    float(np.mean(np.abs(value - start[name]))))
    return CoordCheck(widths, steps, parametrization, changes, sizes)
