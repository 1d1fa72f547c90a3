"""The suggestion rules against fastai's and Lightning's published definitions.

The references below are written from the sources (fastai ``fastai/callback/schedule.py``:
``valley``, ``steep``, ``minimum`` and the ``[num_it // 10 : -5]`` window of
``Learner.lr_find``; Lightning ``tuner/lr_finder.py``: ``_LRFinder.suggestion``), kept in
their original loop form on purpose: they are independent of the vectorised code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_lr.finder import LRFinderResult, minimum, range_test_rates, steep, valley


# ---------------------------------------------------------------------- references
def fastai_valley(lrs, losses):
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[idx]), idx


def fastai_steep(lrs, losses):
    lrs, losses = np.asarray(lrs), np.asarray(losses)
    grads = (losses[1:] - losses[:-1]) / (np.log(lrs[1:]) - np.log(lrs[:-1]))
    idx = int(grads.argmin())
    return float(lrs[idx]), idx


def fastai_minimum(lrs, losses):
    idx = int(np.asarray(losses).argmin())
    return float(lrs[idx]) / 10, idx


def fastai_window(values, num_it):
    return values[num_it // 10 : -5]


def lightning_steep(lrs, losses, skip_begin=10, skip_end=1):
    window = np.asarray(losses[skip_begin:-skip_end])
    idx = int(np.gradient(window).argmin()) + skip_begin
    return float(lrs[idx]), idx


# ---------------------------------------------------------------------- synthetic curves
def u_curve(num_steps, flat=2.3, drop=1.5, center=-2.5, width=0.4, blow=-0.3, noise=0.0, seed=0):
    """A range-test-like curve: flat, falling around `center`, exploding after `blow` (log10)."""
    lrs = range_test_rates(1e-7, 10.0, num_steps)
    u = np.log10(lrs)
    loss = flat - drop / (1 + np.exp(-(u - center) / width)) + np.exp((u - blow) * 3.0)
    loss = loss + noise * np.random.default_rng(seed).standard_normal(num_steps)
    return lrs, loss


def result_for(lrs, losses):
    return LRFinderResult(lrs, losses, losses, num_steps=len(lrs))


curves = st.builds(
    u_curve,
    num_steps=st.integers(30, 160),
    drop=st.floats(0.3, 2.0),
    center=st.floats(-5.0, -1.5),
    width=st.floats(0.1, 0.8),
    blow=st.floats(-1.0, 0.8),
    noise=st.sampled_from([0.0, 0.01, 0.05]),
    seed=st.integers(0, 1000),
)


@settings(max_examples=25, deadline=None)
@given(curves)
def test_valley_matches_fastai(curve):
    lrs, loss = curve
    result = result_for(lrs, loss)
    w_lrs, w_loss = fastai_window(lrs, len(lrs)), fastai_window(loss, len(lrs))
    expected_lr, expected_idx = fastai_valley(w_lrs, w_loss)
    lr, idx = result.suggestion("valley", return_index=True)
    if expected_idx >= 0:
        assert lr == expected_lr and idx == expected_idx + len(lrs) // 10
    else:  # fastai wraps round to the last rate; we clamp to the window's first point
        assert idx == len(lrs) // 10


@settings(max_examples=25, deadline=None)
@given(curves)
def test_steep_and_minimum_match_fastai(curve):
    lrs, loss = curve
    result = result_for(lrs, loss)
    w_lrs, w_loss = fastai_window(lrs, len(lrs)), fastai_window(loss, len(lrs))
    assert result.suggestion("steep") == fastai_steep(w_lrs, w_loss)[0]
    assert result.suggestion("minimum") == fastai_minimum(w_lrs, w_loss)[0]


@settings(max_examples=25, deadline=None)
@given(curves.filter(lambda c: c[1].size > 40))
def test_steep_agrees_with_lightning_on_smooth_curves(curve):
    lrs, loss = curve
    lrs, loss = u_curve(len(lrs))  # noise-free: forward and central differences then agree
    result = result_for(lrs, loss)
    _, idx = result.suggestion("steep", skip_start=10, skip_end=1, return_index=True)
    _, expected = lightning_steep(lrs, loss)
    assert abs(idx - expected) <= 1


def test_valley_is_inside_the_falling_part():
    lrs, loss = u_curve(100, center=-3.0)
    lr = LRFinderResult(lrs, loss, loss).suggestion()
    fall = lrs[np.argmax(np.diff(loss) < -1e-4)], lrs[np.argmin(loss)]
    assert fall[0] < lr < fall[1]


def test_hand_checked_values():
    lrs = [1e-3, 1e-2, 1e-1, 1.0]
    assert valley(lrs, [2.0, 1.0, 0.5, 3.0]) == (0.001, 0)  # fastai's start is end - lds
    assert valley([1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0], [2.0, 2.0, 1.5, 1.0, 0.5, 3.0]) == (
        0.001, 1)
    assert steep(lrs, [2.0, 1.8, 0.5, 3.0]) == (0.01, 1)
    assert minimum(lrs, [2.0, 1.0, 0.5, 3.0]) == (pytest.approx(0.01), 2)
    # valley follows the longest decreasing *subsequence*, not the longest contiguous run
    losses = [5.0, 4.0, 4.5, 3.0, 3.5, 2.0, 2.5, 1.0, 9.0, 8.0, 7.0]
    assert valley(range_test_rates(1e-3, 1.0, 11), losses)[1] == fastai_valley(
        range_test_rates(1e-3, 1.0, 11), losses)[1]


def test_increasing_curve_suggests_first_point():
    lrs = range_test_rates(1e-4, 1.0, 20)
    assert valley(lrs, np.linspace(1, 2, 20)) == (lrs[0], 0)
    assert minimum(lrs, np.linspace(1, 2, 20))[1] == 0


def test_window_defaults_and_errors():
    lrs, loss = u_curve(100)
    result = result_for(lrs, loss)
    assert result.window() == slice(10, 95)
    short = LRFinderResult(lrs[:12], loss[:12], loss[:12], stop_reason="diverged", num_steps=100)
    with pytest.raises(ValueError, match="at least"):
        short.suggestion("steep")  # window [10:7] is empty
    assert short.suggestions() == {"valley": None, "steep": None, "minimum": None}
    assert short.suggestion("steep", skip_start=0, skip_end=0) > 0
    with pytest.raises(ValueError, match="method"):
        result.suggestion("slide")
    with pytest.raises(ValueError, match="skip_end"):
        result.suggestion(skip_end=-1)


@pytest.mark.parametrize("skip_start", [0, 1])
def test_too_short_curves_never_wrap_round(skip_start):
    """With `skip_end` points or fewer the window is empty: no suggestion, whatever the length
    (a 4-point curve used to be cut as [1:-1] and get suggestions that 3 and 5 points did not)."""
    lrs, loss = u_curve(10)
    for n in range(6):  # skip_end is 5 by default
        short = LRFinderResult(lrs[:n], loss[:n], loss[:n], stop_reason="diverged",
                               num_steps=10)
        assert short.window(skip_start).stop == 0
        assert short.suggestions(skip_start=skip_start) == dict.fromkeys(
            ("valley", "steep", "minimum")), n
        with pytest.raises(ValueError, match="at least"):
            short.suggestion(skip_start=skip_start)
    for n, skip_end in [(3, 2), (4, 3)]:  # the same rule for other `skip_end`s
        short = LRFinderResult(lrs[:n], loss[:n], loss[:n], stop_reason="diverged",
                               num_steps=10)
        assert short.suggestions(skip_start=0, skip_end=skip_end)["minimum"] is not None


def test_rules_refuse_bad_input():
    with pytest.raises(ValueError, match="same length"):
        valley([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        steep([1.0, 2.0, 3.0], [1.0, math.nan, 2.0])
