"""Per-run and per-grid metrics of the study: divergence, speed, oscillation, stable range.

Every run is scored on its validation set after each epoch. The *score* is higher-is-better:
validation accuracy for classification, and the skill ``1 - MSE / baseline_MSE`` for
regression (the adding problem's constant predictor has ``baseline_MSE = 1/6``, skill 0).
The *baseline score* is the score of a trivial predictor: ``1 / num_classes`` (chance) or 0.

Definitions (all used by the claims and documented in ``docs/study.md``):

* **diverged**: some epoch's mean training loss or validation loss is non-finite or exceeds
  ``factor * initial_loss`` (``factor = 4``, ``initial_loss`` = validation loss before
  training); training stops at that epoch.
* **epochs to target**: the first epoch (1-based) whose score reaches the target (0.9
  accuracy on digits, skill 0.9 on adding), None if never.
* **oscillation**: over the per-step training losses of the last half of training,
  ``(sum |d_i| - |sum d_i|) / (n - 1) / mean(loss)`` with ``d_i`` the step-to-step changes:
  the mean up-and-down movement beyond the net trend, relative to the loss level (0 for a
  monotone curve).
* **usable** run: not diverged and its final score closes at least half the gap between the
  baseline score and the best mean final score of that family and data set in the study.
* **stable range** of a curve (one seed, rates sorted): the contiguous block of usable rates
  containing that seed's best rate; its **width** is ``log10(high / low)`` decades.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "DIVERGENCE_FACTOR",
    "aggregate",
    "best_rate",
    "divergence_epoch",
    "epochs_to_target",
    "oscillation",
    "seed_curves",
    "stable_range",
    "usable",
    "width",
]

DIVERGENCE_FACTOR = 4.0


def divergence_epoch(initial_loss: float, train_losses: Sequence[float],
                     val_losses: Sequence[float], factor: float = DIVERGENCE_FACTOR):
    """The first epoch index (0-based) at which the run diverged, or None.

    Example:
        >>> divergence_epoch(2.0, [1.0, 9.0], [1.0, 1.0])
        1
        >>> divergence_epoch(2.0, [1.0, float("nan")], [1.0, 1.0])
        1
        >>> divergence_epoch(2.0, [1.0, 0.5], [1.0, 0.4]) is None
        True
    """
    limit = factor * initial_loss
    for epoch, (a, b) in enumerate(zip(train_losses, val_losses)):
        for value in (a, b):
            if not math.isfinite(value) or value > limit:
                return epoch
    return None


def epochs_to_target(scores: Sequence[float], target: float):
    """First 1-based epoch whose score is >= `target`, or None.

    Example:
        >>> epochs_to_target([0.5, 0.91, 0.95], 0.9)
        2
    """
    for epoch, score in enumerate(scores, start=1):
        if math.isfinite(score) and score >= target:
            return epoch
    return None


def oscillation(losses: Sequence[float]) -> float:
    """``(sum|d| - |sum d|) / (n - 1) / mean(losses)`` with ``d`` the successive differences.

    0 for a monotone curve; NaN for fewer than 2 points or a non-finite/zero-mean curve.

    Example:
        >>> oscillation([3.0, 2.0, 1.0])
        0.0
        >>> round(oscillation([1.0, 2.0, 1.0]), 6)  # (2 - 0) / 2 / (4 / 3)
        0.75
    """
    x = np.asarray(losses, dtype=np.float64)
    if x.size < 2 or not np.all(np.isfinite(x)):
        return float("nan")
    mean = float(np.mean(x))
    if mean == 0:
        return float("nan")
    d = np.diff(x)
    return float((np.sum(np.abs(d)) - abs(np.sum(d))) / (x.size - 1) / abs(mean))


def usable(record: dict, best_score: float, fraction: float = 0.5) -> bool:
    """Whether a run record trained usefully (see the module docstring)."""
    if record["diverged"]:
        return False
    score = record["final_score"]
    base = record["baseline_score"]
    return math.isfinite(score) and score >= base + fraction * (best_score - base)


def stable_range(rates: Sequence[float], ok: Sequence[bool], best: float):
    """The contiguous block of ``ok`` rates containing `best`, as ``(low, high)`` or None.

    Example:
        >>> stable_range([1e-3, 1e-2, 1e-1, 1.0], [True, True, False, True], 1e-2)
        (0.001, 0.01)
    """
    order = np.argsort(rates)
    rates = [float(rates[i]) for i in order]
    ok = [bool(ok[i]) for i in order]
    if best not in rates:
        return None
    i = rates.index(best)
    if not ok[i]:
        return None
    lo = hi = i
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    while hi < len(rates) - 1 and ok[hi + 1]:
        hi += 1
    return rates[lo], rates[hi]


def width(interval) -> float:
    """Width of a stable range in decades, 0 for a single rate, NaN for None."""
    if interval is None:
        return float("nan")
    return math.log10(interval[1] / interval[0])


def best_rate(records: Iterable[dict]):
    """The rate with the highest mean final score over seeds (ties: the lower rate)."""
    by_rate = defaultdict(list)
    for r in records:
        by_rate[r["lr"]].append(_finite(r["final_score"]))
    if not by_rate:
        return None
    means = {lr: float(np.mean(v)) for lr, v in by_rate.items()}
    top = max(means.values())
    return min(lr for lr, m in means.items() if m == top)


def _finite(value) -> float:
    return value if value is not None and math.isfinite(value) else -math.inf


def seed_curves(records: Iterable[dict]) -> dict[int, dict[float, dict]]:
    """``{seed: {lr: record}}`` for the records of one variant."""
    out: dict[int, dict[float, dict]] = defaultdict(dict)
    for r in records:
        out[r["seed"]][r["lr"]] = r
    return dict(out)


def _stats(values: Sequence[float]) -> tuple[float, float]:
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


def aggregate(records: Iterable[dict]) -> list[dict]:
    """Aggregate run records over seeds: one row per (variant, rate) with means and spreads.

    Each row has the config fields (without ``seed``; the structure fields of
    `keras_lr.study.grid.STRUCTURE_DEFAULTS` too), ``seeds`` (count), and
    ``<metric>_mean`` / ``<metric>_std`` (sample std over seeds, 0 for one seed) for
    ``final_score``, ``best_score``, ``final_loss``, ``best_loss``, ``oscillation``, plus
    ``diverged_frac`` and ``epochs_to_target_mean`` (over the seeds that reached it) and
    ``reached_frac``.
    """
    from keras_lr.study.grid import structure_of

    groups = defaultdict(list)
    for r in records:
        if r.get("kind") != "run":
            continue
        groups[(r["variant"], r["lr"])].append(r)
    rows = []
    for (_, lr), runs in groups.items():
        first = runs[0]
        row = {k: first[k] for k in ("family", "data", "optimizer", "schedule", "clip",
                                     "multipliers", "epochs", "size")}
        row.update(structure_of(first))
        row["lr"] = lr
        row["seeds"] = len(runs)
        for metric in ("final_score", "best_score", "final_loss", "best_loss", "oscillation"):
            row[f"{metric}_mean"], row[f"{metric}_std"] = _stats([r[metric] for r in runs])
        row["diverged_frac"] = float(np.mean([bool(r["diverged"]) for r in runs]))
        reached = [r["epochs_to_target"] for r in runs if r["epochs_to_target"] is not None]
        row["reached_frac"] = len(reached) / len(runs)
        row["epochs_to_target_mean"] = float(np.mean(reached)) if reached else float("nan")
        rows.append(row)
    rows.sort(key=lambda r: (r["family"], r["data"], r["optimizer"], r["schedule"], r["clip"],
                             r["multipliers"], str(tuple(structure_of(r).values())), r["lr"]))
    return rows
