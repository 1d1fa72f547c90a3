"""Make the figures (and the table) of docs/finder.md: the range test of each reference model.

For each model family (MLP, CNN, LSTM, GRU) on the digits data set this runs
`keras_lr.find_lr` (Adam, batch 32, 100 steps from 1e-7 to 10) and saves
``docs/figures/finder_<family>.png``. With ``--grid`` it also trains a fresh copy of the model
for ``--epochs`` epochs at each rate of a half-decade grid (1e-4 .. 1) and prints a Markdown
table: the suggestions, the best grid rate, the band of grid rates whose validation accuracy is
within 2 points of the best, and whether the valley suggestion lies inside that band.

Usage::

    KERAS_BACKEND=tensorflow python docs/scripts/finder_figures.py [--grid] [--families mlp cnn]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lr import data, models  # noqa: E402
from keras_lr.finder import find_lr  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIGURES = os.path.join(HERE, os.pardir, "figures")
GRID = 10.0 ** np.arange(-4.0, 0.01, 0.5)


def build(family, dataset, lr=1e-3, seed=0):
    model = models.build(family, dataset.input_shape, dataset.num_classes, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def grid_band(family, dataset, epochs, seed=0):
    """Validation accuracy after `epochs` epochs for each grid rate; the band within 2 points."""
    (x, y), (xv, yv) = dataset
    accuracy = []
    for lr in GRID:
        keras.utils.set_random_seed(seed)
        model = build(family, dataset, lr, seed)
        model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
        accuracy.append(model.evaluate(xv, yv, verbose=0)[1])
    accuracy = np.array(accuracy)
    good = GRID[accuracy >= accuracy.max() - 0.02]
    return accuracy, GRID[int(np.argmax(accuracy))], (good.min(), good.max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["mlp", "cnn", "lstm", "gru"])
    parser.add_argument("--grid", action="store_true", help="also run the accuracy grid")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default=FIGURES)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for family in args.families:
        dataset = data.load("digits", view=data.view_for(family), seed=0)
        keras.utils.set_random_seed(0)
        model = build(family, dataset)
        (x, y), _ = dataset
        start = time.perf_counter()
        result = find_lr(model, x, y, batch_size=32, num_steps=100, seed=0)
        seconds = time.perf_counter() - start
        path = os.path.join(args.out, f"finder_{family}.png")
        ax = result.plot(title=f"{family.upper()} on digits (Adam, batch 32)")
        ax.figure.set_size_inches(5.0, 3.4)
        ax.figure.savefig(path, dpi=80, bbox_inches="tight")
        s = result.suggestions()
        row = (f"| {family.upper()} | {s['valley']:.2g} | {s['steep']:.2g} | "
               f"{s['minimum']:.2g} | {result.stop_reason} at {len(result)} | {seconds:.1f} s")
        if args.grid:
            accuracy, best, (low, high) = grid_band(family, dataset, args.epochs)
            inside = "yes" if low <= s["valley"] <= high else "no"
            row += (f" | {best:.2g} ({accuracy.max():.3f}) | {low:.2g} .. {high:.2g} | {inside}"
                    f" | {' '.join(f'{a:.2f}' for a in accuracy)}")
        print(row + " |", flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
