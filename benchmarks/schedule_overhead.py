"""Per-step cost of keras-lr schedules compared with a float learning rate.

The same small MLP (64 -> 128 -> 128 -> 10, Adam, batch 32, random data, ``jit_compile=True``)
is trained under four learning rates:

    (a) a float,
    (b) Keras's own ``CosineDecay`` with ``warmup_target`` / ``warmup_steps``,
    (c) ``Warmup(CosineDecay(...))``,
    (d) a ``Sequence`` of three schedules (linear ramp, constant, cosine),
    (e) ``OneCycle`` with Adam's float ``beta_1``,
    (f) the same ``OneCycle`` with ``ScheduledMomentum`` cycling ``beta_1``
        (``lr.momentum_schedule()``, PyTorch's ``cycle_momentum=True``).

Each run calls the compiled train function for a fixed number of steps on a persistent
iterator (what ``fit`` does per batch, without callbacks); runs are interleaved, in a rotating
order, and repeated; the medians of the per-step times give the ratios (c)/(a), (d)/(a),
(c)/(b) and (f)/(e). The target is a ratio within 1.03 of the float rate (and of the float
momentum).

Usage:
    python benchmarks/schedule_overhead.py            # 7 repeats x 300 steps
    python benchmarks/schedule_overhead.py --quick    # a smoke run
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

from keras_lr import schedules  # noqa: E402
from keras_lr.optimizers import ScheduledMomentum  # noqa: E402

PEAK, WARMUP, DECAY = 1e-3, 100, 10_000


def learning_rates():
    return {
        "a float": PEAK,
        "b keras CosineDecay+warmup": keras.optimizers.schedules.CosineDecay(
            0.0, DECAY, warmup_target=PEAK, warmup_steps=WARMUP
        ),
        "c Warmup(CosineDecay)": schedules.Warmup(schedules.CosineDecay(PEAK, DECAY), WARMUP),
        "d Sequence of 3": schedules.Sequence(
            [
                schedules.LinearDecay(PEAK / 10, WARMUP, end_learning_rate=PEAK),
                schedules.Constant(PEAK),
                schedules.CosineDecay(PEAK, DECAY),
            ],
            [WARMUP, 2 * WARMUP],
        ),
        "e OneCycle": ONE_CYCLE,
        "f OneCycle+ScheduledMomentum": ONE_CYCLE,
    }


ONE_CYCLE = schedules.OneCycle(PEAK, DECAY)


def optimizer(name, learning_rate):
    adam = keras.optimizers.Adam(learning_rate)
    if "ScheduledMomentum" in name:
        return ScheduledMomentum(adam, learning_rate.momentum_schedule())
    return adam


def build(name, learning_rate, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=optimizer(name, learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats x 20 steps (smoke run)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    repeats, steps = (2, 20) if args.quick else (args.repeats, args.steps)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32 * 64, 64)).astype("float32")
    y = rng.integers(0, 10, len(x))
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).repeat().prefetch(8)

    runs = {}
    for name, learning_rate in learning_rates().items():
        model = build(name, learning_rate)
        model.fit(dataset, steps_per_epoch=5, verbose=0, shuffle=False)  # build + compile (excluded)
        function, iterator = model.make_train_function(), iter(dataset)
        for _ in range(20):  # warm-up, excluded
            function(iterator)
        runs[name] = (function, iterator, [])

    names = list(runs)
    for repeat in range(repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            function, iterator, times = runs[name]
            start = time.perf_counter()
            for _ in range(steps):
                logs = function(iterator)
            float(logs["loss"])  # wait for the last step
            times.append((time.perf_counter() - start) / steps)

    median = {name: statistics.median(times) for name, (_, _, times) in runs.items()}
    print(f"{repeats} interleaved repeats x {steps} steps, median time per step:")
    for name, value in median.items():
        print(f"  {name:<28s} {value * 1e3:8.4f} ms")
    a, b, c, d, e, f = (median[name] for name in names)
    print("ratios (target <= 1.03):")
    print(f"  (c)/(a) Warmup(CosineDecay) / float      {c / a:6.3f}")
    print(f"  (d)/(a) Sequence of 3 / float            {d / a:6.3f}")
    print(f"  (c)/(b) Warmup(CosineDecay) / Keras      {c / b:6.3f}")
    print(f"  (f)/(e) ScheduledMomentum / float beta_1 {f / e:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
