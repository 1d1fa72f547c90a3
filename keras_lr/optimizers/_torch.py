"""The torch backend's one special case: Keras's fused optimizers skip `update_step`.

On torch, `keras.optimizers.Adam(...)` (and SGD, AdamW, RMSprop, Adagrad, Adadelta, Adamax,
Nadam, Lion: exactly those classes) is built as a fused subclass whose `_backend_update_step`
updates every variable at once with one scalar rate (`torch._foreach_*`) and never calls
`update_step`, where per-variable rates apply. `grouped_update_step` keeps the fused kernels:
it calls them once per group of variables that share a scalar factor, with the rate times
that factor, which is exactly what `keras.optimizers.MultiOptimizer` with one fused optimizer
per group computes. Array factors (per-unit rates) take the per-variable `update_step`. Fused
Nadam advances its momentum product inside the fused call, so it cannot be called per group:
it takes the per-variable path of its Keras class for all variables.
"""

from __future__ import annotations

from keras import ops

__all__ = ["grouped_update_step"]


def grouped_update_step(optimizer, factor):
    """A `_backend_update_step` for a fused torch optimizer that applies per-variable factors.

    Args:
        optimizer: a plain Keras optimizer instance on the torch backend.
        factor: ``factor(variable)``: None (1), a Python float (0.0 freezes) or an array.

    Returns:
        A callable ``(grads, variables, learning_rate)``, or None when `optimizer` is not one
        of the fused classes (its own `_backend_update_step` then calls `update_step`).
    """
    import torch
    from keras.src import optimizers
    from keras.src.backend.torch.optimizers.torch_parallel_optimizer import (
        TorchParallelOptimizer,
    )

    if not isinstance(optimizer, TorchParallelOptimizer):
        return None
    # The Keras class's own path: `update_step` per variable (Nadam: the product once first).
    per_variable = super(TorchParallelOptimizer, optimizer)._backend_update_step
    groupable = not isinstance(optimizer, optimizers.Nadam)

    def update(grads, trainable_variables, learning_rate):
        groups = {}
        singles = []
        for grad, variable in zip(grads, trainable_variables):
            value = factor(variable)
            if isinstance(value, float) and value == 0.0:
                continue  # frozen: no update and no slot drift
            if groupable and (value is None or isinstance(value, float)):
                key = 1.0 if value is None else value
                group = groups.setdefault(key, ([], []))
                group[0].append(grad)
                group[1].append(variable)
            else:
                singles.append((grad, variable))
        with torch.no_grad():
            for key, (group_grads, group_variables) in groups.items():
                rate = learning_rate if key == 1.0 else ops.multiply(
                    ops.cast(learning_rate, "float32"), ops.cast(key, "float32"))
                optimizer._parallel_update_step(group_grads, group_variables, rate)
            if singles:
                # `update_step` is the hooked one: it applies each variable's factor.
                per_variable([g for g, _ in singles], [v for _, v in singles], learning_rate)

    return update
