"""The structural claims the study tests, each with a measured effect and an explicit verdict.

Every claim is reduced to one *effect per seed* (paired: the same seed gives the same initial
weights and batch order in both arms), in a stated unit, and a threshold ``tau``. With ``m``
the mean and ``s`` the sample standard deviation of the per-seed effects over ``n`` seeds:

* direction "greater" (the claim says the effect is large):
  **supported** if ``m - s > tau``; **not supported** if ``m + s <= tau``;
* direction "less" (the claim says the effect is small, e.g. a distance):
  **supported** if ``m + s < tau``; **not supported** if ``m - s >= tau``;
* otherwise, or with fewer than two seeds with a finite effect, **inconclusive**; when the
  grid has no data for the claim, **not measured**.

That is: the one-spread interval around the mean effect must lie entirely on one side of the
threshold (``m`` and ``s`` are rounded to 6 decimals first, so that one grid step of exactly
half a decade equals ``tau = 0.5``). Effects measured on the learning-rate grid move in grid steps (half a decade on the
default grid), so a widening smaller than one grid step is invisible.

Claims (see ``docs/study.md`` for the rationale of each threshold):

1. Adam's best rate is far below SGD's: ``log10(best_sgd / best_adam)`` decades, per family,
   ``tau = 0.5``, greater.
2. Warmup widens the stable range of the CNN: width(warmup) - width(constant), decades,
   ``tau = 0``, greater.
3. Clipping widens the stable range of LSTM and GRU (adding task, Adam): width(clip) -
   width(none), decades, per clipping rule, ``tau = 0``, greater.
4. Conv layers tolerate higher rates than dense layers: ``log10(high_conv / high_dense)``
   with ``high_X`` the top of the stable range when X's layers get 10x the rate, decades,
   ``tau = 0``, greater.
5. Higher gate rates help LSTMs: best final score with the i, f, o gates at 4x minus best
   final score without, over the same rates, ``tau = 0``, greater.
6. The range-test suggestion lands near the grid optimum: ``|log10(suggestion / best)|``
   decades, per family and optimizer, ``tau = 0.5``, less.
7. At its defaults a learning-rate-free optimizer comes within 1 accuracy point of tuned
   Adam: ``100 * (score_tuned_adam - score_default)``, accuracy points, per family and
   optimizer (Prodigy, DAdaptAdam, ScheduleFreeAdamW), ``tau = 1``, less (see
   `keras_lr.study.lrfree`).
8. The structure claims (width under SP and μP, the μP transfer, normalization, depth and
   residual connections): see `keras_lr.study.structure_claims`.

The learning-rate-free runs do not enter the other claims: the reference score that decides
whether a run is usable (`reference_scores`) is taken over the SGD and Adam runs only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from keras_lr.study import metrics
from keras_lr.study.structure_claims import CLAIMS as _structure_claims

__all__ = ["CLAIMS", "evaluate_claims", "verdict"]

CLAIMS = {
    "adam_vs_sgd": "Adam's best learning rate is far below SGD's",
    "warmup_cnn": "Warmup widens the stable learning-rate range of the CNN",
    "clip_rnn": "Gradient clipping widens the stable learning-rate range of LSTM and GRU",
    "conv_vs_dense": "Conv layers tolerate higher learning rates than dense layers",
    "gates_lstm": "Higher gate learning rates help LSTMs",
    "range_test": "The range-test suggestion lands near the grid optimum",
    "lr_free": "At its defaults a learning-rate-free optimizer comes within 1 accuracy point "
               "of tuned Adam",
}
CLAIMS.update(_structure_claims)


def verdict(effects: Sequence[float], tau: float, direction: str = "greater"):
    """Apply the verdict rule to per-seed effects; return ``(verdict, mean, spread, n)``.

    Example:
        >>> verdict([1.0, 1.5], 0.5)[0]
        'supported'
        >>> verdict([0.0, 0.0], 0.0)[0]
        'not supported'
        >>> verdict([-0.5, 1.0], 0.0)[0]
        'inconclusive'
        >>> verdict([0.1, 0.2], 0.5, "less")[0]
        'supported'
    """
    x = np.asarray([e for e in effects if e is not None and math.isfinite(e)], np.float64)
    n = int(x.size)
    if n == 0:
        return "not measured", float("nan"), float("nan"), 0
    # Rounded so that an effect of exactly one grid step (e.g. log10(0.0316228 / 0.01))
    # compares equal to a threshold of 0.5 instead of landing on either side by float noise.
    m = round(float(x.mean()), 6)
    s = round(float(x.std(ddof=1)), 6) if n > 1 else 0.0
    if n < 2:
        return "inconclusive", m, s, n
    if direction == "greater":
        if m - s > tau:
            return "supported", m, s, n
        if m + s <= tau:
            return "not supported", m, s, n
    elif direction == "less":
        if m + s < tau:
            return "supported", m, s, n
        if m - s >= tau:
            return "not supported", m, s, n
    else:
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    return "inconclusive", m, s, n


# ---------------------------------------------------------------------- helpers
def _runs(records, **fields):
    """Runs matching `fields`; schedule, clipping, multipliers and the structure fields at
    their defaults unless given (the structure stage's runs stay out of the other claims)."""
    from keras_lr.study.grid import STRUCTURE_DEFAULTS

    defaults = {"schedule": "constant", "clip": "none", "multipliers": "none",
                **STRUCTURE_DEFAULTS}
    want = {**defaults, **fields}
    return [r for r in records if r.get("kind") == "run"
            and all(r.get(k, STRUCTURE_DEFAULTS.get(k)) == v for k, v in want.items())]


def reference_scores(records) -> dict:
    """Best mean final score per (family, data) over every SGD and Adam variant and rate of
    the size's own models (neither the learning-rate-free sub-study nor the structure stage
    moves the other claims' usable threshold)."""
    from keras_lr.study.grid import OPTIMIZERS, STRUCTURE_DEFAULTS

    best: dict = {}
    for row in metrics.aggregate(records):
        if row["optimizer"] not in OPTIMIZERS or any(
                row.get(k, v) != v for k, v in STRUCTURE_DEFAULTS.items()):
            continue
        key = (row["family"], row["data"])
        value = row["final_score_mean"]
        if math.isfinite(value):
            best[key] = max(best.get(key, -math.inf), value)
    return best


def _seed_best(curve: dict) -> float:
    """The rate with the best final score of one seed's ``{lr: record}`` (ties: lower)."""
    top = max(_score(r) for r in curve.values())
    return min(lr for lr, r in curve.items() if _score(r) == top)


def _score(record) -> float:
    value = record["final_score"]
    return value if value is not None and math.isfinite(value) else -math.inf


def seed_ranges(runs, ref_best: float, rates=None) -> dict:
    """``{seed: (low, high) or None}``: each seed's stable range over `rates` (all by default)."""
    out = {}
    for seed, curve in metrics.seed_curves(runs).items():
        if rates is not None:
            curve = {lr: r for lr, r in curve.items() if lr in rates}
        if not curve:
            continue
        lrs = sorted(curve)
        ok = [metrics.usable(curve[lr], ref_best) for lr in lrs]
        out[seed] = metrics.stable_range(lrs, ok, _seed_best(curve))
    return out


def _common_rates(a, b):
    return set(r["lr"] for r in a) & set(r["lr"] for r in b)


def _claim(cid, subject, effects, tau, direction, unit, detail=""):
    result, m, s, n = verdict(effects, tau, direction)
    rule = (f"supported if mean - spread > {tau:g}" if direction == "greater"
            else f"supported if mean + spread < {tau:g}")
    return {"id": cid, "claim": CLAIMS[cid], "subject": subject, "effect": m, "spread": s,
            "seeds": n, "unit": unit, "tau": tau, "direction": direction, "rule": rule,
            "verdict": result, "detail": detail}


def _grid_step(rates) -> float:
    """The grid's spacing in decades (median; 1 decade when there are fewer than 2 rates)."""
    logs = np.log10(sorted(rates))
    return float(np.median(np.diff(logs))) if len(logs) > 1 else 1.0


def _range_width(interval, step) -> float:
    """A seed's stable-range width in decades; no usable rate counts as ``-step`` (one grid
    step narrower than a single usable rate)."""
    return metrics.width(interval) if interval else -step


def _top_shift(base: dict, variant: dict) -> list[float]:
    """Per shared seed (sorted), ``log10(top_variant / top_base)`` of two `seed_ranges`: how
    far the variant's stable range reaches above the base's; NaN where either has none."""
    return [math.log10(variant[s][1] / base[s][1])
            if base[s] is not None and variant[s] is not None else float("nan")
            for s in sorted(set(base) & set(variant))]


def _width_effects(base_runs, variant_runs, ref_best):
    """Per-seed width(variant) - width(base) in decades. A seed with no usable rate counts as
    one grid step narrower than a single usable rate (width ``-step``), so that "none ->
    one rate" is a widening and "none -> none" no change."""
    rates = _common_rates(base_runs, variant_runs)
    a = seed_ranges(base_runs, ref_best, rates)
    b = seed_ranges(variant_runs, ref_best, rates)
    step = _grid_step(rates)
    effects = [_range_width(b[seed], step) - _range_width(a[seed], step)
               for seed in sorted(set(a) & set(b))]
    detail = "; ".join(f"seed {s}: {_fmt_range(a[s])} -> {_fmt_range(b[s])}"
                       for s in sorted(set(a) & set(b)))
    return effects, detail


def _fmt_range(interval) -> str:
    if interval is None:
        return "none"
    return f"[{interval[0]:.3g}, {interval[1]:.3g}]"


# ---------------------------------------------------------------------- the claims
def evaluate_claims(records: list[dict]) -> list[dict]:
    """Evaluate every claim the records allow; one row (dict) per claim and subject."""
    ref = reference_scores(records)
    rows = []
    families = sorted({r["family"] for r in records if r.get("kind") == "run"})

    # 1. Adam vs SGD, per family on digits.
    for family in families:
        adam = metrics.seed_curves(_runs(records, family=family, data="digits",
                                         optimizer="adam"))
        sgd = metrics.seed_curves(_runs(records, family=family, data="digits",
                                        optimizer="sgd"))
        seeds = sorted(set(adam) & set(sgd))
        if not seeds:
            continue
        effects = [math.log10(_seed_best(sgd[s]) / _seed_best(adam[s])) for s in seeds]
        detail = "; ".join(f"seed {s}: sgd {_seed_best(sgd[s]):.3g}, adam "
                           f"{_seed_best(adam[s]):.3g}" for s in seeds)
        rows.append(_claim("adam_vs_sgd", family, effects, 0.5, "greater", "decades", detail))

    # 2. Warmup widens the CNN's stable range (adam, digits).
    base = _runs(records, family="cnn", data="digits", optimizer="adam")
    warm = _runs(records, family="cnn", data="digits", optimizer="adam", schedule="warmup")
    if base and warm:
        effects, detail = _width_effects(base, warm, ref.get(("cnn", "digits"), 1.0))
        rows.append(_claim("warmup_cnn", "cnn", effects, 0.0, "greater", "decades", detail))

    # 3. Clipping widens the stable range of LSTM and GRU (adding, any optimizer present).
    for family in ("lstm", "gru"):
        for optimizer in ("sgd", "adam"):
            base = _runs(records, family=family, data="adding", optimizer=optimizer)
            if not base:
                continue
            for clip in ("global_norm", "agc"):
                clipped = _runs(records, family=family, data="adding", optimizer=optimizer,
                                clip=clip)
                if not clipped:
                    continue
                effects, detail = _width_effects(base, clipped, ref.get((family, "adding"), 1.0))
                rows.append(_claim("clip_rnn", f"{family} ({optimizer}, {clip})", effects, 0.0,
                                   "greater", "decades", detail))

    # 4. Conv vs dense layers (LayerwiseLR, 10x).
    conv = _runs(records, family="cnn", data="digits", optimizer="adam", multipliers="conv_x10")
    dense = _runs(records, family="cnn", data="digits", optimizer="adam",
                  multipliers="dense_x10")
    if conv and dense:
        best = ref.get(("cnn", "digits"), 1.0)
        rates = _common_rates(conv, dense)
        a, b = seed_ranges(conv, best, rates), seed_ranges(dense, best, rates)
        effects = _top_shift(b, a)  # log10(high_conv / high_dense)
        detail = "; ".join(f"seed {s}: conv x10 {_fmt_range(a[s])}, dense x10 "
                           f"{_fmt_range(b[s])}" for s in sorted(set(a) & set(b)))
        rows.append(_claim("conv_vs_dense", "cnn", effects, 0.0, "greater", "decades", detail))

    # 5. Gate multipliers on the LSTM.
    plain = _runs(records, family="lstm", data="digits", optimizer="adam")
    gates = _runs(records, family="lstm", data="digits", optimizer="adam",
                  multipliers="gates_x4")
    if plain and gates:
        rates = _common_rates(plain, gates)
        a, b = metrics.seed_curves(plain), metrics.seed_curves(gates)
        effects = []
        for seed in sorted(set(a) & set(b)):
            best_a = max(_score(r) for lr, r in a[seed].items() if lr in rates)
            best_b = max(_score(r) for lr, r in b[seed].items() if lr in rates)
            effects.append(best_b - best_a)
        rows.append(_claim("gates_lstm", "lstm", effects, 0.0, "greater", "score",
                           "best final accuracy over the shared rates, gates x4 minus plain"))

    # 6. Range test vs grid optimum.
    tests = defaultdict(dict)
    for r in records:
        if r.get("kind") == "range_test":
            tests[(r["family"], r["data"], r["optimizer"])][r["seed"]] = r
    for (family, data, optimizer), by_seed in sorted(tests.items()):
        grid = metrics.seed_curves(_runs(records, family=family, data=data,
                                         optimizer=optimizer))
        effects, parts = [], []
        for seed, test in sorted(by_seed.items()):
            if seed not in grid or test["suggestion"] is None:
                continue
            best = _seed_best(grid[seed])
            effects.append(abs(math.log10(test["suggestion"] / best)))
            parts.append(f"seed {seed}: suggestion {test['suggestion']:.3g}, grid {best:.3g}")
        if effects:
            rows.append(_claim("range_test", f"{family}/{data} ({optimizer})", effects, 0.5,
                               "less", "decades", "; ".join(parts)))

    # 7. Learning-rate-free optimizers at their defaults against tuned Adam.
    from keras_lr.study import lrfree

    rows += lrfree.claim_rows(records)

    # 8. Width, μP, normalization, depth and residual connections.
    from keras_lr.study import structure_claims

    rows += structure_claims.claim_rows(records)
    return rows
