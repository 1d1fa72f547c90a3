"""What does a range test cost? `find_lr(num_steps=N)` against N plain training steps.

Three ways to run N steps of the same model on the same batches (digits, batch 32, Adam):

* ``find_lr``: `keras_lr.find_lr(model, x, y, num_steps=N)` (compiled chunks of
  ``steps_per_chunk`` steps, one host read per chunk, state saved and restored);
* ``fit``: ``model.fit`` on the same endless batch stream for N steps, with
  ``steps_per_execution`` 1 (Keras's default) and equal to find_lr's chunk size;
* ``callback``: the way older Keras LR finders work: ``model.fit`` with a per-batch
  `keras.callbacks.Callback` that sets the optimizer's rate before each batch and reads
  ``logs["loss"]`` (one host round trip per step) after it, smoothing it and stopping on
  divergence.

Two regimes: ``cold`` builds a fresh model for every run, so each run pays its tracing (what a
user pays for one call); ``warm`` reuses one model per method, so `fit` reuses its cached train
function (find_lr restores the model after each run, so it runs on the same state every time).
Medians over ``--repeats`` interleaved runs, in one process. Ratios are against ``fit``
with the same ``steps_per_execution`` as find_lr's chunk.

Usage::

    KERAS_BACKEND=tensorflow python benchmarks/finder_cost.py [--family mlp] [--steps 100 300]
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
import tensorflow as tf  # noqa: E402

from keras_lr import data, models  # noqa: E402
from keras_lr.finder import find_lr, range_test_rates  # noqa: E402

CHUNK = 50


class CallbackFinder(keras.callbacks.Callback):
    """A per-batch callback LR finder, as older Keras finders are written."""

    def __init__(self, rates, smoothing=0.98, stop_factor=4.0):
        super().__init__()
        self.rates, self.smoothing, self.stop_factor = rates, smoothing, stop_factor
        self.step, self.avg, self.best, self.losses = 0, 0.0, np.inf, []

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(self.rates[self.step])

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])  # a host round trip every step
        self.avg = self.smoothing * self.avg + (1 - self.smoothing) * loss
        smoothed = self.avg / (1 - self.smoothing ** (self.step + 1))
        self.best = min(self.best, smoothed)
        self.losses.append(loss)
        self.step += 1
        if not np.isfinite(loss) or smoothed > self.stop_factor * self.best:
            self.model.stop_training = True


def make_model(family, dataset, steps_per_execution=1):
    keras.utils.set_random_seed(0)
    model = models.build(family, dataset.input_shape, dataset.num_classes, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  steps_per_execution=steps_per_execution)
    return model


def stream(x, y):
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0)
    return dataset.batch(32).repeat().prefetch(tf.data.AUTOTUNE)


def runners(family, dataset, steps, warm):
    (x, y), _ = dataset
    rates = range_test_rates(1e-7, 10.0, steps)
    # stop_factor is set out of reach so that every method runs all `steps` steps
    models_ = {}

    def model_for(name, spe=1):
        if not warm or name not in models_:
            models_[name] = make_model(family, dataset, spe)
        return models_[name]

    def run_find():
        find_lr(model_for("find"), x, y, num_steps=steps, stop_factor=1e30,
                steps_per_chunk=CHUNK, seed=0)

    def run_fit(spe):
        def run():
            model_for(f"fit{spe}", spe).fit(stream(x, y), steps_per_epoch=steps, epochs=1,
                                            shuffle=False, verbose=0)
        return run

    def run_callback():
        model_for("callback").fit(stream(x, y), steps_per_epoch=steps, epochs=1, verbose=0,
                                  shuffle=False,
                                  callbacks=[CallbackFinder(rates, stop_factor=1e30)])

    return {"find_lr": run_find, "fit (spe=1)": run_fit(1), f"fit (spe={CHUNK})": run_fit(CHUNK),
            "callback finder": run_callback}


def measure(family, steps, warm, repeats):
    dataset = data.load("digits", view=data.view_for(family), seed=0)
    methods = runners(family, dataset, steps, warm)
    if warm:
        for run in methods.values():  # trace once, outside the timings
            run()
    times = {name: [] for name in methods}
    for _ in range(repeats):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="mlp", choices=["mlp", "cnn", "lstm", "gru"])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    devices = ", ".join(d.device_type for d in tf.config.list_physical_devices())
    print(f"{args.family} on digits, batch 32, Adam; devices: {devices}; "
          f"median of {args.repeats}")
    reference = f"fit (spe={CHUNK})"
    for regime in ("cold", "warm"):
        for steps in args.steps:
            medians = measure(args.family, steps, regime == "warm", args.repeats)
            base = medians[reference]
            print(f"\n{regime}, N={steps}")
            for name, seconds in medians.items():
                print(f"  {name:<16} {seconds * 1e3:8.1f} ms   {seconds / base:5.2f} x {reference}")
            print(f"  find_lr / callback finder: {medians['find_lr'] / medians['callback finder']:.2f}"
                  f"   find_lr / fit (spe=1): {medians['find_lr'] / medians['fit (spe=1)']:.2f}")


if __name__ == "__main__":
    main()
