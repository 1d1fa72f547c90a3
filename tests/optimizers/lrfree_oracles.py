"""Independent references for the learning-rate-free optimizers: the PyTorch packages.

Each problem is a small Keras model (Dense, Conv2D or LSTM-shaped) and the same function
written in PyTorch on parameters in Keras's layout (Dense kernels ``(in, out)``, Conv2D
``(h, w, in, out)``, LSTM gates i, f, c, o), so the two trajectories are independent: Keras
trains its model with `fit`, the reference package steps its torch parameters on the same
batches with gradients from torch autograd, and the weights are compared at the end.

The oracle packages (`schedulefree`, `prodigyopt`, `dadaptation`) are optional test
dependencies; tests that need one skip when it is missing.
"""

from __future__ import annotations

import keras
import numpy as np

PROBLEMS = ("dense", "conv2d", "lstm")
BATCH = 8


def _data(problem, steps, seed=0):
    rng = np.random.default_rng(seed)
    n = steps * BATCH
    shape = {"dense": (4,), "conv2d": (6, 6, 2), "lstm": (5, 3)}[problem]
    x = rng.normal(size=(n, *shape)).astype("float32")
    y = rng.normal(size=(n, 2)).astype("float32")
    return x, y


def keras_model(problem, seed=1):
    """The Keras model of `problem`, with weights drawn from `seed`."""
    keras.utils.set_random_seed(seed)
    if problem == "dense":
        layers = [keras.Input((4,)), keras.layers.Dense(8, activation="tanh"),
                  keras.layers.Dense(2)]
    elif problem == "conv2d":
        layers = [keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, activation="tanh"),
                  keras.layers.Flatten(), keras.layers.Dense(2)]
    elif problem == "lstm":
        layers = [keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)]
    else:
        raise ValueError(problem)
    model = keras.Sequential(layers)
    # Non-zero biases, so that every variable moves from the first step.
    rng = np.random.default_rng(seed + 100)
    model.set_weights([w if w.ndim > 1 else rng.normal(scale=0.1, size=w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    return model


def _torch_forward(problem, params, x):
    import torch
    import torch.nn.functional as F

    if problem == "dense":
        w1, b1, w2, b2 = params
        return torch.tanh(x @ w1 + b1) @ w2 + b2
    if problem == "conv2d":
        k, b, w2, b2 = params
        h = F.conv2d(x.permute(0, 3, 1, 2), k.permute(3, 2, 0, 1), b)
        h = torch.tanh(h).permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return h @ w2 + b2
    kernel, recurrent, bias, w2, b2 = params
    units = recurrent.shape[0]
    h = torch.zeros(x.shape[0], units)
    c = torch.zeros(x.shape[0], units)
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = (z[:, j * units:(j + 1) * units] for j in range(4))
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    return h @ w2 + b2


def train_keras(problem, optimizer, steps, *, jit_compile=False, callbacks=None, model=None):
    """Train the Keras model of `problem` for `steps` steps of batch 8 (MSE) with `fit`."""
    x, y = _data(problem, steps)
    model = model or keras_model(problem)
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=callbacks or [])
    return model


def train_torch(problem, make_optimizer, steps, *, param_groups=None, schedule=None,
                before_step=None, data=None):
    """Train the torch version of `problem` with `make_optimizer(params)`; return the optimizer
    and the parameter tensors (Keras layout, Keras's variable order).

    Args:
        param_groups: optional ``[(indices, options), ...]`` to split the parameters into
            torch param groups (each with its own options, e.g. ``{"lr": ...}``).
        schedule: optional ``schedule(step) -> lr`` assigned to every group before each step
            (times the group's ``lr_factor`` entry when present).
        before_step: optional ``callback(optimizer, step)``.
        data: optional ``(x, y)`` arrays of at least ``8 * steps`` samples.
    """
    import torch

    x, y = _data(problem, steps) if data is None else data
    weights = keras_model(problem).get_weights()
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    if param_groups is None:
        optimizer = make_optimizer(params)
    else:
        optimizer = make_optimizer(
            [dict(options, params=[params[i] for i in indices])
             for indices, options in param_groups])
    if hasattr(optimizer, "train"):
        optimizer.train()
    xt, yt = torch.tensor(x), torch.tensor(y)
    for step in range(steps):
        if schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = schedule(step) * group.get("lr_factor", 1.0)
        if before_step is not None:
            before_step(optimizer, step)
        batch = slice(step * BATCH, (step + 1) * BATCH)
        optimizer.zero_grad()
        loss = ((_torch_forward(problem, params, xt[batch]) - yt[batch]) ** 2).mean()
        loss.backward()
        optimizer.step()
    return optimizer, params


def numpy_params(params):
    return [p.detach().numpy().copy() for p in params]


def assert_close(actual, expected, rtol=1e-4, atol=1e-6):
    """Compare two lists of arrays (Keras weights and reference parameters)."""
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(np.asarray(a), e, rtol=rtol, atol=atol,
                                   err_msg=f"variable {i}")


def teacher_forced(problem, optimizer, make_optimizer, steps, *, param_groups=None,
                   schedule=None, variables=None, float64=False):
    """Step the reference on its own trajectory and feed each of its gradients to `optimizer`.

    Both optimizers see the same gradient sequence, so what is compared is the update rule
    with all its state (moments, d and its sums, z, x0) over `steps` steps, free of the
    chaotic growth a closed loop has on these problems: the reference itself, started from
    weights perturbed by 1e-7 (float32 rounding), leaves rtol 1e-4 before step 200 on them
    (Prodigy, D-Adaptation). Returns ``(keras_variables, torch_optimizer, torch_params)``,
    and with ``float64=True`` a fourth item: the parameters of a float64 copy of the reference
    stepped with the same gradients (the oracle that measures the reference's own float32
    rounding error).
    """
    import torch

    if variables is None:
        variables = list(keras_model(problem).trainable_variables)

    x, y = _data(problem, steps)
    weights = keras_model(problem).get_weights()
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    if param_groups is None:
        reference = make_optimizer(params)
    else:
        reference = make_optimizer(
            [dict(options, params=[params[i] for i in indices])
             for indices, options in param_groups])
    if hasattr(reference, "train"):
        reference.train()
    references = [reference]
    if float64:
        params64 = [torch.tensor(w.astype("float64")) for w in weights]
        references.append(make_optimizer(params64))
        if hasattr(references[1], "train"):
            references[1].train()
    xt, yt = torch.tensor(x), torch.tensor(y)
    for step in range(steps):
        if schedule is not None:
            for group in (g for r in references for g in r.param_groups):
                group["lr"] = schedule(step) * group.get("lr_factor", 1.0)
        batch = slice(step * BATCH, (step + 1) * BATCH)
        reference.zero_grad()
        loss = ((_torch_forward(problem, params, xt[batch]) - yt[batch]) ** 2).mean()
        loss.backward()
        grads = [p.grad.detach().numpy().copy() for p in params]
        reference.step()
        if float64:
            for p, g in zip(params64, grads):
                p.grad = torch.tensor(g.astype("float64"))
            references[1].step()
        optimizer.apply(grads, variables)
    if float64:
        return variables, reference, params, numpy_params(params64)
    return variables, reference, params
