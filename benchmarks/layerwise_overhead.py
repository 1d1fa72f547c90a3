"""Per-step cost of `LayerwiseLR(Adam)` against plain `Adam` and `MultiOptimizer`.

Claim: layer-wise multipliers cost (almost) nothing: ``LayerwiseLR(Adam)`` with three groups
takes at most 1.05x the time per training step of plain ``Adam``, and less than
``keras.optimizers.MultiOptimizer`` with three Adams (one per group).

Three models on random data shaped like the 8x8 digits (MLP, small CNN, LSTM over the 8 rows),
`jit_compile=True`, 10 steps per execution. Each variant is compiled and warmed up once, then
the variants are timed in interleaved rounds (one epoch each, same data, the order shuffled
every round) within one process; the median epoch time divided by the number of steps is the
per-step time. Both wall-clock and process CPU time are reported: on a shared machine the CPU
time is the steadier of the two (use `--threads 1` to steady it further). Ratios are against
plain Adam.

Usage:
    python benchmarks/layerwise_overhead.py            # 15 rounds of 100 steps
    python benchmarks/layerwise_overhead.py --quick    # 5 rounds of 30 steps (CI smoke)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lr.optimizers import LayerwiseLR  # noqa: E402

BATCH = 32
STEPS_PER_EXECUTION = 10  # several steps per call: time the step, not Python's call overhead


def mlp():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(128, activation="relu", name="g1")(x)
    x = keras.layers.Dense(64, activation="relu", name="g2")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="g3")(x), name="mlp")


def cnn():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="g1")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="g2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="g3")(x), name="cnn")


def lstm():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Reshape((8, 8))(inputs)
    x = keras.layers.LSTM(32, name="g1")(x)
    x = keras.layers.Dense(32, activation="relu", name="g2")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="g3")(x), name="lstm")


MODELS = {"mlp": mlp, "cnn": cnn, "lstm": lstm}
GROUPS = {"g1/": 0.1, "g2/": 0.5}  # third group: g3 (default multiplier 1)


def optimizers():
    return {
        "adam": lambda: keras.optimizers.Adam(1e-3),
        "layerwise": lambda: LayerwiseLR(keras.optimizers.Adam(1e-3), GROUPS),
        "multi": lambda: keras.optimizers.MultiOptimizer(
            keras.optimizers.OptimizerMap(
                keras.optimizers.Adam(1e-3),
                {"g1/.*": keras.optimizers.Adam(1e-4), "g2/.*": keras.optimizers.Adam(5e-4)},
            )
        ),
    }


def measure(model_name, steps, rounds, seed=0):
    """Median (wall, CPU) seconds per step of each optimizer variant on one model."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 16, size=(steps * BATCH, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, size=(steps * BATCH,))
    models = {}
    for name, make in optimizers().items():
        keras.utils.set_random_seed(seed)
        model = MODELS[model_name]()
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(make(), loss, jit_compile=True, steps_per_execution=STEPS_PER_EXECUTION)
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # compile and warm up
        models[name] = model
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    shuffler = random.Random(seed)
    for _ in range(rounds):
        order = list(models)
        shuffler.shuffle(order)
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            models[name].fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
            wall[name].append((time.perf_counter() - start) / steps)
            cpu[name].append((time.process_time() - start_cpu) / steps)
    return {
        name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in models
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few short rounds (smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra- and inter-op threads (default: TF's choice)")
    args = parser.parse_args(argv)
    steps = args.steps or (30 if args.quick else 100)
    rounds = args.rounds or (5 if args.quick else 15)
    steps = max(STEPS_PER_EXECUTION, steps // STEPS_PER_EXECUTION * STEPS_PER_EXECUTION)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, XLA, batch {BATCH}, "
          f"{steps} steps x {rounds} interleaved rounds, median per step")
    print(f"{'model':6} {'clock':5} {'adam ms':>8} {'layerwise ms':>13} {'multi ms':>9} "
          f"{'layerwise/adam':>15} {'multi/adam':>11} {'layerwise/multi':>16}")
    results = {}
    for model_name in args.models:
        results[model_name] = t = measure(model_name, steps, rounds)
        for i, clock in enumerate(("wall", "cpu")):
            adam, layerwise, multi = t["adam"][i], t["layerwise"][i], t["multi"][i]
            print(
                f"{model_name:6} {clock:5} {adam * 1e3:8.3f} {layerwise * 1e3:13.3f} "
                f"{multi * 1e3:9.3f} {layerwise / adam:15.3f} {multi / adam:11.3f} "
                f"{layerwise / multi:16.3f}"
            )
    return results


if __name__ == "__main__":
    main()
