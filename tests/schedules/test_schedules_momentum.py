"""`OneCycleMomentum` and `CyclicalMomentum` against the momentum PyTorch's schedulers set.

PyTorch's ``OneCycleLR`` and ``CyclicLR`` with ``cycle_momentum=True`` write the momentum
into ``param_groups[i]["momentum"]`` (SGD) or ``["betas"][0]`` (Adam); the oracle reads it
before every ``optimizer.step()``, stepped once per batch as in the porting guide.
"""

import warnings

import numpy as np
import pytest
from backend_utils import schedule_atol

from keras_lr import schedules as S

RTOL, ATOL = 1e-6, 1e-7


def torch_momenta(make_scheduler, n_steps, optimizer="sgd"):
    """(rates, momenta) of the first `n_steps` updates under a torch scheduler."""
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    if optimizer == "sgd":
        opt = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    else:
        opt = torch.optim.Adam([param], lr=0.1)
    scheduler = make_scheduler(torch.optim.lr_scheduler, opt)
    rates, momenta = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n_steps):
            group = opt.param_groups[0]
            rates.append(group["lr"])
            momenta.append(group["momentum"] if optimizer == "sgd" else group["betas"][0])
            opt.step()
            scheduler.step()
    return np.array(rates), np.array(momenta)


@pytest.mark.torch
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("total, pct", [(50, 0.3), (37, 0.4)])
def test_one_cycle_momentum_matches_torch(optimizer, anneal, three_phase, total, pct):
    def make(sched, o):
        return sched.OneCycleLR(
            o, max_lr=0.5, total_steps=total, pct_start=pct, anneal_strategy=anneal,
            three_phase=three_phase, cycle_momentum=True, base_momentum=0.85,
            max_momentum=0.95,
        )

    rates, momenta = torch_momenta(make, total, optimizer)
    lr = S.OneCycle(0.5, total, pct, anneal, three_phase=three_phase)
    momentum = lr.momentum_schedule()  # PyTorch's defaults, 0.85 and 0.95
    assert isinstance(momentum, S.OneCycleMomentum)
    np.testing.assert_allclose(S.values(momentum, total), momenta, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(S.values(lr, total), rates, rtol=1e-5, atol=schedule_atol(0.5))
    # inverse to the rate: the momentum is lowest where the rate peaks
    assert np.argmin(momenta) == np.argmax(rates)
    # after total_steps the last momentum is held
    np.testing.assert_allclose(S.values(momentum, [total, 10**9]), 0.95, rtol=RTOL)


@pytest.mark.torch
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
@pytest.mark.parametrize("up, down", [(5, 3), (4, None)])
def test_cyclical_momentum_matches_torch(optimizer, mode, up, down):
    def make(sched, o):
        return sched.CyclicLR(
            o, 0.01, 0.1, step_size_up=up, step_size_down=down, mode=mode, gamma=0.97,
            cycle_momentum=True, base_momentum=0.8, max_momentum=0.9,
        )

    rates, momenta = torch_momenta(make, 60, optimizer)
    lr = S.CyclicalLR(0.01, 0.1, up, down, mode=mode, gamma=0.97)
    momentum = lr.momentum_schedule()  # PyTorch's defaults, 0.8 and 0.9
    assert isinstance(momentum, S.CyclicalMomentum)
    np.testing.assert_allclose(S.values(momentum, 60), momenta, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(S.values(lr, 60), rates, rtol=1e-5)


def test_momentum_schedules_written_out():
    # OneCycle: 0.95 at 0, 0.85 at the peak (step P - 1 = 2), back to 0.95 at T - 1 = 9
    m = S.values(S.OneCycleMomentum(10, 0.3, "linear", base_momentum=0.85, max_momentum=0.95), 11)
    np.testing.assert_allclose(m[[0, 1, 2, 9, 10]], [0.95, 0.90, 0.85, 0.95, 0.95], rtol=1e-6)
    three = S.values(S.OneCycleMomentum(10, 0.3, "linear", three_phase=True), 10)
    np.testing.assert_allclose(three[[0, 2, 4, 5, 9]], [0.95, 0.85, 0.95, 0.95, 0.95], rtol=1e-6)
    # Cyclical: max at the bottom of the rate, base at its top, halved swing in triangular2
    c = S.values(S.CyclicalMomentum(2, mode="triangular2", base_momentum=0.8, max_momentum=0.9), 9)
    np.testing.assert_allclose(c, [0.9, 0.85, 0.8, 0.85, 0.9, 0.875, 0.85, 0.875, 0.9], rtol=1e-6)


def test_momentum_schedule_of_a_rate_schedule_keeps_its_layout():
    lr = S.OneCycle(0.1, 40, 0.25, "linear", three_phase=True)
    m = lr.momentum_schedule(0.8, 0.9)
    assert m.get_config() == {
        "total_steps": 40, "pct_start": 0.25, "anneal": "linear", "three_phase": True,
        "base_momentum": 0.8, "max_momentum": 0.9,
    }
    c = S.CyclicalLR(0.1, 0.2, 3, 5, "exp_range", 0.9).momentum_schedule(0.7, 0.95)
    assert c.get_config() == {
        "step_size_up": 3, "step_size_down": 5, "mode": "exp_range", "gamma": 0.9,
        "base_momentum": 0.7, "max_momentum": 0.95,
    }
