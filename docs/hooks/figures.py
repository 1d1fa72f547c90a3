"""MkDocs hook: draw the schedule figures of the docs from the real classes at build time.

Each entry of `FIGURES` is ``name -> (steps, [spec, ...])``; the hook evaluates every spec with
`keras_lr.schedules.parse_schedule` and `keras_lr.schedules.values`, draws the curves with
matplotlib (Agg, no pyplot state) and adds ``figures/<name>.png`` to the site as a generated
file: nothing is written into ``docs/`` and no PNG is kept in git. A spec that fails to build
fails the build (with ``--strict`` the page's image link would be broken anyway).
"""

from __future__ import annotations

import io
import logging
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

log = logging.getLogger("mkdocs.hooks.figures")

FIGURES: dict[str, tuple[int, list[str]]] = {
    "constant": (1000, ["constant(1e-3)"]),
    "step_decay": (1000, ["step_decay(1e-3, step_size=300, gamma=0.5)"]),
    "multi_step_decay": (1000, ["multi_step_decay(1e-3, [300, 600, 800], gamma=0.3)"]),
    "exponential_decay": (1000, ["exponential_decay(1e-3, gamma=0.997)"]),
    "linear_decay": (1000, ["linear_decay(1e-3, 800, end_learning_rate=1e-4)"]),
    "polynomial_decay": (
        1000,
        [
            "polynomial_decay(1e-3, 800, power=0.5)",
            "polynomial_decay(1e-3, 800, power=1.0)",
            "polynomial_decay(1e-3, 800, power=2.0)",
        ],
    ),
    "cosine_decay": (1000, ["cosine_decay(1e-3, 800, min_learning_rate=1e-4)"]),
    "cosine_restarts": (
        1000,
        [
            "cosine_restarts(1e-3, 300)",
            "cosine_restarts(1e-3, 100, cycle_mult=2.0, peak_decay=0.7)",
        ],
    ),
    "inverse_sqrt_decay": (1000, ["inverse_sqrt_decay(1e-3, 100)"]),
    "cyclical_lr": (
        1000,
        [
            'cyclical_lr(1e-4, 1e-3, 100, mode="triangular")',
            'cyclical_lr(1e-4, 1e-3, 100, mode="triangular2")',
            'cyclical_lr(1e-4, 1e-3, 100, mode="exp_range", gamma=0.998)',
        ],
    ),
    "one_cycle": (
        1000,
        ["one_cycle(1e-3, 1000)", "one_cycle(1e-3, 1000, three_phase=True)"],
    ),
    "warmup_stable_decay": (
        1000,
        [
            f"warmup_stable_decay(1e-3, 100, 500, 300, decay_shape='{shape}')"
            for shape in ("linear", "cosine", "1-sqrt")
        ],
    ),
    "piecewise_linear": (1000, ["piecewise_linear([0, 100, 500, 1000], [0, 1e-3, 5e-4, 0])"]),
    "warmup": (1000, ["warmup(cosine_decay(1e-3, 900), 100)"]),
    "sequence": (1000, ["sequence([constant(1e-3), cosine_decay(1e-3, 500)], [500])"]),
    "per_epoch": (1000, ["per_epoch(step_decay(1e-3, step_size=3, gamma=0.5), 100)"]),
    "product": (
        1000,
        ["product([cosine_decay(1e-3, 1000), linear_decay(0.25, 200, 1.0)])",
         "product([step_decay(1e-3, 250, 0.5), exponential_decay(1.0, 0.999)])"],
    ),
    "one_cycle_momentum": (
        1000,
        ["one_cycle_momentum(1000)", "one_cycle_momentum(1000, three_phase=True)"],
    ),
    "cyclical_momentum": (
        1000,
        ['cyclical_momentum(100, mode="triangular")', 'cyclical_momentum(100, mode="triangular2")'],
    ),
}


def render(steps: int, specs: list[str]) -> bytes:
    """Draw `specs` over `steps` steps and return the PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from keras_lr.schedules import values
    from keras_lr.schedules.spec import parse_schedule

    figure = Figure(figsize=(6, 2.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for spec in specs:
        curve = values(parse_schedule(spec), steps)
        axes.plot(range(len(curve)), curve, label=spec, linewidth=1.5)
    axes.set_xlabel("step")
    axes.set_ylabel("learning rate")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="x-small", loc="best")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def on_files(files, config):
    """Add every figure of `FIGURES` to the site as ``figures/<name>.png``."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    for name, (steps, specs) in FIGURES.items():
        try:
            content = render(steps, specs)
        except Exception as error:
            raise PluginError(f"figure {name!r} ({'; '.join(specs)}): {error}") from error
        files.append(File.generated(config, f"figures/{name}.png", content=content))
    log.info("generated %d schedule figures", len(FIGURES))
    return files
