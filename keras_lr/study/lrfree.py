"""The learning-rate-free sub-study: Prodigy, DAdaptAdam and ScheduleFreeAdamW against tuned Adam.

The sub-study (`keras_lr.study.grid.lr_free_runs`) trains each learning-rate-free optimizer
at its defaults (`keras_lr.study.grid.DEFAULT_RATES`, constant schedule) and schedule-free
AdamW over the rate grid, per family and seed; schedule-free runs are scored at x (the
runner swaps x in for every validation pass, as `keras_lr.callbacks.ScheduleFreeEval` does in
`fit`). The comparison reuses the Adam runs of the other stages, nothing is rerun:

* **tuned Adam** of a family (`tuned_adam`): over Adam's constant-schedule grid runs and its
  ``warmup_cosine`` runs (the schedule sub-study's, at the constant optimum and the next
  grid rate), the schedule and rate with the highest mean final score over seeds (ties: the
  constant schedule, then the lower rate). The choice is made once, on the mean, as a user
  tuning Adam would; the seeds are then compared pairwise.
* **the claim** "At its defaults a learning-rate-free optimizer comes within 1 accuracy
  point of tuned Adam", per family and optimizer: effect per seed = ``100 * (tuned Adam's
  final accuracy - the optimizer's final accuracy at its defaults)``, in accuracy points,
  ``tau = 1``, direction "less" (supported if ``mean + sd < 1``; a learning-rate-free
  optimizer better than Adam has a negative effect), with the verdict rule of
  `keras_lr.study.claims.verdict`.

Example:
    >>> tuned_adam([], "mlp") is None
    True

Reference:
    ``docs/study.md``, "The learning-rate-free sub-study"; ``docs/lr-free.md``.
"""

from __future__ import annotations

import math

import numpy as np

from keras_lr.study import metrics
from keras_lr.study.grid import DEFAULT_RATES, LR_FREE_OPTIMIZERS

__all__ = ["CLAIM_ID", "TAU", "TUNED_SCHEDULES", "claim_rows", "d_curves", "default_runs",
           "table_rows", "tuned_adam"]

CLAIM_ID = "lr_free"
TAU = 1.0
"""Accuracy points: "within 1 accuracy point"."""
TUNED_SCHEDULES = ("constant", "warmup_cosine")
"""Adam's schedules that "tuned Adam" chooses from."""
ESTIMATORS = ("prodigy", "dadapt_adam")
"""The optimizers whose records hold d per step (``record["d"]``)."""


def _runs(records, **fields):
    from keras_lr.study.claims import _runs

    return _runs(records, **fields)


def tuned_adam(records, family, data="digits"):
    """``(schedule, rate, {seed: record})`` of tuned Adam (see the module docstring), or None
    when there is no Adam run of `family` on `data`."""
    best = None
    for schedule in TUNED_SCHEDULES:
        runs = _runs(records, family=family, data=data, optimizer="adam", schedule=schedule)
        rate = metrics.best_rate(runs)
        if rate is None:
            continue
        at = [r for r in runs if r["lr"] == rate]
        score = float(np.mean([_score(r) for r in at]))
        if best is None or score > best[0]:
            best = (score, schedule, rate, {r["seed"]: r for r in at})
    return None if best is None else best[1:]


def default_runs(records, family, optimizer, data="digits") -> dict:
    """``{seed: record}`` of `optimizer` at its default rate (constant schedule)."""
    rate = DEFAULT_RATES[optimizer]
    return {r["seed"]: r for r in _runs(records, family=family, data=data, optimizer=optimizer)
            if r["lr"] == rate}


def _score(record) -> float:
    value = record["final_score"]
    return value if value is not None and math.isfinite(value) else -math.inf


def _points(record) -> float:
    """Final score in accuracy points; a diverged run scores as chance (its final_score)."""
    value = record["final_score"]
    return 100.0 * value if value is not None and math.isfinite(value) else float("nan")


def _families(records, data):
    order = ("mlp", "cnn", "lstm", "gru", "simple_rnn")
    found = {r["family"] for r in _runs(records, data=data)
             if r["optimizer"] in LR_FREE_OPTIMIZERS}
    return [f for f in order if f in found]


def claim_rows(records, data="digits") -> list[dict]:
    """The claim's rows, one per family and learning-rate-free optimizer with runs at its
    defaults and an Adam to compare with (`keras_lr.study.claims.evaluate_claims` adds them).
    Regression data (no accuracy) are left out."""
    from keras_lr.study.claims import _claim

    rows = []
    for family in _families(records, data):
        tuned = tuned_adam(records, family, data)
        if tuned is None:
            continue
        schedule, rate, adam = tuned
        if any(r.get("regression") for r in adam.values()):
            continue
        for optimizer in LR_FREE_OPTIMIZERS:
            mine = default_runs(records, family, optimizer, data)
            seeds = sorted(set(mine) & set(adam))
            if not seeds:
                continue
            effects = [_points(adam[s]) - _points(mine[s]) for s in seeds]
            detail = (f"tuned adam: {schedule} lr={rate:.3g}; " + "; ".join(
                f"seed {s}: adam {_points(adam[s]):.1f}, {optimizer} {_points(mine[s]):.1f}"
                for s in seeds))
            rows.append(_claim(CLAIM_ID, f"{family}/{data} ({optimizer})", effects, TAU, "less",
                               "accuracy points", detail))
    return rows


def d_curves(records, family, optimizer, data="digits") -> dict:
    """``{seed: d per step}`` of `optimizer` at its defaults (records without ``d``, written
    before d was recorded, are left out)."""
    return {seed: np.asarray(r["d"], np.float64)
            for seed, r in sorted(default_runs(records, family, optimizer, data).items())
            if r.get("d")}


def _mean(runs) -> str:
    if not runs:
        return "-"
    values = [_points(r) / 100.0 for r in runs]
    return f"{np.nanmean(values):.3f}"


HEADER = ["model/data", "tuned adam (schedule, lr)", "adam", "prodigy", "dadapt_adam",
          "schedule_free_adamw (0.0025)", "schedule_free_adamw tuned (lr)",
          "final d (prodigy / dadapt_adam)", "seeds"]


def table_rows(records, data="digits") -> list[list[str]]:
    """The report's table: mean final accuracy of tuned Adam, of each learning-rate-free
    optimizer at its defaults and of schedule-free AdamW at its best grid rate; the mean d at
    the end of training."""
    rows = []
    for family in _families(records, data):
        tuned = tuned_adam(records, family, data)
        label = "-" if tuned is None else f"{tuned[0]}, {tuned[1]:.3g}"
        adam = "-" if tuned is None else _mean(list(tuned[2].values()))
        defaults = {o: list(default_runs(records, family, o, data).values())
                    for o in LR_FREE_OPTIMIZERS}
        sf = _runs(records, family=family, data=data, optimizer="schedule_free_adamw")
        sf_grid = [r for r in sf if r["lr"] != DEFAULT_RATES["schedule_free_adamw"]]
        sf_rate = metrics.best_rate(sf_grid)
        sf_tuned = "-" if sf_rate is None else (
            f"{_mean([r for r in sf_grid if r['lr'] == sf_rate])} ({sf_rate:.3g})")
        finals = []
        for optimizer in ESTIMATORS:
            curves = d_curves(records, family, optimizer, data)
            finals.append(f"{np.mean([c[-1] for c in curves.values()]):.3g}" if curves
                          else "-")
        seeds = max([len(v) for v in defaults.values()] + [0])
        rows.append([f"{family}/{data}", label, adam, *(_mean(defaults[o])
                                                        for o in LR_FREE_OPTIMIZERS),
                     sf_tuned, " / ".join(finals), str(seeds)])
    return rows
