"""Per-step overhead of `GradientGuard` relative to plain Adam.

Claim: `GradientGuard(Adam, AdaptiveClip, skip_nonfinite=True)` and `GradientGuard(Adam,
GlobalNorm)` cost at most 1.10x the time per step of plain Adam (target), because the guard
adds a handful of reductions and one `cond`, all inside the compiled step, and no host round
trip.

Columns: ``adam`` plain Adam; ``agc`` GradientGuard(Adam, AdaptiveClip(0.01)); ``gnorm``
GradientGuard(Adam, GlobalNorm(1.0)); both guards skip non-finite steps.

Method: an MLP, a small CNN and an LSTM on digits-shaped random data (8x8x1 images, 64
features, 10 classes, batch 32), compiled with ``jit_compile=True`` and
``steps_per_execution`` 1 and 32. After a warm-up epoch (compilation), the variants run one
epoch each in turn (interleaved, so that machine noise hits all of them alike), `--repeats`
times; the per-step time is the median over repeats, and the ratio is variant / plain Adam.

Run:  python benchmarks/guard_overhead.py [--quick] [--repeats 7] [--steps 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

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


def build(model_name, variant, steps_per_execution):
    make, _ = MODELS[model_name]
    keras.utils.set_random_seed(0)
    model = make()
    model.compile(optimizer=VARIANTS[variant](),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True, steps_per_execution=steps_per_execution)
    return model


def measure(model_name, steps_per_execution, steps, repeats):
    _, shape = MODELS[model_name]
    rng = np.random.default_rng(0)
    x = rng.random((steps * BATCH, *shape), dtype=np.float32)
    y = rng.integers(0, 10, steps * BATCH)
    models = {v: build(model_name, v, steps_per_execution) for v in VARIANTS}
    for model in models.values():  # warm-up: trace and compile
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    times = {v: [] for v in VARIANTS}
    for _ in range(repeats):
        for variant, model in models.items():
            start = time.perf_counter()
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
            times[variant].append((time.perf_counter() - start) / steps)
    return {v: statistics.median(t) for v, t in times.items()}


def report(rows):
    header = ["model", "spe", *[f"{v} ms" for v in VARIANTS],
              *[f"{v}/adam" for v in list(VARIANTS)[1:]]]
    lines = []
    for (model_name, spe), medians in rows:
        base = medians["adam"]
        lines.append([model_name, str(spe), *[f"{medians[v] * 1e3:.3f}" for v in VARIANTS],
                      *[f"{medians[v] / base:.3f}" for v in list(VARIANTS)[1:]]])
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
        for row in [header, *lines]:
            print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        return
    table = Table(title="GradientGuard per-step time (median of interleaved repeats)")
    for name in header:
        table.add_column(name, justify="right")
    for line in lines:
        table.add_row(*line)
    Console().print(table)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps and repeats (smoke run)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=128, help="steps per timed epoch")
    parser.add_argument("--models", default="mlp,cnn,lstm")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.steps = 3, 32
    print(f"backend {keras.backend.backend()}, batch {BATCH}, {args.steps} steps per timing, "
          f"{args.repeats} repeats, jit_compile=True")
    rows = []
    for model_name in args.models.split(","):
        for spe in (1, 32):
            rows.append(((model_name, spe), measure(model_name, spe, args.steps, args.repeats)))
    report(rows)


if __name__ == "__main__":
    main()
