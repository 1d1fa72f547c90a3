"""`keras-lr schedule`: look at a learning-rate schedule before training with it.

Actions:
    plot:   ``keras-lr schedule plot SPEC [SPEC ...] --steps N --out curve.png [--title T] [--log]``
    values: ``keras-lr schedule values SPEC --steps N [--every K]`` prints ``step,lr`` CSV
    names:  ``keras-lr schedule names`` lists the schedule names a SPEC may use

SPEC is anything `keras_lr.schedules.spec.parse_schedule` reads, e.g.
``"warmup(cosine_decay(1e-3, 1000), 100)"``, ``cosine_decay:initial_learning_rate=1e-3,
decay_steps=1000``, a JSON config or ``@schedule.json``. TensorFlow and matplotlib are imported
only when an action runs, so ``keras-lr --help`` stays instant.
"""

from __future__ import annotations

import argparse
import os
import sys

from keras_lr.cli.common import UsageError

__all__ = ["add_parser"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``schedule`` and its actions on the top-level subparsers."""
    parser = subparsers.add_parser(
        "schedule",
        help="plot or print a learning-rate schedule given as a text spec",
        description="Plot or print a learning-rate schedule given as a text spec, e.g. "
        '"warmup(cosine_decay(1e-3, 1000), 100)".',
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    plot = actions.add_parser(
        "plot",
        help="draw the curve of one or more schedules to an image file",
        description="Draw the learning rate against the step for each SPEC (several share "
        "one axes, with a legend) and save the figure.",
    )
    plot.add_argument("specs", nargs="+", metavar="SPEC", help="schedule spec(s)")
    plot.add_argument("--steps", type=_positive_int, required=True, help="steps to draw")
    plot.add_argument("--out", required=True, help="image file to write (.png, .svg, .pdf)")
    plot.add_argument("--title", default=None, help="figure title (default: the spec)")
    plot.add_argument("--log", action="store_true", help="logarithmic learning-rate axis")
    plot.add_argument("--dpi", type=_positive_int, default=120, help="resolution (default 120)")
    plot.set_defaults(func=run_plot)

    values = actions.add_parser(
        "values",
        help="print step,lr as CSV",
        description="Print the learning rate at steps 0 .. N-1 as CSV with a step,lr header.",
    )
    values.add_argument("spec", metavar="SPEC", help="schedule spec")
    values.add_argument("--steps", type=_positive_int, required=True, help="steps to print")
    values.add_argument(
        "--every", type=_positive_int, default=1, help="print every K-th step (default 1)"
    )
    values.set_defaults(func=run_values)

    names = actions.add_parser("names", help="list the schedule names a SPEC may use")
    names.set_defaults(func=run_names)
    return parser


def _schedule(spec: str):
    from keras_lr.schedules.spec import parse_schedule

    try:
        return parse_schedule(spec)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _curve(spec: str, steps: int):
    from keras_lr.schedules import values

    schedule = _schedule(spec)
    try:
        return values(schedule, steps)
    except Exception as error:  # one line, never a traceback, whatever the schedule raised
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise UsageError(f"cannot evaluate {spec!r}: {first}") from None


def _check_out(out: str, formats: dict[str, str]) -> str:
    """Refuse an --out that cannot be written before any work is done; return its format."""
    extension = os.path.splitext(out)[1].lower().lstrip(".")
    if os.path.isdir(out):
        raise UsageError(f"cannot write {out!r}: it is a directory")
    if extension not in formats:
        known = ", ".join(f".{name}" for name in sorted(formats))
        raise UsageError(f"cannot write {out!r}: unknown image type; use one of {known}")
    directory = os.path.dirname(os.path.abspath(out))
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"cannot write {out!r}: {directory!r} is a file, not a directory")
    if not os.path.isdir(directory):
        raise UsageError(f"cannot write {out!r}: directory {directory!r} does not exist")
    return extension


def run_plot(args: argparse.Namespace) -> int:
    """Evaluate every spec and save the figure; exit status 0, or `UsageError`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), layout="constrained")
    canvas = FigureCanvasAgg(figure)  # Agg, whatever backend pyplot may be using
    image_format = _check_out(args.out, canvas.get_supported_filetypes())
    curves = [(spec, _curve(spec, args.steps)) for spec in args.specs]

    axes = figure.subplots()
    for spec, curve in curves:
        axes.plot(range(len(curve)), curve, label=spec)
    axes.set_xlabel("step")
    axes.set_ylabel("learning rate")
    if args.log:
        axes.set_yscale("log", nonpositive="mask")
    axes.grid(True, alpha=0.3)
    if len(curves) > 1:
        axes.legend(fontsize="small")
    title = args.title if args.title is not None else (args.specs[0] if len(curves) == 1 else "")
    if title:
        axes.set_title(title, fontsize="medium")
    try:
        figure.savefig(args.out, dpi=args.dpi, format=image_format)
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error).strip().splitlines()[0]
        raise UsageError(f"cannot write {args.out!r}: {reason}") from None
    print(f"wrote {args.out}")
    return 0


def run_values(args: argparse.Namespace) -> int:
    """Print ``step,lr`` lines for steps 0, K, 2K, ... below ``--steps``."""
    curve = _curve(args.spec, args.steps)
    lines = ["step,lr"]
    lines += [f"{step},{float(curve[step]):.9g}" for step in range(0, len(curve), args.every)]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def run_names(args: argparse.Namespace) -> int:
    """Print one spec name per line."""
    from keras_lr.schedules.spec import known_schedule_names

    sys.stdout.write("\n".join(known_schedule_names()) + "\n")
    return 0
