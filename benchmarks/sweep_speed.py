"""Benchmark: `parallel_fit` with 8 rates vs one ordinary `model.fit`, per model family.

Claim: training 8 learning rates at once costs at most 2.5x the time of one run (8 sequential
runs cost 8x), for the MLP, CNN, LSTM and GRU reference models on digits.

Both sides run in this process with the same model, data, batch size, epochs and
``jit_compile`` setting. Printed per family: the wall time of one ``model.fit``, of
``parallel_fit`` with 8 rates, their ratio (total, including tracing/compilation), and the
steady-state ratio (epochs after the first, which excludes tracing).

Usage::

    python benchmarks/sweep_speed.py            # 5 epochs, full digits, XLA on
    python benchmarks/sweep_speed.py --quick    # 2 epochs, 600 samples
    python benchmarks/sweep_speed.py --families mlp cnn --jit off
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from keras_lr import data, models  # noqa: E402
from keras_lr.sweep import parallel_fit  # noqa: E402

FAMILIES = ("mlp", "cnn", "lstm", "gru")
TARGET = 2.5


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)

    def on_train_begin(self, logs=None):
        self.times = []


def _steady(times: list[float]) -> float:
    return float(np.sum(times[1:])) if len(times) > 1 else float(np.sum(times))


def run_family(family: str, rates, epochs: int, batch_size: int, limit, jit: bool) -> dict:
    ds = data.load("digits", view=data.view_for(family), limit=limit)

    def build():
        return models.build(family, ds.input_shape, ds.num_classes, seed=0)

    keras.backend.clear_session()
    single = build()
    single.compile(keras.optimizers.Adam(float(rates[0])), "sparse_categorical_crossentropy",
                   metrics=["accuracy"], jit_compile=jit)
    timer = EpochTimer()
    start = time.perf_counter()
    single.fit(ds.x_train, ds.y_train, epochs=epochs, batch_size=batch_size, verbose=0,
               callbacks=[timer])
    one = time.perf_counter() - start
    one_steady = _steady(timer.times)

    keras.backend.clear_session()
    timer = EpochTimer()
    start = time.perf_counter()
    parallel_fit(build, rates, ds.x_train, ds.y_train, epochs=epochs, batch_size=batch_size,
                 callbacks=[timer], jit_compile=jit)
    many = time.perf_counter() - start
    many_steady = _steady(timer.times)
    return {
        "family": family, "one": one, "many": many, "ratio": many / one,
        "steady_ratio": many_steady / one_steady,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs on 600 samples")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--jit", choices=("on", "off"), default="on",
                        help="jit_compile for both sides (XLA on by default)")
    args = parser.parse_args(argv)
    epochs = args.epochs or (2 if args.quick else 5)
    limit = 600 if args.quick else None
    rates = np.geomspace(1e-4, 1e-1, args.replicas)
    table = Table(title=f"parallel_fit, {args.replicas} rates vs one fit "
                        f"({epochs} epochs, batch {args.batch_size}, jit {args.jit})")
    for column in ("family", "one fit (s)", f"{args.replicas} rates (s)", "ratio",
                   "steady ratio", f"<= {TARGET}x"):
        table.add_column(column)
    for family in args.families:
        r = run_family(family, rates, epochs, args.batch_size, limit, args.jit == "on")
        table.add_row(r["family"], f"{r['one']:.2f}", f"{r['many']:.2f}", f"{r['ratio']:.2f}x",
                      f"{r['steady_ratio']:.2f}x", "yes" if r["ratio"] <= TARGET else "no")
    Console().print(table)
    print(f"(sequential runs would cost {args.replicas:.0f}x; timings depend on machine load)")


if __name__ == "__main__":
    main()
