"""`LRFinderResult`: the curve of a learning-rate range test, its suggestions and its plot."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from keras_lr._validation import check_choice, check_int
from keras_lr.finder.suggest import METHODS

__all__ = ["STOP_REASONS", "LRFinderResult"]

#: Why a range test ended: all steps ran, the smoothed loss passed ``stop_factor`` x its best,
#: or a loss was NaN/inf (that step is not recorded).
STOP_REASONS = ("completed", "diverged", "non-finite")


def _array(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


@dataclass(eq=False)
class LRFinderResult:
    """What `find_lr` measured: one point per training step, finite values only.

    Attributes:
        learning_rates: the rate used at each recorded step,
            ``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``.
        losses: the training loss of each step (the batch's loss, as ``model.fit`` logs it).
        smoothed_losses: ``avg = b * avg + (1 - b) * loss`` debiased by ``1 - b ** (i + 1)``
            with ``b = smoothing``; the suggestions and the plot use these.
        stop_reason: ``"completed"``, ``"diverged"`` (the smoothed loss exceeded
            ``stop_factor`` x its best; that step is the last one recorded) or
            ``"non-finite"`` (a NaN/inf loss; the arrays stop just before it).
        num_steps: the number of steps requested (sets the suggestions' window).
        start_lr, end_lr, smoothing, stop_factor: the arguments of the run.

    Example:

    ```python
    result = keras_lr.find_lr(model, x, y, num_steps=100)
    result.suggestion()            # fastai's "valley"
    result.suggestions()           # {"valley": ..., "steep": ..., "minimum": ...}
    result.plot(path="lr_find.png")
    ```
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed_losses: np.ndarray
    stop_reason: str = "completed"
    num_steps: int | None = None
    start_lr: float | None = None
    end_lr: float | None = None
    smoothing: float | None = None
    stop_factor: float | None = None

    def __post_init__(self):
        self.learning_rates = _array(self.learning_rates)
        self.losses = _array(self.losses)
        self.smoothed_losses = _array(self.smoothed_losses)
        check_choice("stop_reason", self.stop_reason, STOP_REASONS)
        n = len(self.learning_rates)
        if len(self.losses) != n or len(self.smoothed_losses) != n:
            raise ValueError(
                "Arguments `learning_rates`, `losses` and `smoothed_losses` must have the same "
                f"length. Received: lengths {n}, {len(self.losses)}, "
                f"{len(self.smoothed_losses)}"
            )
        if self.num_steps is None:
            self.num_steps = n

    # ------------------------------------------------------------------ properties
    @property
    def diverged(self) -> bool:
        """True when the test ended early (``stop_reason`` is "diverged" or "non-finite")."""
        return self.stop_reason != "completed"

    def __len__(self) -> int:
        return len(self.learning_rates)

    # ------------------------------------------------------------------ suggestions
    def window(self, skip_start: int | None = None, skip_end: int | None = None) -> slice:
        """The slice of the curve the suggestions look at.

        fastai's default: skip the first ``num_steps // 10`` points (the loss has barely moved)
        and the last 5 (the blow-up). A curve of `skip_end` points or fewer leaves an empty
        window (never one counted from the other end).
        """
        skip_start = self.num_steps // 10 if skip_start is None else skip_start
        skip_end = 5 if skip_end is None else skip_end
        skip_start = check_int("skip_start", skip_start, minimum=0)
        skip_end = check_int("skip_end", skip_end, minimum=0)
        return slice(skip_start, max(len(self) - skip_end, 0))

    def suggestion(
        self,
        method: str = "valley",
        *,
        skip_start: int | None = None,
        skip_end: int | None = None,
        return_index: bool = False,
    ):
        """Suggest a learning rate from the smoothed curve.

        Args:
            method: ``"valley"`` (fastai's default: inside the longest decreasing stretch),
                ``"steep"`` (steepest descent against log lr) or ``"minimum"`` (the rate at
                the lowest loss / 10). See `keras_lr.finder.suggest`.
            skip_start: points skipped at the start (default ``num_steps // 10``, as fastai).
            skip_end: points skipped at the end (default 5, as fastai).
            return_index: also return the index (into the full arrays) of the point the
                suggestion is drawn at.

        Returns:
            The suggested rate (a float), or ``(rate, index)`` with `return_index`.

        Raises:
            ValueError: unknown method, or too few points left in the window (the test
                stopped very early: lower `start_lr` or `skip_start`).
        """
        check_choice("method", method, tuple(METHODS))
        window = self.window(skip_start, skip_end)
        lrs = self.learning_rates[window]
        losses = self.smoothed_losses[window]
        lr, index = METHODS[method](lrs, losses)
        index += window.start
        return (lr, index) if return_index else lr

    def suggestions(self, **kwargs) -> dict[str, float | None]:
        """All suggestions by method name; None where the curve is too short for one.

        Keyword arguments go to `suggestion` (`skip_start`, `skip_end`).
        """
        out = {}
        for method in METHODS:
            try:
                out[method] = self.suggestion(method, **kwargs)
            except ValueError:
                out[method] = None
        return out

    # ------------------------------------------------------------------ plot
    def plot(self, ax=None, path=None, *, suggestions: bool = True, title: str | None = None):
        """Plot the loss against the learning rate (log axis), with the suggestions marked.

        Only the recorded finite prefix is drawn (a non-finite step is never recorded). The
        raw losses are drawn faintly behind the smoothed curve; the y axis is cut a little
        above the starting loss so that the blow-up at the end does not flatten the curve.

        Args:
            ax: a matplotlib Axes to draw into; a new Figure (Agg, no pyplot state) otherwise.
            path: if given, save the figure there (any format matplotlib knows).
            suggestions: mark the suggestions that can be computed.
            title: axes title (default: the stop reason and the valley suggestion).

        Returns:
            The matplotlib ``Axes``.
        """
        if ax is None:
            from matplotlib.figure import Figure

            fig = Figure(figsize=(6.0, 4.0), dpi=100)
            ax = fig.subplots()
        lrs, raw, smooth = self.learning_rates, self.losses, self.smoothed_losses
        if len(lrs):
            ax.plot(lrs, raw, color="0.75", linewidth=0.8, label="loss")
            ax.plot(lrs, smooth, color="C0", linewidth=1.8, label="smoothed loss")
            low, high = float(np.min(smooth)), float(np.max(smooth))
            start = float(smooth[0])
            top = min(high, start + 0.5 * max(start - low, abs(start) * 0.05))
            if math.isfinite(top) and top > low:
                margin = 0.05 * (top - low)
                ax.set_ylim(low - margin, top + margin)
        marks = self.suggestions() if suggestions and len(lrs) else {}
        for color, (name, lr) in zip(("C1", "C2", "C3"), marks.items()):
            if lr is None:
                continue
            y = float(np.interp(np.log(lr), np.log(lrs), smooth))  # on the curve at `lr`
            ax.plot([lr], [y], "o", color=color, markersize=7, label=f"{name}: {lr:.2e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        if title is None:
            title = f"LR range test ({self.stop_reason}, {len(lrs)} steps)"
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        if len(lrs):
            ax.legend(loc="best", fontsize="small")
        if path is not None:
            ax.figure.savefig(path, bbox_inches="tight")
        return ax

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self) -> dict:
        """A JSON-ready dict (lists of floats) that `from_dict` reads back.

        The ``"suggestions"`` entry is informational; `from_dict` ignores it.
        """
        return {
            "learning_rates": self.learning_rates.tolist(),
            "losses": self.losses.tolist(),
            "smoothed_losses": self.smoothed_losses.tolist(),
            "stop_reason": self.stop_reason,
            "num_steps": int(self.num_steps),
            "start_lr": self.start_lr,
            "end_lr": self.end_lr,
            "smoothing": self.smoothing,
            "stop_factor": self.stop_factor,
            "suggestions": self.suggestions(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> LRFinderResult:
        """Rebuild a result from `to_dict`'s output (e.g. after ``json.load``)."""
        keys = ("learning_rates", "losses", "smoothed_losses", "stop_reason", "num_steps",
                "start_lr", "end_lr", "smoothing", "stop_factor")
        missing = [k for k in keys[:3] if k not in data]
        if missing:
            raise ValueError(f"Argument `data` lacks the key(s) {missing}. Received: {data!r}")
        return cls(**{k: data[k] for k in keys if k in data})
