"""Check a range-test suggestion by training a few rates around it, all at once.

A range test reads a rate off a loss curve measured while the rate grows; it does not train
at any fixed rate. `verify_rates` closes that gap cheaply: it trains copies of the model at
`count` log-spaced rates around the suggestion (``rate * span ** linspace(-1, 1, count)``, one
decade either side by default) for a short budget, in one `keras_lr.sweep.parallel_fit`, and
returns the `SweepResult` (``result.best()`` names the winning rate), on every backend.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_lr._validation import check_float, check_int, fail

__all__ = ["check_verifiable", "verify_rates"]


def verify_rates(model: keras.Model, x, y, rate: float, *, count: int = 5, span: float = 10.0,
                 epochs: int = 2, batch_size: int = 32, validation_data=None, seed: int = 0):
    """Train `count` rates around `rate` in parallel from `model`'s current weights.

    Args:
        model: a compiled `keras.Sequential` (its optimizer class and settings, loss and
            weights are copied; the model itself is not changed).
        x: training inputs.
        y: training targets.
        rate: the centre rate (e.g. ``result.suggestion("valley")``), > 0.
        count: number of rates, >= 2 (odd counts include `rate` itself).
        span: the outermost rates are ``rate / span`` and ``rate * span``; > 1.
        epochs: as ``model.fit``.
        batch_size: as ``model.fit``.
        validation_data: as ``model.fit``.
        seed: the shuffling seed (``keras.utils.set_random_seed``).

    Returns:
        A `keras_lr.sweep.SweepResult`; ``best()`` ranks by ``val_loss`` when validation data
        are given, else by the training loss.

    Raises:
        ValueError: bad arguments, an uncompiled model, a layer `parallel_fit` cannot
            replicate.

    Example:
        >>> from keras_lr import data, find_lr, models
        >>> ds = data.load("digits", view="flat", limit=300)
        >>> model = models.mlp(ds.input_shape, 10, hidden=(16,))
        >>> model.compile("adam", "sparse_categorical_crossentropy")
        >>> curve = find_lr(model, ds.x_train, ds.y_train, num_steps=30)
        >>> result = verify_rates(model, ds.x_train, ds.y_train, 1e-2, count=3, epochs=1)
        >>> len(result)
        3
    """
    from keras_lr.sweep import parallel_fit

    rate = check_float("rate", rate, minimum=0.0, strict=True)
    count = check_int("count", count, minimum=2)
    span = check_float("span", span, minimum=1.0, strict=True)
    _check_compiled(model)
    rates = [float(r) for r in rate * span ** np.linspace(-1.0, 1.0, count)]
    weights = model.get_weights()

    def build():
        clone = _clone(model)
        clone.set_weights(weights)
        return clone

    optimizer = _fresh_optimizer(model)
    keras.utils.set_random_seed(check_int("seed", seed, minimum=0))
    return parallel_fit(build, rates, x, y, optimizer=optimizer, loss=model.loss,
                        epochs=epochs, batch_size=batch_size, validation_data=validation_data)


def check_verifiable(model: keras.Model) -> None:
    """Raise if `verify_rates` could not train `model`, without training anything.

    Replicates two fresh, untrained copies of the model and its optimizer the way
    `verify_rates` does (`keras_lr.sweep.replicate`, `keras_lr.sweep.replicated_optimizer`)
    and resolves its loss, so that a caller can refuse a model before a long range test
    rather than after it. The model itself is not changed.

    Raises:
        TypeError: not a compiled Keras model, or an optimizer that cannot be replicated
            (a wrapper such as ``LossScaleOptimizer``).
        ValueError: a model or layer `parallel_fit` cannot replicate (not a
            `keras.Sequential`, an unsupported layer), or a loss it cannot resolve.

    Example:
        >>> from keras_lr import models
        >>> model = models.mlp((64,), 10, hidden=(16,))
        >>> model.compile("adam", "sparse_categorical_crossentropy")
        >>> check_verifiable(model)  # no error: verify_rates can train it
    """
    from keras_lr.sweep import replicate, replicated_optimizer
    from keras_lr.sweep.metrics import resolve_loss

    _check_compiled(model)
    replicate([_clone(model), _clone(model)])
    replicated_optimizer(_fresh_optimizer(model), [1.0, 1.0])
    resolve_loss(model.loss)


def _check_compiled(model) -> None:
    if not isinstance(model, keras.Model) or getattr(model, "optimizer", None) is None:
        fail("model", "must be a compiled Keras model", model, TypeError)


def _clone(model: keras.Model) -> keras.Model:
    return type(model).from_config(model.get_config())  # uncompiled, same layers


def _fresh_optimizer(model: keras.Model):
    return type(model.optimizer).from_config(model.optimizer.get_config())
