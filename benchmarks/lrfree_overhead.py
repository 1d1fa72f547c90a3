"""Per-step cost of the learning-rate-free optimizers against plain `Adam`.

Claim (issue 17's targets): Prodigy and DAdaptAdam take at most 1.25x the time per training
step of ``keras.optimizers.Adam``, ScheduleFreeAdamW and ScheduleFreeSGD at most 1.10x.

The reference models of `keras_lr.models` (MLP, CNN, LSTM) on random data shaped like the
8x8 digits (flat, image and sequence views), batch 32, 10 steps per execution, XLA on or off.
Each variant is compiled and warmed up once, then timed in interleaved rounds (`_timing.py`):
the per-step time is the median epoch time divided by the steps, each ratio the median over
rounds of the two variants' times in the same round. Wall-clock and process CPU time are both
printed (CPU time is the steadier one on a shared machine).

Usage:
    python benchmarks/lrfree_overhead.py             # 9 rounds of 100 steps, XLA on and off
    python benchmarks/lrfree_overhead.py --quick     # 3 rounds of 30 steps (smoke test)
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

from keras_lr import models  # noqa: E402
from keras_lr.optimizers import (  # noqa: E402
    DAdaptAdam,
    Prodigy,
    ScheduleFreeAdamW,
    ScheduleFreeSGD,
)

BATCH = 32
# Keras's torch trainer runs one step per execution only.
STEPS_PER_EXECUTION = 1 if keras.backend.backend() == "torch" else 10
SHAPES = {"mlp": (64,), "cnn": (8, 8, 1), "lstm": (8, 8)}
OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(1e-3),
    "prodigy": lambda: Prodigy(),
    "dadapt_adam": lambda: DAdaptAdam(),
    "sf_adamw": lambda: ScheduleFreeAdamW(1e-3),
    "sf_sgd": lambda: ScheduleFreeSGD(0.1),
}
TARGETS = {"prodigy": 1.25, "dadapt_adam": 1.25, "sf_adamw": 1.10, "sf_sgd": 1.10}


def measure(family, steps, rounds, jit_compile, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(steps * BATCH, *SHAPES[family])).astype("float32")
    y = rng.integers(0, 10, size=(steps * BATCH,))
    runs = {}
    for name, make in OPTIMIZERS.items():
        model = models.build(family, SHAPES[family], 10, seed=seed)
        model.compile(make(), "sparse_categorical_crossentropy", jit_compile=jit_compile,
                      steps_per_execution=STEPS_PER_EXECUTION)
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # trace, compile, warm up
        runs[name] = lambda m=model: m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    return interleaved(runs, rounds, seed=seed, per=steps)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few short rounds (smoke test)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--models", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    parser.add_argument("--jit", choices=("on", "off", "both"), default="both")
    args = parser.parse_args(argv)
    steps = args.steps or (30 if args.quick else 100)
    rounds = args.rounds or (3 if args.quick else 9)
    steps = max(STEPS_PER_EXECUTION, steps // STEPS_PER_EXECUTION * STEPS_PER_EXECUTION)
    jits = {"on": [True], "off": [False], "both": [True, False]}[args.jit]
    names = [n for n in OPTIMIZERS if n != "adam"]
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, batch {BATCH}, "
          f"{steps} steps x {rounds} interleaved rounds; ratio = median of per-round "
          "ratios to adam (target in brackets)")
    print(f"{'model':5} {'xla':3} {'clock':5} {'adam ms':>8} " + " ".join(
        f"{n + ' [' + format(TARGETS[n], '.2f') + ']':>18}" for n in names))
    results = {}
    for jit in jits:
        for family in args.models:
            times = measure(family, steps, rounds, jit)
            results[family, jit] = times
            for clock, t in times.items():
                adam_ms = statistics.median(t["adam"]) * 1e3
                print(f"{family:5} {'on' if jit else 'off':3} {clock:5} {adam_ms:8.3f} " + " ".join(
                    f"{paired_ratio(t, n, 'adam'):18.3f}" for n in names))
    return results


if __name__ == "__main__":
    main()
