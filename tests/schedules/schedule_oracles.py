"""Independent references for the schedule tests.

NumPy/Python formulas written from the papers and library definitions (never by calling
keras_lr), plus a helper that steps a real ``torch.optim.lr_scheduler`` the way PyTorch users
do (``optimizer.step(); scheduler.step()`` once per batch) and records the rate of each update.
Step arithmetic uses Python integers, so large steps are exact.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np


def _grid(steps):
    """An int N means range(N); otherwise the given steps (as Python ints)."""
    if isinstance(steps, int):
        return list(range(steps))
    return [int(s) for s in np.asarray(steps).ravel()]


def step_decay(lr, step_size, gamma, steps):
    return np.array([lr * gamma ** (t // step_size) for t in _grid(steps)])


def multistep_decay(lr, milestones, gamma, steps):
    return np.array([lr * gamma ** sum(t >= m for m in milestones) for t in _grid(steps)])


def exponential_decay(lr, gamma, steps):
    return np.array([lr * gamma**t for t in _grid(steps)])


def polynomial_decay(lr, decay_steps, end, power, steps):
    return np.array(
        [(lr - end) * (1 - min(t, decay_steps) / decay_steps) ** power + end for t in _grid(steps)]
    )


def cosine_decay(lr, decay_steps, floor, steps):
    """SGDR eq. 5 for a single cycle, held at the floor after it."""
    out = []
    for t in _grid(steps):
        t = min(t, decay_steps)
        out.append(floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * t / decay_steps)))
    return np.array(out)


def sgdr(lr, first, mult, peak_decay, floor, steps):
    """Walk the cycles one by one (integer cycle lengths when `mult` is an integer)."""
    out = []
    for t in _grid(steps):
        if mult == 1:
            i, start, length = t // first, (t // first) * first, first
        else:
            i, start, length = 0, 0, first
            while t >= start + length:
                start += length
                length *= mult
                i += 1
        amplitude = (lr - floor) * peak_decay**i
        out.append(floor + 0.5 * amplitude * (1 + math.cos(math.pi * (t - start) / length)))
    return np.array(out)


def inverse_sqrt(lr, timescale, steps):
    """T5: 1/sqrt(max(t, k)), scaled to `lr` on the plateau."""
    return np.array([lr * math.sqrt(timescale) / math.sqrt(max(t, timescale)) for t in _grid(steps)])


def piecewise_linear(boundaries, values, steps):
    steps = range(steps) if isinstance(steps, int) else steps
    return np.interp(np.asarray(steps, dtype=np.float64), boundaries, values)


def cyclical_symmetric(base, top, step_size, steps, mode="triangular", gamma=1.0):
    """Smith (2017), section 3.1: the triangular policy with equal half cycles.

    Exact rational arithmetic, so the phase is right at 1e10 steps.
    """
    out = []
    for t in _grid(steps):
        cycle = math.floor(1 + Fraction(t, 2 * step_size))
        x = abs(Fraction(t, step_size) - 2 * cycle + 1)
        if mode == "triangular":
            scale = 1.0
        elif mode == "triangular2":
            scale = 0.5 ** (cycle - 1)
        else:
            scale = gamma**t
        out.append(base + (top - base) * max(0.0, float(1 - x)) * scale)
    return np.array(out)


def wsd(peak, warmup, stable, decay, shape, floor, steps, warmup_from_floor=False):
    """Hugging Face ``get_wsd_schedule`` written out with min_lr_ratio = floor / peak.

    Releases before ``warmup_type`` existed ramp from 0; later ones (``warmup_from_floor``)
    ramp from the floor: ``factor * (1 - ratio) + ratio``.
    """
    ratio = floor / peak
    out = []
    for t in _grid(steps):
        if t < warmup:
            factor = t / max(1, warmup)
            if warmup_from_floor:
                factor = factor * (1 - ratio) + ratio
        elif t < warmup + stable:
            factor = 1.0
        elif t < warmup + stable + decay:
            p = (t - warmup - stable) / max(1, decay)
            value = {
                "linear": 1 - p,
                "cosine": 0.5 * (1 + math.cos(math.pi * p)),
                "1-sqrt": 1 - math.sqrt(p),
            }[shape]
            factor = (1 - ratio) * max(0.0, value) + ratio
        else:
            factor = ratio
        out.append(peak * factor)
    return np.array(out)


def warmup(inner_values, warmup_steps, start, shape, steps):
    """`inner_values(array_of_steps)` gives the wrapped schedule's values."""
    target = float(inner_values(np.array([0]))[0])
    out = []
    for t in _grid(steps):
        if t >= warmup_steps:
            out.append(float(inner_values(np.array([t - warmup_steps]))[0]))
            continue
        f = t / warmup_steps
        if shape == "linear":
            out.append(start + (target - start) * f)
        elif shape == "cosine":
            out.append(start + (target - start) * (1 - math.cos(math.pi * f)) / 2)
        else:
            out.append(start * (target / start) ** f)
    return np.array(out)


def join(inner_values_list, boundaries, steps):
    """optax ``join_schedules``: schedule i sees step - boundaries[i - 1]."""
    out = []
    for t in _grid(steps):
        i = sum(t >= b for b in boundaries)
        offset = boundaries[i - 1] if i else 0
        out.append(float(inner_values_list[i](np.array([t - offset]))[0]))
    return np.array(out)


def torch_lrs(make_scheduler, n_steps, lr):
    """Learning rates of the first `n_steps` updates of a torch scheduler stepped per batch.

    `make_scheduler(optimizer)` builds the scheduler on an SGD optimizer created with `lr`.
    """
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(optimizer)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_steps):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    return np.array(out, dtype=np.float64)
