"""Make the figure and the table of docs/mup.md: the coordinate check of the digits MLP.

Trains the reference MLP (two hidden layers) at widths 64 to 1024 for 3 Adam steps (rate
1e-3) on 128 digits, under μP (base width 64) and under the standard parametrization, and
saves ``docs/figures/mup_coord_check.png`` (the two panels side by side) and prints both
tables.

Usage::

    KERAS_BACKEND=tensorflow python docs/scripts/mup_figures.py
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from keras_lr import data, models  # noqa: E402
from keras_lr.mup import coord_check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WIDTHS = [64, 128, 256, 512, 1024]


def main():
    ds = data.load("digits", view="mlp")
    (x, y), _ = ds

    def build_fn(width):
        return models.mlp(ds.input_shape, ds.num_classes, width=width, depth=2, seed=0)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, parametrization in zip(axes, ("standard", "mup")):
        check = coord_check(build_fn, WIDTHS, x[:128], y[:128], keras.optimizers.Adam(1e-3),
                            steps=3, parametrization=parametrization)
        check.plot(ax=ax)
        print(f"{parametrization} ({keras.backend.backend()})\n{check.table()}\n")
    path = os.path.join(HERE, "..", "figures", "mup_coord_check.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
