"""Per-step cost of `LayerwiseLR(Adam)` against plain `Adam` and `MultiOptimizer`.

Claim: layer-wise multipliers cost (almost) nothing: ``LayerwiseLR(Adam)`` with three groups
takes at most 1.05x the time per training step of plain ``Adam``, and less than
``keras.optimizers.MultiOptimizer`` with three Adams (one per group).

Three models on random data shaped like the 8x8 digits (MLP, small CNN, LSTM over the 8 rows),
with and without XLA (``jit_compile=False`` is what Keras's ``"auto"`` picks on a CPU-only
machine), 10 steps per execution. Each variant is compiled and warmed up once, then the
variants are timed in interleaved rounds (one epoch each, same data, the order shuffled every
round) within one process (`_timing.py`); the per-step time is the median epoch time divided by
the steps, and each ratio is the median over rounds of the two variants' times in that round.
Both wall-clock and process CPU time are reported: on a shared machine the CPU time is the
steadier of the two (use `--threads 1` to steady it further). The operation count of one traced
training step of each variant is printed too: it is exact, and shows what the timings are too
noisy to resolve (LayerwiseLR adds one multiply per variable group, MultiOptimizer a second and
third optimizer's bookkeeping).

Usage:
    python benchmarks/layerwise_overhead.py            # 15 rounds of 100 steps, XLA on and off
    python benchmarks/layerwise_overhead.py --quick    # 5 rounds of 30 steps (CI smoke)
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
from _timing import graph_ops, interleaved, paired_ratio  # noqa: E402

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


def measure(model_name, steps, rounds, jit_compile=True, seed=0):
    """Per-step times of each optimizer variant on one model, from interleaved rounds."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 16, size=(steps * BATCH, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, size=(steps * BATCH,))
    runs, ops = {}, {}
    for name, make in optimizers().items():
        keras.utils.set_random_seed(seed)
        model = MODELS[model_name]()
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(make(), loss, jit_compile=jit_compile,
                      steps_per_execution=STEPS_PER_EXECUTION)
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # trace, compile, warm up
        runs[name] = lambda m=model: m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        ops[name] = graph_ops(model, x[:BATCH], y[:BATCH])
    return interleaved(runs, rounds, seed=seed, per=steps), ops


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few short rounds (smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--jit", choices=("on", "off", "both"), default="both",
                        help="jit_compile=True (XLA), False (Keras's default on CPU), or both")
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
    jits = {"on": [True], "off": [False], "both": [True, False]}[args.jit]

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, batch {BATCH}, "
          f"{steps} steps x {rounds} interleaved rounds; ms = median per step, "
          "ratios = median of per-round ratios")
    print(f"{'model':6} {'xla':3} {'clock':5} {'adam ms':>8} {'layerwise ms':>13} "
          f"{'multi ms':>9} {'layerwise/adam':>15} {'multi/adam':>11} {'layerwise/multi':>16}")
    results = {}
    for jit in jits:
        for model_name in args.models:
            times, ops = measure(model_name, steps, rounds, jit)
            results[model_name, jit] = times
            if jit == jits[0]:
                print(f"{model_name:6} ops in one traced step: " + ", ".join(
                    f"{name} {n} ({n / ops['adam']:.3f})" for name, n in ops.items()))
            for clock, t in times.items():
                ms = {name: statistics.median(v) * 1e3 for name, v in t.items()}
                print(
                    f"{model_name:6} {'on' if jit else 'off':3} {clock:5} {ms['adam']:8.3f} "
                    f"{ms['layerwise']:13.3f} {ms['multi']:9.3f} "
                    f"{paired_ratio(t, 'layerwise', 'adam'):15.3f} "
                    f"{paired_ratio(t, 'multi', 'adam'):11.3f} "
                    f"{paired_ratio(t, 'layerwise', 'multi'):16.3f}"
                )
    return results


if __name__ == "__main__":
    main()
