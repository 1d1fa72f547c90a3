"""Hypothesis property tests: valid random arguments give finite, non-negative, bounded rates."""

import keras
import numpy as np
import pytest
from backend_utils import as_computed, schedule_atol
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_lr import schedules as S

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# TensorFlow's CPU kernels flush subnormal floats to zero (1e-313 * 1.0 == 0.0), so a
# subnormal rate cannot come back exactly from any schedule; rates are drawn without them.
rates = st.floats(0.0, 1.0, allow_subnormal=False)
positive_rates = st.floats(1e-6, 1.0)
factors = st.floats(1e-3, 1.0)  # decay factors <= 1 (larger ones overflow by design at 1e10)
durations = st.integers(1, 10**6)
# JAX without `jax_enable_x64` counts steps in int32 (docs/schedules.md): steps stay below
# 2**31 there; TensorFlow and torch are drawn up to 1e10.
MAX_STEP = 2**31 - 1 if keras.backend.backend() == "jax" else 10**10
steps = st.lists(st.integers(0, MAX_STEP), min_size=1, max_size=16).map(
    lambda s: np.array(sorted(s), dtype=np.int64)
)


@st.composite
def increasing(draw, min_size=1, max_size=5, low=0):
    values = draw(st.sets(st.integers(low, 10**7), min_size=min_size, max_size=max_size))
    return sorted(values)


@st.composite
def floor_below(draw, peak):
    floor = draw(st.floats(0.0, 1.0)) * peak
    return floor if floor >= np.finfo(np.float64).tiny else 0.0


@st.composite
def any_schedule(draw):
    kind = draw(st.sampled_from(sorted(BUILDERS)))
    return draw(BUILDERS[kind])


@st.composite
def cosine_restarts(draw):
    lr = draw(rates)
    return S.CosineRestarts(
        lr, draw(durations), draw(st.floats(1.0, 4.0)), draw(st.floats(0.0, 1.0)),
        draw(floor_below(lr)),
    )


@st.composite
def cyclical(draw):
    base = draw(rates)
    return S.CyclicalLR(
        base, base + draw(rates), draw(durations), draw(st.none() | durations),
        draw(st.sampled_from(["triangular", "triangular2", "exp_range"])), draw(factors),
    )


@st.composite
def one_cycle(draw):
    total = draw(st.integers(10, 10**6))
    three = draw(st.booleans())
    pct = draw(st.floats(0.2, 0.45))
    return S.OneCycle(
        draw(rates), total, pct, draw(st.sampled_from(["cos", "linear"])),
        draw(st.floats(1.0, 1e3)), draw(st.floats(1.0, 1e5)), three,
    )


@st.composite
def wsd(draw):
    peak = draw(rates)
    return S.WarmupStableDecay(
        peak, draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6)), draw(durations),
        draw(st.sampled_from(["linear", "cosine", "1-sqrt", "1_sqrt"])), draw(floor_below(peak)),
    )


@st.composite
def piecewise(draw):
    boundaries = draw(increasing())
    values = draw(st.lists(rates, min_size=len(boundaries), max_size=len(boundaries)))
    return S.PiecewiseLinear(boundaries, values)


@st.composite
def multistep(draw):
    return S.MultiStepDecay(draw(rates), draw(increasing(min_size=0)), draw(factors))


@st.composite
def cosine(draw):
    lr = draw(rates)
    return S.CosineDecay(lr, draw(durations), draw(floor_below(lr)))


BUILDERS = {
    "constant": st.builds(S.Constant, rates),
    "step": st.builds(S.StepDecay, rates, durations, factors),
    "multistep": multistep(),
    "exponential": st.builds(S.ExponentialDecay, rates, st.floats(0.5, 1.0)),
    "linear": st.builds(S.LinearDecay, rates, durations, rates),
    "polynomial": st.builds(S.PolynomialDecay, rates, durations, rates, st.floats(0.1, 5.0)),
    "cosine": cosine(),
    "restarts": cosine_restarts(),
    "inverse_sqrt": st.builds(S.InverseSqrtDecay, rates, durations),
    "piecewise": piecewise(),
    "cyclical": cyclical(),
    "one_cycle": one_cycle(),
    "wsd": wsd(),
    "keras_builtin": st.builds(
        keras.optimizers.schedules.CosineDecay, rates, durations, st.floats(0.0, 1.0)
    ),
}


@st.composite
def wrapped(draw, depth=0):
    inner = draw(any_schedule() if depth else st.one_of(any_schedule(), wrapped(depth=1)))
    kind = draw(st.sampled_from(["warmup", "sequence", "per_epoch"]))
    if kind == "warmup":
        shape = draw(st.sampled_from(["linear", "cosine", "exponential"]))
        start = draw(positive_rates if shape == "exponential" else rates)
        return S.Warmup(inner, draw(durations), start, shape)
    if kind == "per_epoch":
        return S.PerEpoch(inner, draw(durations))
    other = draw(any_schedule())
    return S.Sequence([other, inner], [draw(durations)])


def _check(schedule, at):
    out = S.values(schedule, at)
    assert out.shape == at.shape
    assert np.all(np.isfinite(out)), (schedule, at, out)
    assert np.all(out >= 0), (schedule, at, out)
    return out


@SETTINGS
@given(any_schedule(), steps)
def test_any_schedule_finite_non_negative(schedule, at):
    _check(schedule, at)


@SETTINGS
@given(wrapped(), steps)
def test_wrapped_schedules_finite_non_negative(schedule, at):
    _check(schedule, at)


@SETTINGS
@given(
    st.one_of(
        BUILDERS["step"], BUILDERS["multistep"], BUILDERS["exponential"], BUILDERS["cosine"],
        BUILDERS["inverse_sqrt"],
        st.builds(S.PolynomialDecay, st.just(1.0), durations, rates, st.floats(0.1, 5.0)),
    ),
    steps,
)
def test_decays_never_increase(schedule, at):
    out = _check(schedule, at).astype(np.float64)
    assert np.all(np.diff(out) <= 1e-7 * np.abs(out[:-1]) + 1e-30)


@SETTINGS
@given(st.one_of(BUILDERS["restarts"], BUILDERS["cyclical"], BUILDERS["one_cycle"]), steps)
def test_cyclic_schedules_stay_in_their_band(schedule, at):
    out = _check(schedule, at)
    if isinstance(schedule, S.CosineRestarts):
        low, high = schedule.min_learning_rate, schedule.initial_learning_rate
    elif isinstance(schedule, S.CyclicalLR):
        low, high = schedule.base_learning_rate, schedule.max_learning_rate
    else:
        high = schedule.max_learning_rate
        low = high / schedule.div_factor / schedule.final_div_factor
    tiny = schedule_atol(high, 1e-30)  # float32 flushes subnormal rates to zero
    assert np.all(out >= np.float32(low) * (1 - 1e-6) - tiny)
    assert np.all(out <= np.float32(high) * (1 + 1e-6) + tiny)


@pytest.mark.parametrize("cls", [S.Warmup, S.PerEpoch])
def test_wrappers_of_a_constant_are_bounded(cls):
    schedule = cls(0.2, 3)
    out = S.values(schedule, 10)
    assert np.all((out >= 0) & (out <= np.float32(0.2)))


@SETTINGS
@given(piecewise(), steps)
def test_piecewise_linear_hits_every_point_and_interpolates(schedule, at):
    knots = np.array(schedule.boundaries, dtype=np.float64)
    np.testing.assert_array_equal(S.values(schedule, knots), as_computed(schedule.values))
    mids = np.concatenate([knots[:-1] + np.diff(knots) / 2, at.astype(np.float64)])
    expected = np.interp(mids, knots, schedule.values)
    atol = schedule_atol(max(abs(v) for v in schedule.values), 1e-30)
    np.testing.assert_allclose(_check(schedule, mids), expected, rtol=1e-6, atol=atol)
