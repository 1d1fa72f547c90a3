"""What does a range test cost? `find_lr(num_steps=N)` against N plain training steps, per backend.

Ways to run N steps of the same model on the same batches (digits tiled to N batches of 32,
Adam), on the backend of ``KERAS_BACKEND``:

* ``find_lr``: `keras_lr.find_lr(model, x, y, num_steps=N)` (TensorFlow: compiled chunks of
  ``steps_per_chunk`` steps in a ``tf.while_loop``; JAX: a jitted ``lax.scan`` per chunk;
  PyTorch: one step at a time; state saved and restored every run);
* ``fit``: ``model.fit`` on the same N batches, ``steps_per_execution`` 1 (Keras's default;
  the baseline of the ratios) and, where the backend allows it (not torch in Keras 3.15),
  equal to find_lr's chunk;
* ``callback``: how older Keras LR finders work: ``model.fit`` with a per-batch callback that
  sets the optimizer's rate before each batch and reads ``logs["loss"]`` after it (one host
  round trip per step), smoothing it and stopping on divergence.

Two regimes: ``cold`` builds a fresh model for every run, so each run pays its tracing and
compiling (what a user pays for one call); ``warm`` reuses one model per method, so `fit`
reuses its compiled train function and find_lr its cached loop. Rounds are interleaved and
the ratios paired per round (`_timing`), in one process.

Usage::

    KERAS_BACKEND=jax python benchmarks/finder_cost.py [--family mlp] [--steps 100] [--jit 1]

`finder_cost(...)` returns the figures for other scripts (e.g. ``benchmarks/backends.py``).
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
from keras_lr.finder import find_lr, range_test_rates  # noqa: E402

__all__ = ["finder_cost"]

CHUNK = 50
BATCH = 32


class CallbackFinder(keras.callbacks.Callback):
    """A per-batch callback LR finder, as older Keras finders are written."""

    def __init__(self, rates, smoothing=0.98, stop_factor=4.0):
        super().__init__()
        self.rates, self.smoothing, self.stop_factor = rates, smoothing, stop_factor
        self.step, self.avg, self.best, self.losses = 0, 0.0, np.inf, []

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = float(self.rates[self.step % len(self.rates)])

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])  # a host round trip every step
        self.avg = self.smoothing * self.avg + (1 - self.smoothing) * loss
        smoothed = self.avg / (1 - self.smoothing ** (self.step + 1))
        self.best = min(self.best, smoothed)
        self.losses.append(loss)
        self.step += 1
        if not np.isfinite(loss) or smoothed > self.stop_factor * self.best:
            self.model.stop_training = True


def _arrays(family, steps):
    dataset = data.load("digits", view=data.view_for(family), seed=0)
    (x, y), _ = dataset
    reps = -(-steps * BATCH // len(x))
    return dataset, np.concatenate([x] * reps)[: steps * BATCH], np.concatenate([y] * reps)[
        : steps * BATCH]


def finder_cost(family="mlp", steps=100, jit_compile=True, rounds=5, regimes=("warm", "cold")):
    """Time find_lr and fit for `steps` steps on this backend.

    Returns:
        ``{regime: {"seconds": {method: median wall seconds}, "ratios": {method / fit}}}``,
        ratios paired per round against ``fit (spe=1)``.
    """
    dataset, x, y = _arrays(family, steps)
    rates = range_test_rates(1e-7, 10.0, steps)
    backend = keras.backend.backend()
    spes = (1,) if backend == "torch" else (1, CHUNK)
    out = {}
    for regime in regimes:
        cache = {}

        def model_for(name, spe=1, regime=regime, cache=cache):
            if regime == "cold" or name not in cache:
                keras.utils.set_random_seed(0)
                model = models.build(family, dataset.input_shape, dataset.num_classes, seed=0)
                model.compile(optimizer=keras.optimizers.Adam(1e-3),
                              loss="sparse_categorical_crossentropy", jit_compile=jit_compile,
                              steps_per_execution=spe)
                cache[name] = model
            return cache[name]

        # stop_factor out of reach: every method runs all `steps` steps
        runs = {"find_lr": lambda m=model_for: find_lr(
            m("find"), x, y, batch_size=BATCH, num_steps=steps, stop_factor=1e30,
            shuffle=False, steps_per_chunk=CHUNK)}
        for spe in spes:
            runs[f"fit (spe={spe})"] = lambda spe=spe, m=model_for: m(f"fit{spe}", spe).fit(
                x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        runs["callback finder"] = lambda m=model_for: m("callback").fit(
            x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
            callbacks=[CallbackFinder(rates, stop_factor=1e30)])
        if regime == "warm":
            for run in runs.values():  # trace and compile once, outside the timings
                run()
        times = interleaved(runs, rounds)["wall"]
        out[regime] = {
            "seconds": {name: statistics.median(t) for name, t in times.items()},
            "ratios": {name: paired_ratio(times, name, "fit (spe=1)") for name in times},
        }
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="mlp", choices=["mlp", "cnn", "lstm", "gru"])
    parser.add_argument("--steps", type=int, nargs="+", default=[100])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jit", type=int, choices=[0, 1], default=1,
                        help="jit_compile of every model (1: XLA / jax.jit / torch.compile)")
    parser.add_argument("--regimes", nargs="+", default=["warm", "cold"])
    args = parser.parse_args(argv)
    backend = keras.backend.backend()
    print(f"{args.family} on digits, batch {BATCH}, Adam; backend {backend}, "
          f"jit_compile={bool(args.jit)}; median of {args.rounds} interleaved rounds")
    for steps in args.steps:
        figures = finder_cost(args.family, steps, bool(args.jit), args.rounds, args.regimes)
        for regime, result in figures.items():
            print(f"\n{regime}, N={steps}")
            for name, seconds in result["seconds"].items():
                print(f"  {name:<16} {seconds * 1e3:8.1f} ms   "
                      f"{result['ratios'][name]:5.2f} x fit (spe=1)")


if __name__ == "__main__":
    main()
