"""Per-step overhead of `GradientGuard` relative to plain Adam.

Claim: `GradientGuard(Adam, AdaptiveClip, skip_nonfinite=True)` and `GradientGuard(Adam,
GlobalNorm)` cost at most 1.10x the time per step of plain Adam (target), because the guard
adds a handful of reductions and one `cond`, all inside the compiled step, and no host round
trip.

Columns: ``adam`` plain Adam; ``agc`` GradientGuard(Adam, AdaptiveClip(0.01)); ``gnorm``
GradientGuard(Adam, GlobalNorm(1.0)); both guards skip non-finite steps. Two Keras references
put the figures in context: ``lso`` Keras's `LossScaleOptimizer(Adam)`, whose dynamic loss
scale tests the gradients for NaN/inf and skips the step in a `cond` as the guard does, and
``kclip`` `Adam(global_clipnorm=1.0)`, Keras's built-in global-norm clipping (no skipping).

Method: the keras-lr reference models (`keras_lr.models` at their defaults: MLP (128, 128),
CNN (32, 64 filters, dense 128), LSTM (64 units)) on digits-shaped random data (64 features,
8x8x1 images or 8 steps of 8, 10 classes, batch 32), compiled with ``jit_compile=True`` and
``steps_per_execution`` 1 and 32 (``--jit off|both`` adds Keras's CPU default, no XLA). After a
warm-up epoch (compilation), the variants run one epoch each in a shuffled order (interleaved,
so that machine noise hits all of them alike), `--repeats` times (`_timing.py`); the per-step
time is the median over repeats, and each ratio is the median over rounds of variant / plain
Adam in the same round. Tables for wall-clock and process CPU time, and the exact operation
count of one traced training step of each variant (function bodies included, so branches that
do not run on a normal step count too).

``--data mnist`` runs the same models at MNIST shapes (784 features, 28x28x1 images, 28 steps of
28): the same guard work on a longer step, to show how the fixed cost shrinks as a share.

Run:  python benchmarks/guard_overhead.py [--quick] [--repeats 9] [--steps 128] [--jit on]
                                          [--data digits|mnist]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _timing import graph_ops, interleaved, paired_ratio  # noqa: E402

from keras_lr import guards, models  # noqa: E402

BATCH = 32


# Input shapes per data set: digits (8x8, the study's default) and MNIST (28x28; the LSTM reads
# the image row by row, 28 steps of 28). The data is random: only the shapes matter here.
SHAPES = {
    "digits": {"mlp": (64,), "cnn": (8, 8, 1), "lstm": (8, 8)},
    "mnist": {"mlp": (784,), "cnn": (28, 28, 1), "lstm": (28, 28)},
}

VARIANTS = {
    "adam": lambda: keras.optimizers.Adam(1e-3),
    "agc": lambda: guards.GradientGuard(
        keras.optimizers.Adam(1e-3), clip=guards.AdaptiveClip(0.01), skip_nonfinite=True),
    "gnorm": lambda: guards.GradientGuard(
        keras.optimizers.Adam(1e-3), clip=guards.GlobalNorm(1.0), skip_nonfinite=True),
    "lso": lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3)),
    "kclip": lambda: keras.optimizers.Adam(1e-3, global_clipnorm=1.0),
}
GUARDED = ("agc", "gnorm")
TARGET = 1.10


def build(model_name, shape, variant, steps_per_execution, jit_compile):
    model = models.build(model_name, shape, 10, seed=0)
    model.compile(optimizer=VARIANTS[variant](), loss="sparse_categorical_crossentropy",
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model


def measure(model_name, steps_per_execution, steps, repeats, jit_compile=True, data="digits"):
    """Per-step times of every variant, from interleaved rounds (see `_timing.py`)."""
    shape = SHAPES[data][model_name]
    rng = np.random.default_rng(0)
    x = rng.random((steps * BATCH, *shape), dtype=np.float32)
    y = rng.integers(0, 10, steps * BATCH)
    runs, ops = {}, {}
    for variant in VARIANTS:
        model = build(model_name, shape, variant, steps_per_execution, jit_compile)
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)  # compile
        runs[variant] = lambda m=model: m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0,
                                              shuffle=False)
        ops[variant] = graph_ops(model, x[:BATCH], y[:BATCH])
    return {**interleaved(runs, repeats, per=steps), "ops": ops}


def report(rows, clock):
    if clock == "ops":
        print("ops in one traced training step: " + "; ".join(
            f"{m}: " + ", ".join(f"{v} {n} ({n / t['ops']['adam']:.3f})" for v, n in t["ops"].items())
            for (m, jit, spe), t in rows if spe == 1 and jit == rows[0][0][1]))
        return
    others = list(VARIANTS)[1:]
    header = ["model", "xla", "spe", "adam ms", *[f"{v}/adam" for v in others],
              f"guards <= {TARGET}"]
    lines = []
    for (model_name, jit, spe), times in rows:
        t = times[clock]
        ratios = {v: paired_ratio(t, v, "adam") for v in others}
        lines.append([model_name, "on" if jit else "off", str(spe),
                      f"{statistics.median(t['adam']) * 1e3:.3f}",
                      *[f"{ratios[v]:.3f}" for v in others],
                      "yes" if max(ratios[v] for v in GUARDED) <= TARGET else "no"])
    title = (f"GradientGuard per-step time, {clock} clock (ms: median; ratios: median of "
             "per-round ratios)")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
        for row in [header, *lines]:
            print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        return
    table = Table(title=title)
    for name in header:
        table.add_column(name, justify="right")
    for line in lines:
        table.add_row(*line)
    Console(width=120).print(table)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps and repeats (smoke run)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=128, help="steps per timed epoch")
    parser.add_argument("--models", default="mlp,cnn,lstm")
    parser.add_argument("--jit", choices=("on", "off", "both"), default="on",
                        help="jit_compile=True (XLA), False (Keras's default on CPU), or both")
    parser.add_argument("--data", choices=tuple(SHAPES), default="digits",
                        help="input shapes: digits 8x8 (default) or MNIST 28x28 (larger steps)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.steps = 3, 32
    jits = {"on": [True], "off": [False], "both": [True, False]}[args.jit]
    print(f"backend {keras.backend.backend()}, {args.data} shapes, batch {BATCH}, "
          f"{args.steps} steps per timing, "
          f"{args.repeats} interleaved repeats")
    rows = []
    for jit in jits:
        for model_name in args.models.split(","):
            for spe in (1, 32):
                rows.append(((model_name, jit, spe),
                             measure(model_name, spe, args.steps, args.repeats, jit, args.data)))
    for clock in ("ops", "wall", "cpu"):
        report(rows, clock)


if __name__ == "__main__":
    main()
