"""Benchmark: `parallel_fit` with 8 rates vs one ordinary `model.fit`, per model family.

Claim: training 8 learning rates at once costs at most 2.0x the time of one run on the fastest
backend (8 sequential runs cost 8x), for the MLP, CNN, LSTM and GRU reference models
(``keras_lr.models`` at their defaults) on digits. The backend is Keras's
(``KERAS_BACKEND=jax python benchmarks/sweep_speed.py``; TensorFlow when unset);
`benchmarks/study_backends.py --sweep` runs this once per backend.

"One ordinary fit" is ``model.compile(Adam, ..., metrics=["accuracy"])`` with Keras's default
``jit_compile="auto"`` (on a CPU-only TensorFlow machine no XLA; on JAX ``jax.jit``; on torch
eager), then ``model.fit``. ``parallel_fit`` runs with its own default, ``jit_compile="auto"``
(on TensorFlow, at 5 epochs of digits, a plain graph for every family, the CNN's convolutions
grouped, XLA only for recurrent runs of at least ``keras_lr.sweep.convert.XLA_MIN_STEPS``
steps; on JAX ``jax.jit``; on torch eager). A second single fit with ``jit_compile=True`` is
timed too, for reference (not on torch, where ``torch.compile`` takes minutes here).

Everything runs in this process, interleaved (one fit, the sweep, the XLA fit, repeat), with
the same data, batch size and epochs; the figures are medians over the repeats. Printed per
family:

* total ratio: wall time of the whole ``parallel_fit`` call (building 8 models, tracing and
  compiling included) over that of one ordinary fit (build, compile and fit);
* steady ratio: median epoch time after the first epoch (no tracing or compiling) of the
  sweep over that of the ordinary fit; ``vs XLA fit``: the same against the XLA single fit.

Usage::

    python benchmarks/sweep_speed.py            # 5 epochs, full digits, 3 repeats
    python benchmarks/sweep_speed.py --quick    # 3 epochs, 600 samples, 1 repeat
    python benchmarks/sweep_speed.py --families cnn gru --repeats 5
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
from keras_lr.sweep import parallel_fit, replicate  # noqa: E402
from keras_lr.sweep.fit import _train_steps  # noqa: E402  (the step count parallel_fit uses)

FAMILIES = ("mlp", "cnn", "lstm", "gru")
TARGET = 2.0


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def _steady(times: list[float]) -> float:
    """Median epoch time, the first (tracing) epoch left out."""
    return float(np.median(times[1:] if len(times) > 1 else times))


def _single(build, ds, rate, epochs, batch_size, jit) -> tuple[float, float]:
    keras.backend.clear_session()
    timer = EpochTimer()
    start = time.perf_counter()
    model = build(0)
    model.compile(keras.optimizers.Adam(rate), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=jit)
    model.fit(ds.x_train, ds.y_train, epochs=epochs, batch_size=batch_size, verbose=0,
              callbacks=[timer])
    return time.perf_counter() - start, _steady(timer.times)


def _sweep(build, ds, rates, epochs, batch_size) -> tuple[float, float]:
    keras.backend.clear_session()
    timer = EpochTimer()
    start = time.perf_counter()
    parallel_fit(build, rates, ds.x_train, ds.y_train, epochs=epochs, batch_size=batch_size,
                 seeds=list(range(len(rates))), callbacks=[timer])
    return time.perf_counter() - start, _steady(timer.times)


def _engine(build, steps: int) -> str:
    """How ``parallel_fit(jit_compile="auto")`` runs the model (`ReplicaModel.configure`)."""
    keras.backend.clear_session()
    model = replicate([build(seed) for seed in range(2)])
    jit = model.configure("auto", steps=steps)
    convs = [layer.implementation for layer in model.stack
             if getattr(layer, "implementation", None) and layer.layout == "channels"]
    backend = keras.backend.backend()
    engine = ({"jax": "jax.jit", "torch": "torch.compile"}.get(backend, "XLA") if jit
              else {"jax": "eager", "torch": "eager"}.get(backend, "plain graph"))
    return engine + (f", {convs[0]} conv" if convs else "")


def run_family(family: str, rates, epochs: int, batch_size: int, limit, repeats: int) -> dict:
    ds = data.load("digits", view=data.view_for(family), limit=limit)

    def build(seed=0):
        return models.build(family, ds.input_shape, ds.num_classes, seed=seed)

    # torch.compile (jit_compile=True on torch) costs minutes here: no compiled reference there
    compiled = keras.backend.backend() != "torch"
    runs = {"one": [], "many": [], "xla": []}
    for _ in range(repeats):
        runs["one"].append(_single(build, ds, float(rates[0]), epochs, batch_size, "auto"))
        runs["many"].append(_sweep(build, ds, rates, epochs, batch_size))
        runs["xla"].append(_single(build, ds, float(rates[0]), epochs, batch_size, True)
                           if compiled else (np.nan, np.nan))
    med = {k: np.median(np.asarray(v), axis=0) for k, v in runs.items()}
    return {
        "family": family,
        "one": med["one"][0], "many": med["many"][0],
        "ratio": med["many"][0] / med["one"][0],
        "steady_ratio": med["many"][1] / med["one"][1],
        "steady_vs_xla": med["many"][1] / med["xla"][1],
        "sweep_jit": _engine(build, _train_steps(ds.x_train, batch_size, epochs)),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs on 600 samples, once")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 5)
    repeats = args.repeats or (1 if args.quick else 3)
    limit = 600 if args.quick else None
    rates = np.geomspace(1e-4, 1e-1, args.replicas)
    table = Table(title=f"parallel_fit on {keras.backend.backend()}, {args.replicas} rates vs "
                        f"one ordinary fit (Keras's default jit_compile), {epochs} epochs, "
                        f"batch {args.batch_size}, median of {repeats}")
    for column in ("family", "one fit (s)", f"{args.replicas} rates (s)", "total ratio",
                   "steady ratio", "steady vs compiled fit", "sweep runs", f"<= {TARGET}x"):
        table.add_column(column)
    for family in args.families:
        r = run_family(family, rates, epochs, args.batch_size, limit, repeats)
        ok = "yes" if max(r["ratio"], r["steady_ratio"]) <= TARGET else (
            "total only" if r["ratio"] <= TARGET else
            "steady only" if r["steady_ratio"] <= TARGET else "no")
        table.add_row(r["family"], f"{r['one']:.2f}", f"{r['many']:.2f}", f"{r['ratio']:.2f}x",
                      f"{r['steady_ratio']:.2f}x", f"{r['steady_vs_xla']:.2f}x",
                      r["sweep_jit"], ok)
    Console().print(table)
    print(f"(sequential runs would cost {args.replicas}x; the machine's load moves these "
          "figures, compare ratios only)")


if __name__ == "__main__":
    main()
