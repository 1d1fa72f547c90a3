"""The study's figures (matplotlib, Agg, no pyplot state), one PNG per function.

* `accuracy_vs_lr`: final validation score against the rate, per family, one line per
  optimizer, the band spanning the seeds (min to max);
* `stable_ranges`: the stable range of each family and variant (constant, warmup, clipping,
  layer-wise multipliers), the rates where every seed's run is usable;
* `schedule_curves`: validation loss per epoch of the best rate of each schedule;
* `range_tests`: each family's range-test curve with its suggestion (dot) and the grid
  optimum (dashed line);
* `lr_estimates`: the estimate d of Prodigy and DAdaptAdam over training (at their defaults,
  every step, each seed), against tuned Adam's rate.

Each returns the path written, or None when the records hold nothing to draw.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from keras_lr.study import claims, metrics

__all__ = [
    "FIGURES", "accuracy_vs_lr", "lr_estimates", "primary_data", "range_tests",
    "schedule_curves", "stable_ranges",
]

_DPI = 80


def _figure(ncols, width=3.4, height=3.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), dpi=_DPI)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _log_epochs(ax, title):
    """A panel with epochs on x and a log y axis, small legend."""
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small")


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    return str(path)


def primary_data(records) -> str:
    """The data set the figures show: digits when the records hold it (the default plan),
    else the first other image/vector data set, else "adding".

    Example:
        >>> primary_data([{"kind": "run", "data": "adding"}, {"kind": "run", "data": "mnist5k"}])
        'mnist5k'
    """
    found = {r.get("data") for r in records if r.get("kind") in ("run", "range_test")}
    if "digits" in found or not found:
        return "digits"
    others = sorted(found - {"adding", None})
    return others[0] if others else "adding"


def _families(records, **fields):
    order = ("mlp", "cnn", "lstm", "gru", "simple_rnn")
    found = {r["family"] for r in claims._runs(records, **fields)}
    return [f for f in order if f in found]


def accuracy_vs_lr(records, path, data="digits"):
    """Final validation score against the learning rate, seed band, per family/optimizer."""
    families = _families(records, data=data)
    if not families:
        return None
    fig, axes = _figure(len(families))
    for ax, family in zip(axes, families):
        for color, optimizer in zip(("C0", "C1", "C2"),
                                    ("sgd", "adam", "schedule_free_adamw")):
            runs = claims._runs(records, family=family, data=data, optimizer=optimizer)
            if not runs:
                continue
            by_rate = defaultdict(list)
            for r in runs:
                by_rate[r["lr"]].append(r["final_score"])
            lrs = sorted(by_rate)
            vals = [np.asarray(by_rate[lr], float) for lr in lrs]
            mean = [float(np.nanmean(v)) for v in vals]
            ax.plot(lrs, mean, "o-", color=color, markersize=3, label=optimizer)
            ax.fill_between(lrs, [float(np.nanmin(v)) for v in vals],
                            [float(np.nanmax(v)) for v in vals], color=color, alpha=0.2)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{family} ({data})")
        ax.set_xlabel("learning rate")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    axes[0].set_ylabel("final validation accuracy")
    return _save(fig, path)


def _aggregate_range(runs, best):
    ranges = claims.seed_ranges(runs, best)
    if not ranges or any(v is None for v in ranges.values()):
        return None
    low = max(v[0] for v in ranges.values())
    high = min(v[1] for v in ranges.values())
    return (low, high) if low <= high else None


def stable_range_rows(records):
    """``[(label, (low, high) or None)]`` for every family and variant in the records."""
    ref = claims.reference_scores(records)
    rows = []
    variants = [
        ("constant", {}), ("warmup", {"schedule": "warmup"}), ("clip", {"clip": "global_norm"}),
        ("agc", {"clip": "agc"}), ("conv x10", {"multipliers": "conv_x10"}),
        ("dense x10", {"multipliers": "dense_x10"}), ("gates x4", {"multipliers": "gates_x4"}),
    ]
    primary = primary_data(records)
    found = sorted({r["data"] for r in records if r.get("kind") == "run"} - {primary, "adding"})
    for data in (primary, *found, "adding"):
        for family in _families(records, data=data) + [
                f for f in ("cnn", "lstm") if f not in _families(records, data=data)]:
            for optimizer in ("adam", "sgd"):
                for name, fields in variants:
                    runs = claims._runs(records, family=family, data=data, optimizer=optimizer,
                                        **fields)
                    if not runs or (data == "digits" and optimizer == "sgd" and fields):
                        continue
                    rows.append((f"{family}/{data} {optimizer} {name}",
                                 _aggregate_range(runs, ref.get((family, data), 1.0))))
    return rows


def stable_ranges(records, path, data=None):
    """Horizontal bars: the stable range of each family and variant (all seeds usable), for
    every data set in the records (`data` is not used: the signature of `FIGURES`)."""
    rows = stable_range_rows(records)
    if not rows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 0.28 * len(rows) + 1.0), dpi=_DPI)
    ax = fig.subplots()
    for i, (label, interval) in enumerate(rows):
        if interval is None:
            ax.text(1e-4, i, "  none", va="center", fontsize=7, color="C3")
            continue
        low, high = interval
        ax.plot([low, high], [i, i], "-", linewidth=6, solid_capstyle="butt",
                color="C2" if "constant" in label else "C0")
        ax.plot([low, high], [i, i], "|", color="k", markersize=8)
        if low == high:  # a single grid rate
            ax.plot([low], [i], "o", color="C2" if "constant" in label else "C0", markersize=5)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label for label, _ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(5e-5, 2.0)
    ax.set_xlabel("learning rate (all seeds usable)")
    ax.set_title("stable learning-rate range")
    ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, path)


def best_per_schedule(records, family, data="digits", optimizer="adam"):
    """``{schedule: (rate, [records])}``: the best rate of each schedule (mean final score)."""
    out = {}
    schedules = sorted({r["schedule"] for r in records if r.get("kind") == "run"
                        and r["family"] == family and r["data"] == data
                        and r["optimizer"] == optimizer and r["clip"] == "none"
                        and r["multipliers"] == "none"})
    for schedule in schedules:
        runs = claims._runs(records, family=family, data=data, optimizer=optimizer,
                            schedule=schedule)
        rate = metrics.best_rate(runs)
        if rate is not None:
            out[schedule] = (rate, [r for r in runs if r["lr"] == rate])
    return out


def schedule_curves(records, path, data="digits", optimizer="adam"):
    """Validation loss per epoch of the best configuration of each schedule, per family."""
    families = [f for f in _families(records, data=data)
                if len(best_per_schedule(records, f, data, optimizer)) > 1]
    if not families:
        families = _families(records, data=data)
    if not families:
        return None
    fig, axes = _figure(len(families))
    for ax, family in zip(axes, families):
        for i, (schedule, (rate, runs)) in enumerate(
                sorted(best_per_schedule(records, family, data, optimizer).items())):
            length = min(len(r["val_loss"]) for r in runs)
            curve = np.nanmean([r["val_loss"][:length] for r in runs], axis=0)
            ax.plot(np.arange(1, length + 1), curve, "-", color=f"C{i}",
                    label=f"{schedule} ({rate:.2g})")
        _log_epochs(ax, f"{family} ({optimizer})")
    axes[0].set_ylabel("validation loss (best rate)")
    return _save(fig, path)


def range_tests(records, path, data="digits"):
    """Range-test curve (seed 0) per family, suggestion and grid optimum marked."""
    tests = defaultdict(dict)
    for r in sorted((r for r in records if r.get("kind") == "range_test"
                     and r["data"] == data), key=lambda r: r["seed"]):
        tests[r["family"]].setdefault(r["optimizer"], r)  # the lowest seed
    families = [f for f in ("mlp", "cnn", "lstm", "gru", "simple_rnn") if f in tests]
    if not families:
        return None
    fig, axes = _figure(len(families))
    for ax, family in zip(axes, families):
        for color, optimizer in zip(("C0", "C1"), ("sgd", "adam")):
            test = tests[family].get(optimizer)
            if test is None or not test["learning_rates"]:
                continue
            lrs, loss = np.asarray(test["learning_rates"]), np.asarray(test["smoothed_losses"])
            ax.plot(lrs, loss, "-", color=color, label=optimizer)
            if test["suggestion"] is not None:
                y = float(np.interp(math.log(test["suggestion"]), np.log(lrs), loss))
                ax.plot([test["suggestion"]], [y], "o", color=color, markersize=6)
            grid = claims._runs(records, family=family, data=data, optimizer=optimizer,
                                seed=test["seed"])
            best = metrics.best_rate(grid)
            if best is not None:
                ax.axvline(best, color=color, linestyle="--", linewidth=1)
            top = min(float(np.max(loss)), 2.0 * float(loss[0]))
            ax.set_ylim(max(0.0, float(np.min(loss)) * 0.8), top * 1.05)
        ax.set_xscale("log")
        ax.set_title(f"{family}: range test")
        ax.set_xlabel("learning rate")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", title="dot: valley, dashed: grid best",
                  title_fontsize="x-small")
    axes[0].set_ylabel("smoothed training loss")
    return _save(fig, path)


def lr_estimates(records, path, data="digits"):
    """The estimate d of Prodigy and DAdaptAdam after every step (their defaults: the step
    size is d), per family: one line per seed, on a log scale; dotted: tuned Adam's rate
    (`keras_lr.study.lrfree.tuned_adam`), the step size it was compared with."""
    from keras_lr.study import lrfree

    families = [f for f in ("mlp", "cnn", "lstm", "gru", "simple_rnn")
                if any(lrfree.d_curves(records, f, o, data) for o in lrfree.ESTIMATORS)]
    if not families:
        return None
    fig, axes = _figure(len(families))
    for ax, family in zip(axes, families):
        for color, optimizer in zip(("C3", "C4"), lrfree.ESTIMATORS):
            curves = lrfree.d_curves(records, family, optimizer, data)
            for i, (seed, d) in enumerate(curves.items()):
                runs = lrfree.default_runs(records, family, optimizer, data)
                per_epoch = len(d) / max(1, runs[seed]["epochs_run"])
                ax.plot(np.arange(1, len(d) + 1) / per_epoch, d, "-", color=color,
                        linewidth=1, alpha=0.8, label=optimizer if i == 0 else None)
        tuned = lrfree.tuned_adam(records, family, data)
        if tuned is not None:
            ax.axhline(tuned[1], color="C1", linestyle=":", linewidth=1.5,
                       label=f"adam {tuned[0]} {tuned[1]:.2g}")
        _log_epochs(ax, f"{family} ({data})")
    axes[0].set_ylabel("d (step size at the defaults)")
    return _save(fig, path)


FIGURES = {
    "study_accuracy_vs_lr.png": accuracy_vs_lr,
    "study_stable_range.png": stable_ranges,
    "study_schedules.png": schedule_curves,
    "study_range_test.png": range_tests,
    "study_lr_free_d.png": lr_estimates,
}
"""File name -> function ``(records, path, data) -> path or None``; `data` is the data set
shown (`primary_data`)."""
