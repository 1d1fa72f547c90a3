"""Per-step cost of keras-lr's schedules, wrappers and finder on each Keras backend.

Claims, per backend, as ratios of per-step training time against plain ``Adam(1e-3)``:

* a composed schedule, ``Adam(Warmup(CosineDecay(...), ...))``: at most 1.05 (printed beside
  Keras's own ``CosineDecay(warmup_steps=...)`` of the same curve, ``keras_schedule``);
* ``LayerwiseLR(Adam)`` with three groups: at most 1.05, and never slower than
  ``keras.optimizers.MultiOptimizer`` with three Adams (one per group) on that backend;
* ``GradientGuard(Adam, clip=AdaptiveClip(0.01))``: at most 1.10, or within 1.05 of Keras's
  ``LossScaleOptimizer(Adam)`` on that backend;
* ``find_lr`` for N steps against N steps of plain ``fit`` on the same model: at most 1.2.

Each backend runs in its own process (a process has one Keras backend). There, every variant
is compiled and warmed up once, then the variants are timed in interleaved rounds (one epoch
each, the order shuffled every round, `_timing.py`); each ratio is the median over rounds of
the two variants' times in that round. TensorFlow and JAX train compiled (``jit_compile=True``:
XLA, ``jax.jit``), torch eagerly (Keras's default there; ``torch.compile`` is not measured).

Usage:
    python benchmarks/backends.py                    # every installed backend, MLP and CNN
    python benchmarks/backends.py --quick            # few short rounds (smoke test)
    python benchmarks/backends.py --backends jax --models mlp
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("tensorflow", "jax", "torch")
BATCH = 32
GROUPS = {"g1/": 0.1, "g2/": 0.5}  # third group: g3 (default multiplier 1)


def _models():
    import keras

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

    return {"mlp": mlp, "cnn": cnn}


def _variants(total_steps):
    import keras

    from keras_lr import guards, schedules
    from keras_lr.optimizers import LayerwiseLR

    adam = keras.optimizers.Adam
    return {
        "adam": lambda: adam(1e-3),
        "schedule": lambda: adam(schedules.Warmup(
            schedules.CosineDecay(1e-3, total_steps), warmup_steps=total_steps // 10)),
        # The same curve from Keras's built-in schedule: what the target is measured beside.
        "keras_schedule": lambda: adam(keras.optimizers.schedules.CosineDecay(
            0.0, total_steps, warmup_target=1e-3, warmup_steps=total_steps // 10)),
        "layerwise": lambda: LayerwiseLR(adam(1e-3), GROUPS),
        "multi": lambda: keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(
            adam(1e-3), {"g1/.*": adam(1e-4), "g2/.*": adam(5e-4)})),
        "guard_agc": lambda: guards.GradientGuard(adam(1e-3), clip=guards.AdaptiveClip(0.01)),
        "loss_scale": lambda: keras.optimizers.LossScaleOptimizer(adam(1e-3)),
    }


def child(models, steps, rounds):
    """Measure on this process's backend; return ``{model: {clock: {ratio: value}}}``."""
    sys.path.insert(0, HERE)
    import keras
    import numpy as np
    from _timing import interleaved, paired_ratio

    from keras_lr.finder import find_lr

    backend = keras.backend.backend()
    jit = backend != "torch"
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(steps * BATCH, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, size=(steps * BATCH,))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    out = {}
    for model_name in models:
        build = _models()[model_name]
        runs = {}
        for name, make in _variants(steps * (rounds + 2)).items():
            keras.utils.set_random_seed(0)
            model = build()
            model.compile(make(), loss, jit_compile=jit)
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # trace, compile, warm up
            runs[name] = lambda m=model: m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        keras.utils.set_random_seed(0)
        finder_model = build()
        finder_model.compile(keras.optimizers.Adam(1e-3), loss, jit_compile=jit)

        def finder(m=finder_model):
            find_lr(m, x, y, batch_size=BATCH, num_steps=steps, start_lr=1e-6, end_lr=1e-2,
                    stop_factor=1e9, seed=0)  # no early stop: all `steps` steps run

        finder()  # warm up
        runs["find_lr"] = finder
        times = interleaved(runs, rounds, per=steps)
        out[model_name] = {
            clock: {
                "adam_ms": statistics.median(t["adam"]) * 1e3,
                "schedule/adam": paired_ratio(t, "schedule", "adam"),
                "keras_schedule/adam": paired_ratio(t, "keras_schedule", "adam"),
                "layerwise/adam": paired_ratio(t, "layerwise", "adam"),
                "multi/adam": paired_ratio(t, "multi", "adam"),
                "layerwise/multi": paired_ratio(t, "layerwise", "multi"),
                "guard_agc/adam": paired_ratio(t, "guard_agc", "adam"),
                "loss_scale/adam": paired_ratio(t, "loss_scale", "adam"),
                "guard_agc/loss_scale": paired_ratio(t, "guard_agc", "loss_scale"),
                "find_lr/fit": paired_ratio(t, "find_lr", "adam"),
            }
            for clock, t in times.items()
        }
    return out


COLUMNS = ("adam_ms", "schedule/adam", "keras_schedule/adam", "layerwise/adam", "multi/adam", "layerwise/multi",
           "guard_agc/adam", "loss_scale/adam", "guard_agc/loss_scale", "find_lr/fit")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few short rounds (smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--models", nargs="+", choices=("mlp", "cnn"), default=["mlp", "cnn"])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = args.steps or (20 if args.quick else 60)
    rounds = args.rounds or (3 if args.quick else 11)
    if args.child:
        print(json.dumps(child(args.models, steps, rounds)))
        return None
    print(f"batch {BATCH}, {steps} steps x {rounds} interleaved rounds per backend; "
          "ratios = median of per-round ratios (targets: schedule 1.05, layerwise 1.05 and "
          "<= multi, guard 1.10 or <= 1.05 x loss_scale, find_lr 1.2)")
    print(f"{'backend':10} {'model':5} {'clock':5} " + " ".join(f"{c:>12}" for c in COLUMNS))
    results = {}
    for backend in args.backends:
        module = "tensorflow" if backend == "tensorflow" else backend
        if importlib.util.find_spec(module) is None:
            print(f"{backend:10} not installed, skipped")
            continue
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        command = [sys.executable, os.path.abspath(__file__), "--child", backend,
                   "--steps", str(steps), "--rounds", str(rounds), "--models", *args.models]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{backend:10} failed:\n{done.stderr[-2000:]}")
            continue
        results[backend] = json.loads(done.stdout.strip().splitlines()[-1])
        for model_name, clocks in results[backend].items():
            for clock, row in clocks.items():
                print(f"{backend:10} {model_name:5} {clock:5} "
                      + " ".join(f"{row[c]:12.3f}" for c in COLUMNS))
    return results


if __name__ == "__main__":
    main()
