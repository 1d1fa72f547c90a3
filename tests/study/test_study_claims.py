"""The verdict rule and the claims on synthetic results."""

import pytest

from keras_lr.study import claims


@pytest.mark.parametrize("effects, tau, direction, expected", [
    ([1.0, 1.0], 0.5, "greater", "supported"),
    ([0.6, 1.4], 0.5, "greater", "inconclusive"),  # 1.0 - 0.566 = 0.43 < 0.5
    ([0.5, 0.5], 0.5, "greater", "not supported"),  # equal to tau is not "far"
    ([-1.0, -0.5], 0.0, "greater", "not supported"),
    ([0.0, 0.5], 0.0, "greater", "inconclusive"),
    ([0.1, 0.2], 0.5, "less", "supported"),
    ([1.0, 1.2], 0.5, "less", "not supported"),
    ([0.2, 0.8], 0.5, "less", "inconclusive"),
    ([2.0], 0.5, "greater", "inconclusive"),  # one seed: no spread
    ([], 0.5, "greater", "not measured"),
    ([float("nan"), 1.0], 0.5, "greater", "inconclusive"),
])
def test_verdict(effects, tau, direction, expected):
    assert claims.verdict(effects, tau, direction)[0] == expected


def test_verdict_one_grid_step_equals_the_threshold():
    import math

    step = math.log10(0.0316228 / 0.01)  # 0.50000002: one rounded half-decade grid step
    assert claims.verdict([step, step], 0.5)[0] == "not supported"


def test_verdict_mean_and_sample_spread():
    _, m, s, n = claims.verdict([1.0, 2.0, 3.0], 0.0)
    assert (m, s, n) == (2.0, 1.0, 3)


RATES = (1e-3, 1e-2, 1e-1, 1.0)


def _run(family, optimizer, lr, seed, score, diverged=False, **fields):
    record = {"kind": "run", "family": family, "data": "digits", "optimizer": optimizer,
              "schedule": "constant", "clip": "none", "multipliers": "none", "epochs": 2,
              "size": "quick", "lr": lr, "seed": seed, "final_score": score,
              "best_score": score, "final_loss": 1.0, "best_loss": 1.0, "oscillation": 0.0,
              "diverged": diverged, "baseline_score": 0.1, "epochs_to_target": None}
    record.update(fields)
    record["variant"] = "|".join(str(record[k]) for k in ("family", "data", "optimizer",
                                                          "schedule", "clip", "multipliers"))
    return record


def _curve(family, optimizer, scores, seeds=(0, 1), **fields):
    return [_run(family, optimizer, lr, seed, s, diverged=s < 0.2, **fields)
            for seed in seeds for lr, s in zip(RATES, scores)]


def _claim(rows, cid, subject=None):
    found = [r for r in rows if r["id"] == cid and (subject is None or r["subject"] == subject)]
    assert len(found) == 1, rows
    return found[0]


def test_adam_vs_sgd_supported_when_best_rates_are_a_decade_apart():
    records = (_curve("mlp", "adam", [0.8, 0.9, 0.5, 0.1]) +
               _curve("mlp", "sgd", [0.3, 0.7, 0.9, 0.6]))
    row = _claim(claims.evaluate_claims(records), "adam_vs_sgd", "mlp")
    assert row["verdict"] == "supported" and row["effect"] == pytest.approx(1.0)


def test_adam_vs_sgd_not_supported_when_equal():
    records = (_curve("mlp", "adam", [0.8, 0.9, 0.5, 0.1]) +
               _curve("mlp", "sgd", [0.8, 0.9, 0.5, 0.1]))
    assert _claim(claims.evaluate_claims(records), "adam_vs_sgd")["verdict"] == "not supported"


def test_warmup_widening_is_measured_in_decades():
    records = (_curve("cnn", "adam", [0.8, 0.9, 0.1, 0.1]) +
               _curve("cnn", "adam", [0.8, 0.9, 0.9, 0.1], schedule="warmup"))
    row = _claim(claims.evaluate_claims(records), "warmup_cnn")
    assert row["verdict"] == "supported" and row["effect"] == pytest.approx(1.0)


def test_no_widening_is_not_supported():
    records = (_curve("cnn", "adam", [0.8, 0.9, 0.1, 0.1]) +
               _curve("cnn", "adam", [0.8, 0.9, 0.1, 0.1], schedule="warmup"))
    assert _claim(claims.evaluate_claims(records), "warmup_cnn")["verdict"] == "not supported"


def test_no_usable_rate_is_narrower_than_one():
    """'none -> one usable rate' is a widening (one grid step), not a tie at width 0."""
    records = (_curve("cnn", "adam", [0.1, 0.1, 0.1, 0.1]) +
               _curve("cnn", "adam", [0.9, 0.1, 0.1, 0.1], schedule="warmup"))
    row = _claim(claims.evaluate_claims(records), "warmup_cnn")
    assert row["effect"] == pytest.approx(1.0) and row["verdict"] == "supported"
    records = (_curve("cnn", "adam", [0.1, 0.1, 0.1, 0.1]) +
               _curve("cnn", "adam", [0.1, 0.1, 0.1, 0.1], schedule="warmup"))
    row = _claim(claims.evaluate_claims(records), "warmup_cnn")
    assert row["effect"] == 0.0 and row["verdict"] == "not supported"


def test_conv_vs_dense_compares_the_tops_of_the_stable_ranges():
    records = (_curve("cnn", "adam", [0.8, 0.9, 0.9, 0.1], multipliers="conv_x10") +
               _curve("cnn", "adam", [0.9, 0.1, 0.1, 0.1], multipliers="dense_x10"))
    row = _claim(claims.evaluate_claims(records), "conv_vs_dense")
    assert row["effect"] == pytest.approx(2.0) and row["verdict"] == "supported"


def test_gates_claim_uses_best_scores():
    records = (_curve("lstm", "adam", [0.7, 0.8, 0.5, 0.1]) +
               _curve("lstm", "adam", [0.6, 0.7, 0.5, 0.1], multipliers="gates_x4"))
    row = _claim(claims.evaluate_claims(records), "gates_lstm")
    assert row["effect"] == pytest.approx(-0.1) and row["verdict"] == "not supported"


def test_range_test_distance():
    records = _curve("mlp", "adam", [0.8, 0.9, 0.5, 0.1])
    for seed, suggestion in ((0, 0.012), (1, 0.008)):
        records.append({"kind": "range_test", "family": "mlp", "data": "digits",
                        "optimizer": "adam", "seed": seed, "suggestion": suggestion})
    row = _claim(claims.evaluate_claims(records), "range_test")
    assert row["verdict"] == "supported" and row["effect"] < 0.1
