"""Repeated milestones and products of schedules against PyTorch's own scheduler tests.

The configurations (and their closed-form targets) are those of PyTorch's
``test/optim/test_lrscheduler.py``: ``test_chained_lr*`` (``ChainedScheduler``) and the
``test_compound_*`` tests, which step several schedulers on one optimizer. Each is replayed
with ``torch.optim.lr_scheduler`` itself (wrapped in ``ChainedScheduler``) and checked against
the test's own closed-form targets, then against the keras-lr `Product` that ports it.
"""

import math

import keras
import numpy as np
import pytest
import schedule_oracles as oracles

from keras_lr import schedules as S

RTOL, ATOL = 1e-5, 1e-12
LR = 0.05  # the rate of PyTorch's test optimizer (its first param group)


@pytest.fixture(scope="module")
def sched():
    torch = pytest.importorskip("torch")
    return torch.optim.lr_scheduler


def close(schedule, reference, steps):
    np.testing.assert_allclose(S.values(schedule, steps), reference, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- repeated milestones


@pytest.mark.torch
@pytest.mark.parametrize(
    "milestones", [[2, 5, 5, 9], [0, 0, 3], [4, 4, 4], [1, 2, 2, 3, 3, 3, 10]]
)
def test_repeated_milestones_match_torch_multisteplr(sched, milestones):
    ref = oracles.torch_lrs(lambda o: sched.MultiStepLR(o, milestones, gamma=0.1), 14, LR)
    close(S.MultiStepDecay(LR, milestones, gamma=0.1), ref, 14)


def test_repeated_milestone_applies_gamma_once_per_listing():
    lrs = S.values(S.MultiStepDecay(0.05, [2, 5, 5, 9], 0.1), 11)
    expected = [0.05, 0.05, 0.005, 0.005, 0.005, 5e-5, 5e-5, 5e-5, 5e-5, 5e-6, 5e-6]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)
    # the numbers of the issue, per epoch as PyTorch users step it
    per_epoch = S.PerEpoch(S.MultiStepDecay(0.05, [2, 5, 5, 9], 0.1), steps_per_epoch=3)
    np.testing.assert_allclose(S.values(per_epoch, 33), np.repeat(expected, 3), rtol=1e-6)


# ---------------------------------------------------------------- products vs ChainedScheduler


def _cos(t, epochs=10, eta_min=1e-10):
    return eta_min + (LR - eta_min) * (1 + math.cos(math.pi * t / epochs)) / 2


def _linear_factor(i, iters=4, start=0.4, end=1.0):
    return start + min(i, iters) / iters * (end - start)


# name: (torch schedulers on an optimizer, keras-lr port, closed-form targets of the test)
CASES = {
    "chained_lr3": (
        lambda s, o: [s.LinearLR(o, start_factor=0.4, total_iters=3),
                      s.MultiStepLR(o, milestones=[4, 8, 10], gamma=0.1)],
        S.Product([S.LinearDecay(LR * 0.4, 3, LR), S.MultiStepDecay(1.0, [4, 8, 10], 0.1)]),
        [0.02, 0.03, 0.04, 0.05] + [0.005] * 4 + [0.0005] * 2,
    ),
    "chained_lr4": (
        lambda s, o: [s.ExponentialLR(o, gamma=0.9), s.ConstantLR(o, factor=0.2, total_iters=4),
                      s.StepLR(o, gamma=0.1, step_size=3)],
        S.Product([S.ExponentialDecay(LR, 0.9), S.Sequence([0.2, 1.0], [4]),
                   S.StepDecay(1.0, 3, 0.1)]),
        [LR * 0.2 * 0.9**x for x in range(3)] + [LR * 0.2 * 0.9**3 * 0.1]
        + [LR * 0.9**x * 0.1 for x in range(4, 6)] + [LR * 0.9**x * 0.01 for x in range(6, 9)],
    ),
    "chained_lr5": (
        lambda s, o: [s.PolynomialLR(o, power=0.9, total_iters=5), s.ConstantLR(o, factor=0.1)],
        S.Product([S.PolynomialDecay(LR, 5, power=0.9), S.Sequence([0.1, 1.0], [5])]),
        [0.1 * LR * (1 - x / 5) ** 0.9 for x in range(5)] + [0.0] * 5,
    ),
    "compound_step_and_multistep_lr": (
        lambda s, o: [s.StepLR(o, gamma=0.1, step_size=3),
                      s.MultiStepLR(o, gamma=0.1, milestones=[2, 5, 9])],
        S.Product([S.StepDecay(LR, 3, 0.1), S.MultiStepDecay(1.0, [2, 5, 9], 0.1)]),
        [0.05] * 2 + [0.005] + [5e-4] * 2 + [5e-5] + [5e-6] * 3 + [5e-8],
    ),
    "compound_step_and_exp_lr": (
        lambda s, o: [s.StepLR(o, gamma=0.1, step_size=3), s.ExponentialLR(o, gamma=0.9)],
        S.Product([S.StepDecay(LR, 3, 0.1), S.ExponentialDecay(1.0, 0.9)]),
        [LR * 0.1 ** (x // 3) * 0.9**x for x in range(10)],
    ),
    "compound_exp_and_multistep_lr": (
        lambda s, o: [s.MultiStepLR(o, gamma=0.1, milestones=[2, 5, 9]),
                      s.ExponentialLR(o, gamma=0.9)],
        S.Product([S.MultiStepDecay(LR, [2, 5, 9], 0.1), S.ExponentialDecay(1.0, 0.9)]),
        [LR * 0.9**x * 0.1 ** sum(x >= m for m in (2, 5, 9)) for x in range(10)],
    ),
    "compound_exp_and_linearlr": (
        lambda s, o: [s.LinearLR(o, start_factor=0.4, end_factor=0.9, total_iters=4),
                      s.ExponentialLR(o, gamma=0.9)],
        S.Product([S.ExponentialDecay(LR, 0.9), S.LinearDecay(0.4, 4, 0.9)]),
        [LR * 0.9**x * _linear_factor(x, end=0.9) for x in range(10)],
    ),
    "compound_step_and_constantlr": (
        lambda s, o: [s.StepLR(o, gamma=0.1, step_size=3),
                      s.ConstantLR(o, factor=0.4, total_iters=4)],
        S.Product([S.StepDecay(LR, 3, 0.1), S.Sequence([0.4, 1.0], [4])]),
        [0.05 * 0.4] * 3 + [0.005 * 0.4] + [0.005] * 2 + [0.0005] * 3 + [0.00005],
    ),
    "compound_linearlr_and_multistep_lr": (
        lambda s, o: [s.MultiStepLR(o, gamma=0.1, milestones=[2, 5, 9]),
                      s.LinearLR(o, start_factor=0.4, total_iters=4)],
        S.Product([S.MultiStepDecay(LR, [2, 5, 9], 0.1), S.LinearDecay(0.4, 4, 1.0)]),
        [(LR * 0.1 ** sum(x >= m for m in (2, 5, 9))) * _linear_factor(x) for x in range(10)],
    ),
    "compound_cosanneal_and_step_lr": (
        lambda s, o: [s.CosineAnnealingLR(o, T_max=10, eta_min=1e-10),
                      s.StepLR(o, gamma=0.1, step_size=3)],
        S.Product([S.CosineDecay(LR, 10, 1e-10), S.StepDecay(1.0, 3, 0.1)]),
        [_cos(x) * 0.1 ** (x // 3) for x in range(10)],
    ),
    "compound_cosanneal_and_multistep_lr": (
        lambda s, o: [s.CosineAnnealingLR(o, T_max=10, eta_min=1e-10),
                      s.MultiStepLR(o, gamma=0.1, milestones=[2, 5, 9])],
        S.Product([S.CosineDecay(LR, 10, 1e-10), S.MultiStepDecay(1.0, [2, 5, 9], 0.1)]),
        [_cos(x) * m for x, m in zip(range(10), [1] * 2 + [0.1] * 3 + [0.01] * 4 + [0.001])],
    ),
    # the warmup overlaps the cosine: both act on steps 0..3
    "compound_cosanneal_and_linearlr": (
        lambda s, o: [s.LinearLR(o, start_factor=0.4, total_iters=4),
                      s.CosineAnnealingLR(o, T_max=10, eta_min=1e-10)],
        S.Product([S.CosineDecay(LR, 10, 1e-10), S.LinearDecay(0.4, 4, 1.0)]),
        [_cos(x) * _linear_factor(x) for x in range(10)],
    ),
    "compound_cosanneal_and_exp_lr": (
        lambda s, o: [s.CosineAnnealingLR(o, T_max=10, eta_min=1e-10),
                      s.ExponentialLR(o, gamma=0.1)],
        S.Product([S.CosineDecay(LR, 10, 1e-10), S.ExponentialDecay(1.0, 0.1)]),
        [_cos(x) * 0.1**x for x in range(10)],
    ),
    # a cosine under a ConstantLR warmup, three factors
    "cosanneal_constantlr_and_exp_lr": (
        lambda s, o: [s.ConstantLR(o, factor=0.25, total_iters=3),
                      s.CosineAnnealingLR(o, T_max=10, eta_min=0.0),
                      s.ExponentialLR(o, gamma=0.95)],
        S.Product([S.CosineDecay(LR, 10), S.Sequence([0.25, 1.0], [3]),
                   S.ExponentialDecay(1.0, 0.95)]),
        [_cos(x, eta_min=0.0) * (0.25 if x < 3 else 1.0) * 0.95**x for x in range(10)],
    ),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", list(CASES))
def test_product_matches_torch_chained_scheduler(sched, name):
    make, ours, targets = CASES[name]
    steps = len(targets)
    ref = oracles.torch_lrs(lambda o: sched.ChainedScheduler(make(sched, o)), steps, LR)
    # the oracle is right: PyTorch's own closed-form targets (its chained cosine recursion
    # carries eta_min=1e-10 along, hence the 1e-10 absolute slack, as in PyTorch's test)
    np.testing.assert_allclose(ref, targets, rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(S.values(ours, steps), ref, rtol=RTOL, atol=1e-10)
    close(ours, targets, steps)


@pytest.mark.torch
def test_chained_cosine_with_eta_min_is_not_a_product(sched):
    """The documented limit: PyTorch chains CosineAnnealingLR's floor recursively."""
    ref = oracles.torch_lrs(
        lambda o: sched.ChainedScheduler(
            [sched.CosineAnnealingLR(o, T_max=10, eta_min=0.01), sched.ExponentialLR(o, 0.5)]
        ),
        10,
        LR,
    )
    naive = S.values(S.Product([S.CosineDecay(LR, 10, 0.01), S.ExponentialDecay(1.0, 0.5)]), 10)
    assert abs(naive[5] / ref[5] - 1) > 0.1


def test_product_semantics():
    schedule = S.Product([S.StepDecay(1.0, 2, 0.5), 0.1, S.LinearDecay(0.0, 4, 1.0)])
    np.testing.assert_allclose(
        S.values(schedule, 7),
        [0.0, 0.025, 0.025, 0.0375, 0.025, 0.025, 0.0125],
        rtol=1e-6,
        atol=1e-12,
    )
    # a product of one is that schedule; a Keras built-in gets the integer step
    np.testing.assert_array_equal(
        S.values(S.Product([S.CosineDecay(0.1, 9)]), 12), S.values(S.CosineDecay(0.1, 9), 12)
    )
    builtin = keras.optimizers.schedules.ExponentialDecay(1.0, 2, 0.5, staircase=True)
    np.testing.assert_allclose(
        S.values(S.Product([0.2, builtin]), 6), [0.2, 0.2, 0.1, 0.1, 0.05, 0.05], rtol=1e-6
    )


def test_product_in_the_spec_language():
    schedule = S.parse_schedule("product([step_decay(0.05, 3, 0.1), exponential_decay(1.0, 0.9)])")
    assert isinstance(schedule, S.Product)
    close(schedule, [LR * 0.1 ** (x // 3) * 0.9**x for x in range(10)], 10)
    again = S.parse_schedule(S.format_schedule(schedule))
    np.testing.assert_array_equal(S.values(again, 50), S.values(schedule, 50))
    with pytest.raises(ValueError, match="must hold at least one schedule"):
        S.parse_schedule("product([])")


def test_product_of_nothing_is_refused():
    with pytest.raises(
        ValueError,
        match=r"^Argument `schedules` must hold at least one schedule\. Received: schedules=\[\]$",
    ):
        S.Product([])
    with pytest.raises(TypeError, match=r"^Argument `schedules` must be a list"):
        S.Product(S.Constant(0.1))
    with pytest.raises(ValueError, match=r"^Argument `schedules\[1\]` must be >= 0"):
        S.Product([0.1, -2.0])
