"""The structure stage's figures (matplotlib, Agg, no pyplot state), one PNG per function.

* `width_transfer`: final validation loss against the rate, one curve per width (mean over
  seeds, a dot at its minimum), the standard parametrization's panel beside μP's, one row per
  family and optimizer: the figure of the μP paper (Yang et al. 2022, Figure 1);
* `depth_ranges`: the stable range (rates where every seed is usable) against depth, plain
  and residual side by side;
* `norm_ranges`: the stable range without normalization, with BatchNorm and with LayerNorm.

Each returns the path written, or None when the records hold nothing to draw.

Example:
    >>> width_transfer([], "unused.png") is None
    True

Reference:
    ``docs/study.md``, "The structure stage"; `keras_lr.study.structure`,
    `keras_lr.study.structure_claims`.
"""

from __future__ import annotations

import math

import numpy as np

from keras_lr.study import structure, structure_claims
from keras_lr.study.figures import _DPI, _aggregate_range, _save

__all__ = ["FIGURES", "depth_ranges", "norm_ranges", "width_transfer"]


def _grid(nrows, ncols, width=3.6, height=2.9):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), dpi=_DPI)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _pairs(records, data, **fields):
    return [(f, o) for f, o, d in structure.subjects(records, **fields) if d == data]


def _mean_loss(seeds: dict) -> tuple[list, list]:
    rates = sorted(set.intersection(*(set(c) for c in seeds.values())))
    means = []
    for lr in rates:
        values = [structure_claims._loss(seeds[s][lr]) for s in seeds]
        means.append(float(np.mean(values)) if all(map(math.isfinite, values)) else math.nan)
    return rates, means


def width_transfer(records, path, data="digits"):
    """SP beside μP: validation loss against the rate, one curve per width."""
    pairs = _pairs(records, data, mup_base=lambda v: v is not None)
    if not pairs:
        return None
    from matplotlib import colormaps

    fig, axes = _grid(len(pairs), 2)
    for row, (family, optimizer) in enumerate(pairs):
        for col, param in enumerate(("sp", "mup")):
            ax = axes[row][col]
            curves = structure.width_curves(records, family, optimizer, param, data)
            widths = sorted(curves)
            colors = colormaps["viridis"](np.linspace(0.0, 0.85, max(len(widths), 1)))
            for color, w in zip(colors, widths):
                rates, means = _mean_loss(curves[w])
                ax.plot(rates, means, "o-", color=color, markersize=3, label=f"width {w}")
                finite = [(m, lr) for lr, m in zip(rates, means) if math.isfinite(m)]
                if finite:
                    low, at = min(finite)
                    ax.plot([at], [low], "o", color=color, markersize=8, alpha=0.5)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{family} {optimizer}: {'muP' if param == 'mup' else 'SP'}")
            ax.set_xlabel("learning rate")
            ax.grid(True, alpha=0.3)
            if widths:
                ax.legend(fontsize="x-small")
        axes[row][0].set_ylabel(f"final validation loss ({data})")
    return _save(fig, path)


def _bar(ax, x, interval, color, label=None):
    if interval is None:
        ax.plot([x], [2e-4], "x", color=color, markersize=6)
        return
    low, high = interval
    ax.plot([x, x], [low, high], "-", color=color, linewidth=6, solid_capstyle="butt",
            label=label)
    if low == high:
        ax.plot([x], [low], "o", color=color, markersize=6)


def _range_axes(ax, title):
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 2.0)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)


def depth_ranges(records, path, data="digits"):
    """Stable range against depth, plain (left bar) and residual (right bar)."""
    pairs = _pairs(records, data, depth=lambda v: v is not None)
    if not pairs:
        return None
    fig, axes = _grid(1, len(pairs))
    for ax, (family, optimizer) in zip(axes[0], pairs):
        ranges = _aggregate(records, family, optimizer, data)
        depths = sorted({d for d, _ in ranges})
        for i, depth in enumerate(depths):
            for offset, residual, color in ((-0.12, False, "C0"), (0.12, True, "C1")):
                if (depth, residual) in ranges:
                    _bar(ax, i + offset, ranges[(depth, residual)], color,
                         label=("residual" if residual else "plain") if i == 0 else None)
        ax.set_xticks(range(len(depths)))
        ax.set_xticklabels([str(d) for d in depths])
        ax.set_xlabel("depth (hidden blocks)" if family == "mlp" else "conv blocks per stage")
        _range_axes(ax, f"{family} {optimizer}")
        ax.legend(fontsize="x-small")
    axes[0][0].set_ylabel("stable range (all seeds usable)")
    return _save(fig, path)


def _aggregate(records, family, optimizer, data):
    """``{(depth, residual): range where every seed is usable}`` of the depth sweep."""
    arms = structure.depth_arms(records, family, optimizer, data)
    if not arms:
        return {}
    ref = structure_claims.reference([r for runs in arms.values() for r in runs])
    return {k: _aggregate_range(runs, ref) for k, runs in arms.items()}


def norm_ranges(records, path, data="digits"):
    """Stable range with no normalization, BatchNorm and LayerNorm."""
    pairs = _pairs(records, data, norm=lambda v: v != "none")
    if not pairs:
        return None
    fig, axes = _grid(1, len(pairs), width=2.8)
    norms = ("none",) + structure.NORMS_SWEPT
    for ax, (family, optimizer) in zip(axes[0], pairs):
        arms = structure.norm_arms(records, family, optimizer, data)
        ref = structure_claims.reference([r for runs in arms.values() for r in runs])
        for i, norm in enumerate(norms):
            if arms[norm]:
                _bar(ax, i, _aggregate_range(arms[norm], ref), f"C{i}")
        ax.set_xticks(range(len(norms)))
        ax.set_xticklabels(norms)
        ax.set_xlim(-0.6, len(norms) - 0.4)
        _range_axes(ax, f"{family} {optimizer}")
    axes[0][0].set_ylabel("stable range (all seeds usable)")
    return _save(fig, path)


FIGURES = {
    "study_width_transfer.png": width_transfer,
    "study_depth.png": depth_ranges,
    "study_norm.png": norm_ranges,
}
"""File name -> function ``(records, path, data) -> path or None``."""
