"""Per-step cost of `DivergenceGuard`'s step checks, relative to training without it.

Claim: `DivergenceGuard()` at its defaults (a check every 10 steps, device-side snapshots)
costs at most 1.05x the time per step of the same `fit` without it, on the reference MLP and
CNN (target). For comparison, ``host`` is what step snapshots cost before: a callback that,
every 10 steps, copies every weight and optimizer variable to NumPy and tests it for NaN/inf
(the previous `DivergenceGuard(snapshot_every=10)`), ``every1`` is the guard checking
after every step, ``sync`` a callback that only reads ``self.model`` every 10 steps (on
JAX that writes the trainer's state back to the variables, and the next step gathers it
again: Keras's own cost, which any mid-epoch callback that touches the model pays; the guard
no longer pays it, it reads ``model._jax_state``), and ``batchend`` a callback whose
``on_train_batch_end`` does nothing (with any such callback Keras runs the batch-end
callbacks in the training thread instead of dispatching them to a worker thread, and
converts the logs there: the floor of every batch-end callback; the guard has no batch-end
hook, it checks at the next batch's begin, so Keras keeps its asynchronous batch ends).

Columns: ``plain`` no callback; ``guard`` DivergenceGuard(); ``every1``
DivergenceGuard(snapshot_every=1); ``host`` the host-copy callback; ``sync`` the model read;
``batchend`` the empty batch-end callback. Each ratio is the median
over interleaved rounds of variant / plain in the same round (`_timing.py`); each round runs
`--epochs` epochs of the digits data (1,438 samples, batch 32: 45 steps an epoch) per variant
after a warm-up fit of each (compilation, tracing). The models train on the same data at a
good rate, so no check diverges and what is timed is the checking itself.

Backend: the one in KERAS_BACKEND (default tensorflow); run once per backend.

Run:  KERAS_BACKEND=jax python benchmarks/divergence_snapshot.py [--repeats 7] [--epochs 2]
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
from _timing import interleaved, paired_ratio  # noqa: E402

from keras_lr import data, models  # noqa: E402
from keras_lr.callbacks import DivergenceGuard  # noqa: E402

BATCH = 32


class _EveryN(keras.callbacks.Callback):
    """Runs `act(model)` every `every` training steps."""

    def __init__(self, every=10):
        super().__init__()
        self.every, self.seen = every, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen % self.every == 0:
            self.act(self.model)  # on JAX, reading self.model syncs the trainer's state


class HostCopies(_EveryN):
    """The previous step snapshot: every `every` steps, all state to NumPy plus a NaN test."""

    def act(self, model):
        state = list(model.weights) + list(model.optimizer.variables)
        values = [np.array(keras.ops.convert_to_numpy(v)) for v in state]
        self.finite = all(np.isfinite(v).all() for v in values
                          if np.issubdtype(v.dtype, np.inexact))


class ModelReads(_EveryN):
    """Only reads `self.model` every `every` steps (a JAX state sync; nothing on TF/torch)."""

    def act(self, model):
        pass


class BatchEnd(keras.callbacks.Callback):
    """An `on_train_batch_end` that does nothing (Keras then calls batch ends in line)."""

    def on_train_batch_end(self, batch, logs=None):
        pass


VARIANTS = {
    "plain": lambda: [],
    "guard": lambda: [DivergenceGuard()],
    "every1": lambda: [DivergenceGuard(snapshot_every=1)],
    "host": lambda: [HostCopies(10)],
    "sync": lambda: [ModelReads(10)],
    "batchend": lambda: [BatchEnd()],
}


def _setup(family, epochs):
    ds = data.load("digits", view=data.view_for(family))
    (x, y), _ = ds
    runs = {}
    for name, callbacks in VARIANTS.items():
        model = models.build(family, ds.input_shape, ds.num_classes, seed=0)
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        kept = callbacks()  # one set per variant, reused: the guard's compiled copy is kept

        def run(model=model, kept=kept, n=epochs):
            model.fit(x, y, batch_size=BATCH, epochs=n, verbose=0, callbacks=kept)

        run(n=1)  # warm-up: compile the train step and the guard's copy function
        runs[name] = run
    steps = epochs * -(-len(x) // BATCH)
    return runs, steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--models", default="mlp,cnn")
    args = parser.parse_args(argv)
    print(f"backend: {keras.backend.backend()}, {args.repeats} interleaved rounds of "
          f"{args.epochs} epochs (digits, batch {BATCH})")
    print(f"{'model':6} {'plain ms/step':>14} " + " ".join(f"{v:>8}" for v in VARIANTS
                                                          if v != "plain") + "   (x plain)")
    for family in args.models.split(","):
        runs, steps = _setup(family, args.epochs)
        times = interleaved(runs, args.repeats, per=steps)
        for clock in ("wall", "cpu"):
            base = statistics.median(times[clock]["plain"]) * 1e3
            ratios = [paired_ratio(times[clock], v, "plain") for v in VARIANTS if v != "plain"]
            print(f"{family:6} {base:11.3f} {clock:>4} "
                  + " ".join(f"{r:8.3f}" for r in ratios))


if __name__ == "__main__":
    main()
