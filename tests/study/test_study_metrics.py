"""Metric functions against hand-computed values."""

import math

import pytest

from keras_lr.study import metrics


def test_divergence_epoch():
    assert metrics.divergence_epoch(2.0, [1.5, 1.0], [1.4, 0.9]) is None
    assert metrics.divergence_epoch(2.0, [1.5, 8.1], [1.4, 0.9]) == 1  # 8.1 > 4 * 2
    assert metrics.divergence_epoch(2.0, [1.5, 8.0], [1.4, 0.9]) is None  # not above
    assert metrics.divergence_epoch(2.0, [1.5, 1.0], [math.inf, 0.9]) == 0
    assert metrics.divergence_epoch(2.0, [math.nan], [1.0]) == 0
    assert metrics.divergence_epoch(1.0, [2.5], [1.0], factor=2.0) == 0


def test_epochs_to_target():
    assert metrics.epochs_to_target([0.3, 0.89, 0.9, 0.95], 0.9) == 3
    assert metrics.epochs_to_target([0.3, math.nan], 0.9) is None
    assert metrics.epochs_to_target([], 0.9) is None


def test_oscillation_hand_computed():
    # d = [-1, +2, -2]: sum|d| = 5, |sum d| = 1 -> 4 / 3 steps / mean(11/4 = 2.75)
    assert metrics.oscillation([3.0, 2.0, 4.0, 2.0]) == pytest.approx(4 / 3 / 2.75)
    assert metrics.oscillation([5.0, 4.0, 4.0, 1.0]) == 0.0  # monotone
    assert math.isnan(metrics.oscillation([1.0]))
    assert math.isnan(metrics.oscillation([1.0, math.nan]))


def test_stable_range_and_width():
    rates = [1.0, 1e-3, 1e-1, 1e-2]  # unsorted on purpose
    ok = [False, True, True, True]
    assert metrics.stable_range(rates, ok, 1e-2) == (1e-3, 1e-1)
    assert metrics.width((1e-3, 1e-1)) == pytest.approx(2.0)
    assert metrics.width((0.1, 0.1)) == 0.0
    assert math.isnan(metrics.width(None))
    assert metrics.stable_range(rates, ok, 1.0) is None  # best itself unusable
    assert metrics.stable_range([1e-3, 1e-2, 1e-1], [True, False, True], 1e-1) == (1e-1, 1e-1)


def _run(lr, seed, score, diverged=False, **extra):
    return {"kind": "run", "variant": "v", "family": "mlp", "data": "digits",
            "optimizer": "adam", "schedule": "constant", "clip": "none", "multipliers": "none",
            "epochs": 2, "size": "quick", "lr": lr, "seed": seed, "final_score": score,
            "best_score": score, "final_loss": 1.0 - score, "best_loss": 1.0 - score,
            "oscillation": 0.1, "diverged": diverged, "baseline_score": 0.1,
            "epochs_to_target": extra.get("ett")}


def test_usable_is_half_way_from_chance_to_best():
    assert metrics.usable(_run(0.1, 0, 0.55), best_score=1.0)  # 0.1 + 0.45 = 0.55
    assert not metrics.usable(_run(0.1, 0, 0.54), best_score=1.0)
    assert not metrics.usable(_run(0.1, 0, 0.99, diverged=True), best_score=1.0)


def test_best_rate_and_aggregate():
    runs = [_run(0.01, 0, 0.8, ett=2), _run(0.01, 1, 0.9), _run(0.1, 0, 0.85, ett=1),
            _run(0.1, 1, 0.85, ett=3)]
    assert metrics.best_rate(runs) == 0.01  # tie at 0.85: the lower rate wins
    rows = metrics.aggregate(runs)
    assert [r["lr"] for r in rows] == [0.01, 0.1]
    assert rows[0]["final_score_mean"] == pytest.approx(0.85)
    assert rows[0]["final_score_std"] == pytest.approx(math.sqrt(0.005))  # sample sd
    assert rows[0]["reached_frac"] == 0.5 and rows[0]["epochs_to_target_mean"] == 2.0
    assert rows[1]["final_score_std"] == 0.0 and rows[1]["epochs_to_target_mean"] == 2.0
