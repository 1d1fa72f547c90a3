"""`find_lr`: the learning-rate range test for a compiled Keras model.

The model trains for `num_steps` batches while the rate grows exponentially from `start_lr` to
`end_lr`; the loss of each batch is recorded against its rate. The loss first barely moves
(rate too small), then falls, then blows up (rate too large); a good rate sits on the falling
part (see `LRFinderResult.suggestion`).

How it runs: the batches are planned in NumPy (`finder.data`), the same on every backend;
the steps run in compiled chunks where the backend can (TensorFlow: a `tf.while_loop` in one
`tf.function`; JAX: jitted blocks of `steps_per_execution` steps over the stateless train
step), one by one on PyTorch, each step setting the rate, resetting the model's metrics and calling
``model.train_step`` (see `finder.loop`). The model's cached ``train_function`` is never
touched and stays valid. The loop is cached on the model (a plain attribute, never saved) and
built again only when the model is recompiled or its optimizer changes, so repeated range tests
pay the tracing once, like ``model.fit``.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_lr._validation import check_float, check_int, fail
from keras_lr.finder.data import batches
from keras_lr.finder.loop import make_loop
from keras_lr.finder.result import LRFinderResult

__all__ = ["find_lr", "range_test_rates"]

def range_test_rates(start_lr: float, end_lr: float, num_steps: int) -> np.ndarray:
    """The rates of a range test: ``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``.

    Example:

    >>> range_test_rates(1e-3, 1e-1, 3)
    array([0.001, 0.01 , 0.1  ])
    """
    i = np.arange(num_steps, dtype=np.float64)
    return start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))


def find_lr(
    model,
    x,
    y=None,
    *,
    batch_size: int = 32,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    smoothing: float = 0.98,
    stop_factor: float = 4.0,
    restore: bool = True,
    shuffle: bool = True,
    seed: int | None = None,
    steps_per_chunk: int = 50,
) -> LRFinderResult:
    """Run a learning-rate range test (Smith 2017; fastai's ``lr_find``) on a compiled model.

    Step ``i`` (``0 <= i < num_steps``) trains on one batch with the rate::

        lr_i = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))

    and records the batch loss ``loss_i`` (as ``model.fit`` logs it, regularization included)
    and the debiased exponential moving average::

        avg_i = smoothing * avg_{i-1} + (1 - smoothing) * loss_i      (avg_{-1} = 0)
        smoothed_i = avg_i / (1 - smoothing ** (i + 1))

    The test stops after step ``i`` when ``smoothed_i > stop_factor * min(smoothed_0..i)``
    (``stop_reason="diverged"``, step ``i`` is kept; only checked while the best smoothed loss
    is positive) or just before the first NaN/inf loss (``"non-finite"``). The data is cycled
    if it has fewer than `num_steps` batches.

    Any Keras optimizer works, including keras-lr's wrappers (`LayerwiseLR`, `GradientGuard`,
    `LRWrapper`) and `keras.optimizers.LossScaleOptimizer`: the rate of the innermost plain
    optimizer is driven; per-variable multipliers and keras-lr's `lr_scale` still apply on top,
    as they do in training, so the reported rates are base rates. `MultiOptimizer` is refused
    (it has no single rate).

    With ``restore=True`` (the default) the model's variables (weights, non-trainable state,
    seed-generator state), its metrics' variables and *all* the optimizer's variables (slots,
    iterations, wrapper variables, loss scale) are put back bit for bit afterwards, also when the
    test is interrupted by an exception or ``KeyboardInterrupt``. The optimizer's rate (its
    variable's value, or its schedule object) is always put back, whatever `restore` says. A
    model or optimizer that was not built yet is built first (as ``model.fit`` would: optimizer
    slots at zero, ``iterations == 0``) and is restored to that freshly built state.

    Args:
        model: a compiled `keras.Model` (``model.compile(optimizer, loss)`` called).
        x: input arrays (or a dict/tuple of them), or a batched `tf.data.Dataset` yielding
            ``(x, y)`` or ``(x, y, sample_weight)``.
        y: target arrays; None when `x` is a dataset.
        batch_size: batch size for array inputs (ignored for datasets, as in ``model.fit``).
        start_lr: first rate, > 0.
        end_lr: last rate, > `start_lr`.
        num_steps: number of steps (rates), >= 10.
        smoothing: EMA coefficient ``b`` of the smoothed loss, in [0, 1); 0 disables smoothing.
        stop_factor: stop once the smoothed loss exceeds this multiple of its best, > 1.
        restore: put the model and optimizer state back afterwards (see above). With False the
            model keeps the state reached at the last step run.
        shuffle: shuffle array inputs (a NumPy permutation per pass over the data, the same
            on every backend).
        seed: shuffle seed for array inputs (``numpy.random.default_rng(seed)``).
        steps_per_chunk: steps run per compiled call (TensorFlow, jit-compiled JAX); the host
            reads the losses once per call. PyTorch runs and reads one step at a time.

    Returns:
        An `LRFinderResult` (rates, losses, smoothed losses, stop reason, suggestions, plot).

    Raises:
        TypeError: `model` is not a Keras model, or the optimizer has no single rate.
        ValueError: a bad argument, an uncompiled model, empty data, a backend other than
            TensorFlow, JAX and PyTorch.

    Example:

    ```python
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    result = keras_lr.find_lr(model, x_train, y_train, num_steps=100)
    lr = result.suggestion()          # fastai's "valley"
    result.plot(path="lr_find.png")
    ```

    Reference:
        Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017,
        https://arxiv.org/abs/1506.01186 (section 3.3, "How can one estimate reasonable
        minimum and maximum boundary values?").
    """
    _check_model(model)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    start_lr = check_float("start_lr", start_lr, minimum=0.0, strict=True)
    end_lr = check_float("end_lr", end_lr, minimum=0.0, strict=True)
    if not end_lr > start_lr:
        raise ValueError(
            "Argument `end_lr` must be > `start_lr`. "
            f"Received: start_lr={start_lr!r}, end_lr={end_lr!r}"
        )
    num_steps = check_int("num_steps", num_steps, minimum=10)
    smoothing = check_float("smoothing", smoothing, minimum=0.0)
    if not smoothing < 1.0:
        fail("smoothing", "must be < 1", smoothing)
    stop_factor = check_float("stop_factor", stop_factor, minimum=1.0, strict=True)
    steps_per_chunk = check_int("steps_per_chunk", steps_per_chunk, minimum=1)
    if seed is not None:
        seed = check_int("seed", seed)
    inner = _innermost_optimizer(model.optimizer)

    stream = batches(x, y, batch_size, shuffle, seed, num_steps)
    _build(model, stream.first())

    rates = range_test_rates(start_lr, end_lr, num_steps)
    loop = make_loop(model, inner)
    saved = loop.save()
    try:
        with loop.driving():
            losses, smoothed, reason = loop.run(
                stream, rates, smoothing, stop_factor, steps_per_chunk, exact=not restore
            )
    finally:
        loop.finish(saved if restore else None)

    return LRFinderResult(
        learning_rates=rates[: len(losses)],
        losses=losses,
        smoothed_losses=smoothed,
        stop_reason=reason,
        num_steps=num_steps,
        start_lr=start_lr,
        end_lr=end_lr,
        smoothing=smoothing,
        stop_factor=stop_factor,
    )


# ---------------------------------------------------------------------- checks and set-up
def _check_model(model):
    if not isinstance(model, keras.Model):
        fail("model", "must be a `keras.Model`", model, TypeError)
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            "Argument `model` must be compiled with an optimizer and a loss: call "
            f"`model.compile(optimizer=..., loss=...)` first. Received: model={model.name!r}"
        )


def _innermost_optimizer(optimizer):
    """Follow `inner_optimizer` (keras-lr wrappers, LossScaleOptimizer) to the plain optimizer."""
    multi = getattr(keras.optimizers, "MultiOptimizer", None)
    seen = 0
    while True:
        if multi is not None and isinstance(optimizer, multi):
            raise TypeError(
                "find_lr drives one learning rate; a `MultiOptimizer` has one per group. Use "
                "`keras_lr.optimizers.LayerwiseLR` (one rate times per-layer multipliers) "
                f"instead. Received: optimizer={optimizer!r}"
            )
        inner = getattr(optimizer, "inner_optimizer", None)
        if inner is None or seen > 32:
            break
        optimizer, seen = inner, seen + 1
    if not hasattr(optimizer, "_learning_rate"):
        raise TypeError(
            "find_lr needs an optimizer whose innermost optimizer is a Keras optimizer "
            f"holding a learning rate. Received: optimizer={optimizer!r}"
        )
    return optimizer


def _build(model, batch):
    """Build the model, its compiled metrics/loss and its optimizer as `model.fit` would.

    `batch` is the first batch: Keras builds from its shapes and dtypes only.
    """
    symbolic_build = getattr(model, "_symbolic_build", None)
    if symbolic_build is not None:
        symbolic_build(data_batch=batch)
    elif not model.optimizer.built:  # pragma: no cover - older Keras
        model.optimizer.build(model.trainable_variables)
