"""Every schedule against an independent reference over a grid crossing all its boundaries.

References: PyTorch schedulers stepped once per batch, NumPy formulas from the papers
(schedule_oracles.py), Keras built-ins and optax where they define the same curve.
"""

import math

import keras
import numpy as np
import pytest
import schedule_oracles as oracles
from backend_utils import as_computed, schedule_atol

from keras_lr import schedules as S

RTOL, ATOL = 1e-5, 1e-12


def close(schedule, reference, steps):
    ours = S.values(schedule, steps)
    assert ours.dtype == np.float32
    atol = schedule_atol(np.max(np.abs(reference)), ATOL)
    np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=atol)


# ---------------------------------------------------------------- PyTorch, stepped per batch


@pytest.fixture(scope="module")
def sched():
    torch = pytest.importorskip("torch")
    return torch.optim.lr_scheduler


@pytest.mark.torch
def test_step_decay_matches_torch_steplr(sched):
    ref = oracles.torch_lrs(lambda o: sched.StepLR(o, step_size=7, gamma=0.5), 40, 0.1)
    close(S.StepDecay(0.1, step_size=7, gamma=0.5), ref, 40)
    # the switch is AT the boundary
    assert ref[6] == pytest.approx(0.1) and ref[7] == pytest.approx(0.05)


@pytest.mark.torch
def test_multistep_decay_matches_torch(sched):
    milestones = [3, 10, 11, 25]
    ref = oracles.torch_lrs(lambda o: sched.MultiStepLR(o, milestones, gamma=0.3), 40, 0.1)
    close(S.MultiStepDecay(0.1, milestones, gamma=0.3), ref, 40)
    close(S.MultiStepDecay(0.1, milestones, 0.3), oracles.multistep_decay(0.1, milestones, 0.3, 40), 40)


@pytest.mark.torch
def test_exponential_decay_matches_torch(sched):
    ref = oracles.torch_lrs(lambda o: sched.ExponentialLR(o, gamma=0.93), 60, 0.1)
    close(S.ExponentialDecay(0.1, gamma=0.93), ref, 60)


@pytest.mark.torch
def test_linear_decay_matches_torch_linearlr(sched):
    make = lambda o: sched.LinearLR(o, start_factor=1.0, end_factor=0.25, total_iters=20)  # noqa: E731
    ref = oracles.torch_lrs(make, 35, 0.2)
    close(S.LinearDecay(0.2, 20, end_learning_rate=0.05), ref, 35)
    # increasing ramp
    make = lambda o: sched.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=9)  # noqa: E731
    close(S.LinearDecay(0.02, 9, end_learning_rate=0.2), oracles.torch_lrs(make, 15, 0.2), 15)


@pytest.mark.torch
@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_polynomial_decay_matches_torch(sched, power):
    ref = oracles.torch_lrs(lambda o: sched.PolynomialLR(o, total_iters=20, power=power), 30, 0.2)
    close(S.PolynomialDecay(0.2, 20, power=power), ref, 30)


@pytest.mark.torch
def test_cosine_decay_matches_torch_until_t_max_then_holds(sched):
    make = lambda o: sched.CosineAnnealingLR(o, T_max=25, eta_min=0.01)  # noqa: E731
    ref = oracles.torch_lrs(make, 40, 0.1)
    schedule = S.CosineDecay(0.1, 25, min_learning_rate=0.01)
    close(schedule, ref[:26], 26)
    tail = S.values(schedule, np.arange(26, 40))
    np.testing.assert_allclose(tail, 0.01, rtol=RTOL)
    assert ref[39] > 0.011  # PyTorch climbs back after T_max; we do not
    close(schedule, oracles.cosine_decay(0.1, 25, 0.01, 40), 40)


@pytest.mark.torch
@pytest.mark.parametrize("t0, mult", [(10, 2), (7, 1), (3, 3)])
def test_cosine_restarts_matches_torch(sched, t0, mult):
    make = lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=t0, T_mult=mult, eta_min=0.001)  # noqa: E731
    ref = oracles.torch_lrs(make, 160, 0.1)
    close(S.CosineRestarts(0.1, t0, cycle_mult=mult, min_learning_rate=0.001), ref, 160)


def test_cosine_restarts_restart_points():
    lrs = S.values(S.CosineRestarts(1.0, 10, cycle_mult=2), 80)
    restarts = [t for t in range(1, 80) if lrs[t] > lrs[t - 1]]
    assert restarts == [10, 30, 70]


@pytest.mark.parametrize(
    "mult, decay, floor", [(1.0, 0.5, 0.0), (2.0, 0.7, 0.01), (1.5, 0.8, 0.0), (2.5, 1.0, 0.02)]
)
def test_cosine_restarts_matches_numpy_and_keras(mult, decay, floor):
    schedule = S.CosineRestarts(0.1, 8, cycle_mult=mult, peak_decay=decay, min_learning_rate=floor)
    close(schedule, oracles.sgdr(0.1, 8, mult, decay, floor, 200), 200)
    keras_schedule = keras.optimizers.schedules.CosineDecayRestarts(
        0.1, 8, t_mul=mult, m_mul=decay, alpha=floor / 0.1
    )
    keras_values = [float(keras_schedule(t)) for t in range(0, 200, 7)]
    np.testing.assert_allclose(S.values(schedule, np.arange(0, 200, 7)), keras_values, rtol=1e-4)


@pytest.mark.torch
def test_inverse_sqrt_matches_lambdalr_and_t5(sched):
    make = lambda o: sched.LambdaLR(o, lambda k: math.sqrt(16 / max(k, 16)))  # noqa: E731
    ref = oracles.torch_lrs(make, 50, 0.3)
    schedule = S.InverseSqrtDecay(0.3, timescale=16)
    close(schedule, ref, 50)
    close(schedule, oracles.inverse_sqrt(0.3, 16, 50), 50)


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
@pytest.mark.parametrize("up, down", [(5, 3), (4, None)])
def test_cyclical_matches_torch_cycliclr(sched, mode, up, down):
    def make(o):
        return sched.CyclicLR(
            o, 0.01, 0.1, step_size_up=up, step_size_down=down, mode=mode, gamma=0.97,
            cycle_momentum=False,
        )

    ref = oracles.torch_lrs(make, 60, 0.01)
    close(S.CyclicalLR(0.01, 0.1, up, down, mode=mode, gamma=0.97), ref, 60)


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclical_symmetric_matches_smith_formula(mode):
    schedule = S.CyclicalLR(0.001, 0.006, 6, mode=mode, gamma=0.99)
    close(schedule, oracles.cyclical_symmetric(0.001, 0.006, 6, 60, mode, 0.99), 60)


@pytest.mark.torch
@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("total, pct", [(50, 0.3), (100, 0.25), (37, 0.4)])
def test_one_cycle_matches_torch(sched, anneal, three_phase, total, pct):
    def make(o):
        return sched.OneCycleLR(
            o, max_lr=0.5, total_steps=total, pct_start=pct, anneal_strategy=anneal,
            div_factor=20.0, final_div_factor=50.0, three_phase=three_phase,
            cycle_momentum=False,
        )

    ref = oracles.torch_lrs(make, total, 0.5)
    schedule = S.OneCycle(0.5, total, pct, anneal, 20.0, 50.0, three_phase)
    close(schedule, ref, total)
    # after total_steps the final value is held
    np.testing.assert_allclose(S.values(schedule, [total, total + 5, 10**9]), ref[-1], rtol=RTOL,
                               atol=schedule_atol(0.5))


@pytest.mark.torch
def test_warmup_matches_torch_sequentiallr_with_linearlr(sched):
    def make(o):
        warm = sched.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=5)
        cosine = sched.CosineAnnealingLR(o, T_max=20, eta_min=0.0)
        return sched.SequentialLR(o, [warm, cosine], milestones=[5])

    ref = oracles.torch_lrs(make, 26, 0.2)
    close(S.Warmup(S.CosineDecay(0.2, 20), 5, start_learning_rate=0.02), ref, 26)


@pytest.mark.torch
def test_sequence_matches_torch_sequentiallr(sched):
    def make(o):
        parts = [
            sched.StepLR(o, step_size=3, gamma=0.5),
            sched.ExponentialLR(o, gamma=0.9),
            sched.CosineAnnealingLR(o, T_max=10),
        ]
        return sched.SequentialLR(o, parts, milestones=[8, 15])

    ref = oracles.torch_lrs(make, 26, 0.1)
    schedule = S.Sequence(
        [S.StepDecay(0.1, 3, 0.5), S.ExponentialDecay(0.1, 0.9), S.CosineDecay(0.1, 10)], [8, 15]
    )
    close(schedule, ref, 26)


@pytest.mark.torch
def test_per_epoch_matches_torch_stepped_per_epoch(sched):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = sched.MultiStepLR(optimizer, milestones=[2, 5], gamma=0.1)
    ref = []
    for _ in range(7):  # epochs
        for _ in range(4):  # batches
            ref.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
        scheduler.step()
    close(S.PerEpoch(S.MultiStepDecay(0.1, [2, 5], 0.1), steps_per_epoch=4), np.array(ref), 28)


# ---------------------------------------------------------------- NumPy formulas, Keras, optax


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("warmup, stable", [(5, 7), (0, 3), (4, 0)])
def test_wsd_matches_hugging_face_formula(shape, warmup, stable):
    schedule = S.WarmupStableDecay(0.3, warmup, stable, 10, decay_shape=shape, min_learning_rate=0.03)
    close(schedule, oracles.wsd(0.3, warmup, stable, 10, shape, 0.03, 40), 40)


def test_wsd_spelling_alias():
    a = S.WarmupStableDecay(1.0, 2, 2, 5, decay_shape="1_sqrt")
    assert a.get_config()["decay_shape"] == "1-sqrt"
    close(a, oracles.wsd(1.0, 2, 2, 5, "1-sqrt", 0.0, 12), 12)


def test_piecewise_linear_matches_interp():
    boundaries, vals = [3, 10, 11, 30], [0.0, 1.0, 0.5, 0.1]
    close(S.PiecewiseLinear(boundaries, vals), oracles.piecewise_linear(boundaries, vals, 40), 40)
    close(S.PiecewiseLinear([5], [0.2]), np.full(10, 0.2), 10)
    steps = np.linspace(0, 35, 141)  # fractional steps too
    np.testing.assert_allclose(
        S.values(S.PiecewiseLinear(boundaries, vals), steps),
        oracles.piecewise_linear(boundaries, vals, steps),
        rtol=RTOL,
        atol=1e-7,
    )


def test_piecewise_linear_is_exact_at_every_point_and_never_negative():
    # a knot at 0 between two positive values: summing slopes gave -2.8e-17 at step 20
    schedule = S.PiecewiseLinear([0, 10, 20, 30], [0.1, 0.3, 0.0, 0.1])
    at = np.arange(0, 41, dtype=np.float64)
    values = S.values(schedule, at)
    knots = as_computed(schedule.values)  # float32(0.3) on JAX: exact there too
    assert values[20] == 0.0 and values[10] == knots[1] and np.all(values >= 0)
    np.testing.assert_array_equal(values[::10], knots.tolist() + [knots[-1]])
    # float64 on TensorFlow and torch: equal to NumPy's interpolation to the last bit
    np.testing.assert_allclose(values, np.interp(at, schedule.boundaries, schedule.values),
                               rtol=0.0, atol=schedule_atol(0.3))
    assert float(schedule(20)) == 0.0


def test_step_multistep_exponential_polynomial_numpy():
    close(S.StepDecay(0.1, 4, 0.3), oracles.step_decay(0.1, 4, 0.3, 30), 30)
    close(S.ExponentialDecay(0.1, 0.95), oracles.exponential_decay(0.1, 0.95, 30), 30)
    close(
        S.PolynomialDecay(0.1, 12, 0.01, 3.0), oracles.polynomial_decay(0.1, 12, 0.01, 3.0, 30), 30
    )


@pytest.mark.parametrize("shape", ["linear", "cosine", "exponential"])
def test_warmup_shapes_match_numpy(shape):
    inner = S.StepDecay(0.1, 3, 0.5)

    def inner_values(t):
        return oracles.step_decay(0.1, 3, 0.5, t)

    schedule = S.Warmup(inner, 8, start_learning_rate=0.001, shape=shape)
    close(schedule, oracles.warmup(inner_values, 8, 0.001, shape, 30), 30)


def test_warmup_cosine_matches_keras_cosine_decay_with_warmup():
    keras_schedule = keras.optimizers.schedules.CosineDecay(
        0.001, decay_steps=20, alpha=0.1, warmup_target=0.01, warmup_steps=6
    )
    ours = S.Warmup(S.CosineDecay(0.01, 20, 0.001), 6, start_learning_rate=0.001)
    ref = [float(keras_schedule(t)) for t in range(35)]
    close(ours, ref, 35)


def test_polynomial_matches_keras():
    keras_schedule = keras.optimizers.schedules.PolynomialDecay(0.1, 15, 0.01, power=2.0)
    close(S.PolynomialDecay(0.1, 15, 0.01, 2.0), [float(keras_schedule(t)) for t in range(25)], 25)


def test_sequence_matches_numpy_join():
    parts = [S.Constant(0.05), S.StepDecay(0.1, 2, 0.5), S.LinearDecay(0.2, 5)]
    ref = oracles.join(
        [
            lambda t: np.full(len(t), 0.05),
            lambda t: oracles.step_decay(0.1, 2, 0.5, t),
            lambda t: oracles.polynomial_decay(0.2, 5, 0.0, 1.0, t),
        ],
        [4, 9],
        20,
    )
    close(S.Sequence(parts, [4, 9]), ref, 20)


@pytest.mark.slow
def test_sequence_and_warmup_match_optax():
    optax = pytest.importorskip("optax")
    joined = optax.join_schedules(
        [optax.constant_schedule(0.05), optax.exponential_decay(0.1, 1, 0.9)], [6]
    )
    ref = [float(joined(t)) for t in range(15)]
    close(S.Sequence([0.05, S.ExponentialDecay(0.1, 0.9)], [6]), ref, 15)
    # optax counts the warmup inside decay_steps; ours runs the decay after it
    wcd = optax.warmup_cosine_decay_schedule(0.0, 0.1, 5, 25, end_value=0.01)
    ref = [float(wcd(t)) for t in range(30)]
    close(S.Warmup(S.CosineDecay(0.1, 20, 0.01), 5), ref, 30)
