"""`finder_range`: a learning-rate search range from the range test, for `hp_learning_rate`."""

from __future__ import annotations

from keras_lr._validation import check_float

__all__ = ["finder_range"]


def finder_range(model, x, y=None, *, method: str = "valley", decades: float = 1.0,
                 **find_lr_kwargs) -> tuple[float, float]:
    """Run the range test and return ``(min_value, max_value)`` centred on its suggestion.

    With ``s = result.suggestion(method)`` the range is ``(s / 10**decades, s * 10**decades)``:
    log-centred on the suggestion, one decade either side by default, which is where the
    range test's suggestion is usually off by a factor of a few. The model and its optimizer
    are left as they were (`find_lr` restores them).

    Args:
        model: a compiled `keras.Model` (any optimizer; see `keras_lr.find_lr`).
        x: training inputs (or a dataset), as for `keras_lr.find_lr`.
        y: training targets, as for `keras_lr.find_lr`.
        method: the suggestion rule, ``"valley"``, ``"steep"`` or ``"minimum"``.
        decades: half-width of the range in decades, > 0.
        **find_lr_kwargs: further `keras_lr.find_lr` arguments (``num_steps``,
            ``start_lr``, ``end_lr``, ``batch_size``, ``seed``, ...).

    Returns:
        ``(min_value, max_value)`` as floats, for ``hp_learning_rate(hp, min_value=...,
        max_value=...)`` or ``LRHyperModel(learning_rate=...)``.

    Raises:
        ValueError: a bad argument, or a test too short to suggest a rate (see
            `LRFinderResult.suggestion`).

    Example:

    ```python
    model = keras_lr.models.mlp(ds.input_shape, ds.num_classes)
    model.compile("adam", "sparse_categorical_crossentropy")
    low, high = finder_range(model, ds.x_train, ds.y_train, num_steps=100, seed=0)
    hypermodel = LRHyperModel("mlp", learning_rate=(low, high), ...)
    ```

    Reference:
        Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017,
        https://arxiv.org/abs/1506.01186 (section 3.3).
    """
    from keras_lr.finder import find_lr

    decades = check_float("decades", decades, minimum=0.0, strict=True)
    result = find_lr(model, x, y, **find_lr_kwargs)
    suggestion = float(result.suggestion(method))
    width = 10.0 ** decades
    return suggestion / width, suggestion * width
