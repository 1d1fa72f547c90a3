"""`SweepResult`: what a parallel learning-rate sweep returns.

Per replica: the rate, the seed, the history of every loss and metric per epoch (train and
validation), whether it diverged (and at which optimizer step it was frozen), and the trained
model itself (`SweepResult.model`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from keras_lr._validation import check_choice, check_int, fail

__all__ = ["SweepResult"]


class SweepResult:
    """The outcome of `keras_lr.sweep.parallel_fit`.

    Attributes:
        learning_rates: ``(N,)`` peak rate of each replica.
        seeds: the seed of each replica, or ``None`` when `build_model` took none.
        history: ``{name: array (epochs, N)}`` for ``loss``, each metric, and their
            ``val_`` counterparts when validation data were given.
        diverged: ``(N,)`` booleans; a diverged replica was frozen at its last finite weights.
        diverged_step: ``(N,)`` optimizer step at which each replica was frozen, -1 if never.

    Example:
        >>> result = parallel_fit(build, [1e-3, 1e-2], x, y, epochs=2)  # doctest: +SKIP
        >>> result.best()["learning_rate"]  # doctest: +SKIP
        0.01
        >>> result.to_frame().head()  # doctest: +SKIP
    """

    def __init__(
        self,
        learning_rates: Sequence[float],
        seeds: Sequence[int] | None,
        history: dict[str, np.ndarray],
        diverged: Sequence[bool],
        diverged_step: Sequence[int],
        extract: Callable[[int], Any] | None = None,
    ):
        self.learning_rates = np.asarray(learning_rates, dtype="float64")
        self.seeds = None if seeds is None else tuple(int(s) for s in seeds)
        self.history = {k: np.asarray(v, dtype="float64") for k, v in history.items()}
        self.diverged = np.asarray(diverged, dtype=bool)
        self.diverged_step = np.asarray(diverged_step, dtype="int64")
        self._extract = extract

    def __len__(self) -> int:
        return len(self.learning_rates)

    def __repr__(self) -> str:
        return (
            f"SweepResult(replicas={len(self)}, epochs={self.epochs}, "
            f"diverged={int(self.diverged.sum())}, metrics={sorted(self.history)})"
        )

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return len(next(iter(self.history.values()))) if self.history else 0

    def _default_metric(self) -> str:
        return "val_loss" if "val_loss" in self.history else "loss"

    def _check_metric(self, metric: str | None) -> str:
        metric = self._default_metric() if metric is None else metric
        check_choice("metric", metric, sorted(self.history))
        return metric

    def final(self, metric: str | None = None) -> np.ndarray:
        """The last epoch's value of `metric` for every replica, ``(N,)``."""
        return self.history[self._check_metric(metric)][-1]

    def best(self, metric: str | None = None, mode: str = "auto") -> dict[str, Any]:
        """The replica with the best final `metric`, ignoring diverged and non-finite ones.

        Args:
            metric: a key of `history`; default ``"val_loss"`` if recorded, else ``"loss"``.
            mode: ``"min"``, ``"max"`` or ``"auto"`` (max for names containing ``acc``,
                min otherwise, as Keras callbacks guess).

        Returns:
            ``{"index", "learning_rate", "seed", "metric", "value"}``.

        Raises:
            ValueError: every replica diverged or ended non-finite.
        """
        metric = self._check_metric(metric)
        mode = check_choice("mode", mode, ("auto", "min", "max"))
        if mode == "auto":
            mode = "max" if "acc" in metric else "min"
        values = self.final(metric)
        ok = ~self.diverged & np.isfinite(values)
        if not ok.any():
            raise ValueError(
                f"No replica has a finite final `{metric}`: all {len(self)} diverged or ended "
                "non-finite. Lower the learning rates."
            )
        scores = np.where(ok, values, np.inf if mode == "min" else -np.inf)
        index = int(np.argmin(scores) if mode == "min" else np.argmax(scores))
        return {
            "index": index,
            "learning_rate": float(self.learning_rates[index]),
            "seed": None if self.seeds is None else self.seeds[index],
            "metric": metric,
            "value": float(values[index]),
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: rates, seeds, divergence, and ``history[name][replica][epoch]``."""

        def clean(v: float):
            return float(v) if math.isfinite(v) else None

        return {
            "learning_rates": [float(r) for r in self.learning_rates],
            "seeds": None if self.seeds is None else list(self.seeds),
            "diverged": [bool(d) for d in self.diverged],
            "diverged_step": [int(s) for s in self.diverged_step],
            "history": {
                k: [[clean(v) for v in v_epochs] for v_epochs in arr.T]
                for k, arr in self.history.items()
            },
        }

    def to_frame(self):
        """A long `pandas.DataFrame`: one row per replica and epoch (pandas must be installed).

        Columns: ``replica, learning_rate, seed, epoch, diverged`` and one per metric.
        """
        try:
            import pandas as pd
        except ImportError as error:  # pragma: no cover - pandas is usually there
            raise ImportError("SweepResult.to_frame() needs pandas: pip install pandas") from error
        rows = []
        for i in range(len(self)):
            for epoch in range(self.epochs):
                row = {
                    "replica": i,
                    "learning_rate": float(self.learning_rates[i]),
                    "seed": None if self.seeds is None else self.seeds[i],
                    "epoch": epoch + 1,
                    "diverged": bool(self.diverged[i]),
                }
                row.update({k: float(v[epoch, i]) for k, v in self.history.items()})
                rows.append(row)
        return pd.DataFrame(rows)

    def plot(self, metric: str | None = None, ax=None):
        """Plot the final `metric` against the learning rate (log axis); diverged replicas
        are drawn as red crosses at the top of the axes.

        Returns:
            The matplotlib ``Axes``.
        """
        import matplotlib.pyplot as plt

        metric = self._check_metric(metric)
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        values = self.final(metric)
        ok = ~self.diverged & np.isfinite(values)
        order = np.argsort(self.learning_rates)
        ok_sorted = order[ok[order]]
        ax.plot(self.learning_rates[ok_sorted], values[ok_sorted], "o-", label=metric)
        if (~ok).any():
            top = np.nanmax(values[ok]) if ok.any() else 1.0
            ax.plot(self.learning_rates[~ok], np.full((~ok).sum(), top), "rx",
                    label="diverged")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(metric)
        ax.legend()
        return ax

    def model(self, i: int):
        """Replica `i` as a standalone Keras model (the architecture `build_model` returns)
        with its trained weights, compiled with the sweep's loss and metrics and a fresh
        optimizer at the replica's rate (optimizer state is not carried over)."""
        i = check_int("i", i, minimum=0)
        if i >= len(self):
            fail("i", f"must be < {len(self)} (the number of replicas)", i)
        if self._extract is None:
            raise ValueError("This SweepResult holds no models (it was rebuilt from data).")
        return self._extract(i)
