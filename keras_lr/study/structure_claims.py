"""The structure stage's claims: how width, depth, normalization and residual connections move
the rate, and whether μP's rates transfer across width.

`claim_rows` turns the runs of `keras_lr.study.structure` into claims with per-seed effects and
the verdict rule of `keras_lr.study.claims.verdict`:

* **width** (`width_sp`, `width_mup`, `mup_transfer`): the width sweep under the standard
  parametrization (SP) and under μP (`keras_lr.study.structure.width_curves`). A seed's *best
  rate* at a width is the rate of lowest final validation loss, refined between grid points
  by the parabola through the best point and its two neighbours in log10(rate) (the grid
  minimum where a neighbour is missing or diverged, the vertex kept within half a grid step).
  The effect of `width_sp` and `width_mup` is the least-squares slope of log10(best rate)
  against log2(width), in decades per doubling: SP's Adam rule predicts -log10(2) = -0.30
  (hidden updates grow with fan-in).
  `width_sp`: slope < 0 (``tau = 0``, "less"). `width_mup`: ``|slope| < 0.15``, half of SP's
  prediction ("less"). `mup_transfer`: the distance ``|log10(best_small / best_large)|`` of the
  *grid* best rates at the smallest and largest width, within one grid step (``tau`` = 1.5
  steps, "less") under μP, and more than one step ("greater") under SP.
* **normalization** (`norm_stable`): ``norm="batch"`` and ``"layer"`` against none; effect
  ``log10(high_norm / high_none)``, the tops of the stable ranges, decades, ``tau = 0``,
  "greater".
* **depth** (`depth_narrows`, `residual_widens`): 1, 2, 4 and 8 hidden blocks (the CNN: conv
  blocks per stage), plain and residual. `depth_narrows`: the slope of the plain network's
  stable-range width (decades) against log2(depth), ``tau = 0``, "less". `residual_widens`:
  residual minus plain stable-range width, averaged over the depths above 1, ``tau = 0``,
  "greater".

Stable ranges follow `keras_lr.study.metrics` (a run is usable when it did not diverge and
closes half the gap from chance to the best mean final score), with the best score taken over
all the runs a claim compares (every width, depth or norm of that family and optimizer), so
both arms of a comparison use one threshold.

Example:
    >>> claim_rows([])
    []

Reference:
    Yang et al. 2022, "Tensor Programs V" (arXiv 2203.03466); He et al. 2016, "Deep Residual
    Learning"; Ioffe & Szegedy 2015; Ba et al. 2016; ``docs/study.md``, "The structure stage".
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from keras_lr.study import claims, metrics  # claims imports this module: attributes at call
from keras_lr.study.structure import (
    NORMS_SWEPT,
    depth_arms,
    norm_arms,
    select,
    subjects,
    width_curves,
)

__all__ = ["CLAIMS", "MUP_SLOPE_TAU", "TRANSFER_STEPS", "best_log_rate", "claim_rows",
           "depth_ranges", "reference", "width_rows"]

TRANSFER_STEPS = 1.5
"""`mup_transfer`'s threshold in grid steps: a distance of at most one step."""
MUP_SLOPE_TAU = 0.15
"""`width_mup`'s threshold in decades per doubling: half of SP's predicted 0.30."""

CLAIMS = {
    "width_sp": "Under SP the best Adam rate falls as the network widens",
    "width_mup": "Under muP the best rate does not move with width",
    "mup_transfer": "A rate tuned at the smallest width is within one grid step of the best "
                    "rate at the largest width under muP, and not under SP",
    "norm_stable": "Normalization raises the highest stable learning rate",
    "depth_narrows": "Deeper plain networks have a narrower stable learning-rate range",
    "residual_widens": "Residual connections widen the stable range of deep networks",
}


def _loss(record) -> float:
    value = record.get("final_loss")
    if record.get("diverged") or value is None or not math.isfinite(value):
        return math.inf
    return float(value)


def _grid_best(curve: dict) -> float:
    """The rate of lowest final validation loss of one seed's ``{lr: record}`` (ties: lower)."""
    low = min(_loss(r) for r in curve.values())
    return min(lr for lr, r in curve.items() if _loss(r) == low)


def best_log_rate(curve: dict) -> float:
    """log10 of a seed's best rate, refined by a parabola through the grid minimum and its
    neighbours (see the module docstring); NaN when every run diverged.

    Example:
        >>> recs = {lr: {"final_loss": (math.log10(lr) + 2.2) ** 2 + 0.1, "diverged": False}
        ...         for lr in (1e-4, 1e-3, 1e-2, 1e-1)}
        >>> round(best_log_rate(recs), 3)
        -2.2
    """
    rates = sorted(curve)
    losses = [_loss(curve[lr]) for lr in rates]
    if not any(math.isfinite(v) for v in losses):
        return float("nan")
    i = rates.index(_grid_best(curve))
    x = math.log10(rates[i])
    if 0 < i < len(rates) - 1 and math.isfinite(losses[i - 1]) and math.isfinite(losses[i + 1]):
        xs = np.log10([rates[i - 1], rates[i], rates[i + 1]])
        a, b, _ = np.polyfit(xs, losses[i - 1:i + 2], 2)
        if a > 0:
            half = min(xs[1] - xs[0], xs[2] - xs[1]) / 2
            x = float(np.clip(-b / (2 * a), x - half, x + half))
    return x


def _slope(xs, ys) -> float:
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ok = np.isfinite(ys)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(xs[ok], ys[ok], 1)[0])


def _width_claims(records) -> list[dict]:
    rows = []
    pairs = subjects(records, mup_base=lambda v: v is not None)
    for family, optimizer, data in pairs:
        label = f"{family} ({optimizer})"
        per = {p: width_curves(records, family, optimizer, p, data) for p in ("sp", "mup")}
        for param, curves in per.items():
            if len(curves) < 2:
                continue
            widths = sorted(curves)
            seeds = sorted(set.intersection(*(set(curves[w]) for w in widths)))
            effects, parts = [], []
            for seed in seeds:
                logs = [best_log_rate(curves[w][seed]) for w in widths]
                slope = _slope(np.log2(widths), logs)
                effects.append(slope if param == "sp" else abs(slope))
                parts.append(f"seed {seed}: " + ", ".join(
                    f"{w}: {10 ** v:.3g}" for w, v in zip(widths, logs) if math.isfinite(v)))
            detail = "best rate per width; " + "; ".join(parts)
            if param == "sp" and optimizer == "adam":
                rows.append(claims._claim("width_sp", label, effects, 0.0, "less",
                                   "decades per doubling", detail))
            if param == "mup":
                rows.append(claims._claim("width_mup", label, effects, MUP_SLOPE_TAU, "less",
                                   "decades per doubling (|slope|)", detail))
            step = claims._grid_step({lr for seeds_ in curves.values() for c in seeds_.values()
                               for lr in c})
            small, large = widths[0], widths[-1]
            distances, parts = [], []
            for seed in seeds:
                a, b = _grid_best(curves[small][seed]), _grid_best(curves[large][seed])
                finite = all(math.isfinite(_loss(curves[w][seed][r]))
                             for w, r in ((small, a), (large, b)))
                distances.append(abs(math.log10(a / b)) if finite else float("nan"))
                parts.append(f"seed {seed}: width {small} {a:.3g}, width {large} {b:.3g}")
            tau = round(TRANSFER_STEPS * step, 6)
            rows.append(claims._claim("mup_transfer", f"{label} {'muP' if param == 'mup' else 'SP'}",
                               distances, tau, "less" if param == "mup" else "greater",
                               "decades", "; ".join(parts)))
    return rows


def reference(runs) -> float:
    """The best mean final score over `runs` (every variant they hold; 1.0 without one): the
    usable threshold's reference of a comparison.

    Example:
        >>> reference([])
        1.0
    """
    best = -math.inf
    for row in metrics.aggregate(runs):
        if math.isfinite(row["final_score_mean"]):
            best = max(best, row["final_score_mean"])
    return best if math.isfinite(best) else 1.0


def _norm_claims(records) -> list[dict]:
    rows = []
    for family, optimizer, data in subjects(records, norm=lambda v: v != "none"):
        arms = norm_arms(records, family, optimizer, data)
        if not arms["none"]:
            continue
        ref = reference([r for runs in arms.values() for r in runs])
        rates = set(r["lr"] for r in arms["none"])
        for norm in NORMS_SWEPT:
            if not arms[norm]:
                continue
            shared = rates & set(r["lr"] for r in arms[norm])
            a = claims.seed_ranges(arms["none"], ref, shared)
            b = claims.seed_ranges(arms[norm], ref, shared)
            parts = [f"seed {seed}: none {claims._fmt_range(a[seed])} -> {norm} {claims._fmt_range(b[seed])}"
                     for seed in sorted(set(a) & set(b))]
            rows.append(claims._claim("norm_stable", f"{family} ({optimizer}, {norm})",
                               claims._top_shift(a, b), 0.0, "greater", "decades", "; ".join(parts)))
    return rows


def depth_ranges(records, family, optimizer, data="digits") -> dict:
    """``{(depth, residual): {seed: (low, high) or None}}``: each seed's stable range in the
    depth sweep of one family and optimizer, over the rates every arm ran, with one usable
    threshold for all the arms.

    Example:
        >>> depth_ranges([], "mlp", "adam")
        {}
    """
    arms = depth_arms(records, family, optimizer, data)
    if not arms:
        return {}
    ref = reference([r for runs in arms.values() for r in runs])
    rates = set.intersection(*(set(r["lr"] for r in runs) for runs in arms.values()))
    return {k: claims.seed_ranges(runs, ref, rates) for k, runs in arms.items()}


def _depth_claims(records) -> list[dict]:
    rows = []
    for family, optimizer, data in subjects(records, depth=lambda v: v is not None):
        ranges = depth_ranges(records, family, optimizer, data)
        plain = sorted(d for d, res in ranges if not res)
        if len(plain) < 2:
            continue
        step = claims._grid_step({r["lr"] for r in select(records, family=family,
                                                   optimizer=optimizer, data=data)})
        seeds = sorted(set.intersection(*(set(ranges[(d, False)]) for d in plain)))
        effects = [_slope(np.log2(plain), [claims._range_width(ranges[(d, False)][s], step)
                                           for d in plain]) for s in seeds]
        detail = "; ".join(f"seed {s}: " + ", ".join(
            f"depth {d} {claims._fmt_range(ranges[(d, False)][s])}" for d in plain) for s in seeds)
        label = f"{family} ({optimizer})"
        rows.append(claims._claim("depth_narrows", label, effects, 0.0, "less",
                           "decades of range per doubling", detail))
        deep = [d for d in plain if d > 1 and (d, True) in ranges]
        if not deep:
            continue
        effects, parts = [], []
        for s in seeds:
            if not all(s in ranges[(d, True)] for d in deep):
                continue
            gains = [claims._range_width(ranges[(d, True)][s], step)
                     - claims._range_width(ranges[(d, False)][s], step) for d in deep]
            effects.append(float(np.mean(gains)))
            parts.append(f"seed {s}: " + ", ".join(
                f"depth {d} {claims._fmt_range(ranges[(d, False)][s])} -> "
                f"{claims._fmt_range(ranges[(d, True)][s])}" for d in deep))
        rows.append(claims._claim("residual_widens", label, effects, 0.0, "greater", "decades",
                           "; ".join(parts)))
    return rows


def claim_rows(records) -> list[dict]:
    """The structure claims the records allow (see the module docstring)."""
    return _width_claims(records) + _norm_claims(records) + _depth_claims(records)


def width_rows(records, data="digits") -> list[list[str]]:
    """The width table: per family, optimizer and parametrization, the mean best grid rate
    per width and the transfer cost (final validation loss at the largest width with the rate
    tuned at the smallest, minus its best; mean over seeds).

    Example:
        >>> width_rows([])
        []
    """
    rows = []
    for family, optimizer, d in subjects(records, mup_base=lambda v: v is not None):
        if d != data:
            continue
        for param in ("sp", "mup"):
            curves = width_curves(records, family, optimizer, param, data)
            if len(curves) < 2:
                continue
            widths = sorted(curves)
            small, large = widths[0], widths[-1]
            bests, costs = defaultdict(list), []
            for w in widths:
                for curve in curves[w].values():
                    bests[w].append(math.log10(_grid_best(curve)))
            for seed in set(curves[small]) & set(curves[large]):
                tuned = _grid_best(curves[small][seed])
                at = curves[large][seed].get(tuned)
                if at is not None:
                    costs.append(_loss(at) - _loss(curves[large][seed][
                        _grid_best(curves[large][seed])]))
            cost = float(np.mean(costs)) if costs else float("nan")
            rows.append([f"{family}/{data}", optimizer, "muP" if param == "mup" else "SP",
                         ", ".join(f"{w}: {10 ** np.mean(bests[w]):.3g}" for w in widths),
                         "diverged" if math.isinf(cost) else f"{cost:.3f}"])
    return rows
