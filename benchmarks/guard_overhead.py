"""Per-step overhead of `GradientGuard` relative to plain Adam.

Claim: `GradientGuard(Adam, AdaptiveClip, skip_nonfinite=True)` and `GradientGuard(Adam,
GlobalNorm)` cost at most 1.10x the time per step of plain Adam (target), because the guard
adds a handful of reductions and one `cond`, all inside the compiled step, and no host round
trip.

Columns: ``adam`` plain Adam; ``agc`` GradientGuard(Adam, AdaptiveClip(0.01)); ``gnorm``
GradientGuard(Adam, GlobalNorm(1.0)); both guards skip non-finite steps.

Method: an MLP, a small CNN and an LSTM on digits-shaped random data (8x8x1 images, 64
features, 10 classes, batch 32), compiled with ``jit_compile=True`` and
``steps_per_execution`` 1 and 32 (``--jit off|both`` adds Keras's CPU default, no XLA). After a
warm-up epoch (compilation), the variants run one epoch each in a shuffled order (interleaved,
so that machine noise hits all of them alike), `--repeats` times (`_timing.py`); the per-step
time is the median over repeats, and each ratio is the median over rounds of variant / plain
Adam in the same round. Tables for wall-clock and process CPU time, and the exact operation
count of one traced training step of each variant.

Run:  python benchmarks/guard_overhead.py [--quick] [--repeats 9] [--steps 128] [--jit on]
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

from keras_lr import guards  # noqa: E402

BATCH = 32


def mlp():
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
                             keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])


def cnn():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])


def lstm():
    return keras.Sequential([keras.Input((8, 8)), keras.layers.LSTM(32), keras.layers.Dense(10)])


MODELS = {"mlp": (mlp, (64,)), "cnn": (cnn, (8, 8, 1)), "lstm": (lstm, (8, 8))}

VARIANTS = {
    "adam": lambda: keras.optimizers.Adam(1e-3),
    "agc": lambda: guards.GradientGuard(
        keras.optimizers.Adam(1e-3), clip=guards.AdaptiveClip(0.01), skip_nonfinite=True),
    "gnorm": lambda: guards.GradientGuard(
        keras.optimizers.Adam(1e-3), clip=guards.GlobalNorm(1.0), skip_nonfinite=True),
}


def build(model_name, variant, steps_per_execution, jit_compile):
    make, _ = MODELS[model_name]
    keras.utils.set_random_seed(0)
    model = make()
    model.compile(optimizer=VARIANTS[variant](),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model


def measure(model_name, steps_per_execution, steps, repeats, jit_compile=True):
    """Per-step times of every variant, from interleaved rounds (see `_timing.py`)."""
    _, shape = MODELS[model_name]
    rng = np.random.default_rng(0)
    x = rng.random((steps * BATCH, *shape), dtype=np.float32)
    y = rng.integers(0, 10, steps * BATCH)
    runs, ops = {}, {}
    for variant in VARIANTS:
        model = build(model_name, variant, steps_per_execution, jit_compile)
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
    guarded = list(VARIANTS)[1:]
    header = ["model", "xla", "spe", *[f"{v} ms" for v in VARIANTS],
              *[f"{v}/adam" for v in guarded]]
    lines = []
    for (model_name, jit, spe), times in rows:
        t = times[clock]
        lines.append([model_name, "on" if jit else "off", str(spe),
                      *[f"{statistics.median(t[v]) * 1e3:.3f}" for v in VARIANTS],
                      *[f"{paired_ratio(t, v, 'adam'):.3f}" for v in guarded]])
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
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.steps = 3, 32
    jits = {"on": [True], "off": [False], "both": [True, False]}[args.jit]
    print(f"backend {keras.backend.backend()}, batch {BATCH}, {args.steps} steps per timing, "
          f"{args.repeats} interleaved repeats")
    rows = []
    for jit in jits:
        for model_name in args.models.split(","):
            for spe in (1, 32):
                rows.append(((model_name, jit, spe),
                             measure(model_name, spe, args.steps, args.repeats, jit)))
    for clock in ("ops", "wall", "cpu"):
        report(rows, clock)


if __name__ == "__main__":
    main()
