"""Keep an LSTM alive at a learning rate that makes it explode.

The adding problem (two marked numbers in a long sequence must be summed) is the classic
exploding-gradient task. SGD with momentum at rate 1.0 blows the unclipped LSTM up within an
epoch; at the same rate the LSTM stays finite and stable once `keras_lr.guards.GradientGuard`
clips the gradients, either by their global norm or with NFNet's adaptive clipping (AGC).
(In 3 epochs at this untuned rate the clipped runs end near the trivial predictor's MSE of 1/6,
not below it.) The guard also skips any step
whose gradients are NaN/inf and counts what it did; `LRMonitor` puts the counts in History.

Run:  python examples/rnn_clipping.py [--epochs 3] [--length 30]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lr import guards  # noqa: E402
from keras_lr.callbacks import LRMonitor  # noqa: E402
from keras_lr.data import BASELINE_MSE, adding_problem  # noqa: E402


def train(clip, x, y, epochs, rate):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input(x.shape[1:]), keras.layers.LSTM(8), keras.layers.Dense(1)]
    )
    optimizer = guards.GradientGuard(
        keras.optimizers.SGD(rate, momentum=0.9), clip=clip, max_consecutive_skips=20
    )
    model.compile(optimizer=optimizer, loss="mse", jit_compile=False)
    history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[LRMonitor()])
    return history.history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--length", type=int, default=30, help="sequence length")
    parser.add_argument("--rate", type=float, default=1.0, help="SGD learning rate")
    args = parser.parse_args(argv)

    x, y = adding_problem(n=256, length=args.length, seed=0)
    print(f"adding problem, length {args.length}; predicting 1 scores MSE {BASELINE_MSE:.3f}")
    print(f"{'clipping':<34} {'final loss':>12} {'grad norm':>10} {'clipped':>8} {'skipped':>8}")
    rules = {
        "none": None,
        "GlobalNorm(1.0)": guards.GlobalNorm(1.0),
        "AdaptiveClip(0.05)": guards.AdaptiveClip(0.05),
    }
    for label, rule in rules.items():
        logs = train(rule, x, y, args.epochs, args.rate)
        loss = logs["loss"][-1]
        print(
            f"{label:<34} {loss:>12.4g} {logs['grad_norm'][-1]:>10.3g} "
            f"{logs['clipped_steps'][-1]:>8d} {logs['skipped_steps'][-1]:>8d}"
        )
        if rule is not None and not np.isfinite(loss):
            raise SystemExit(f"{label} did not keep the LSTM finite")


if __name__ == "__main__":
    main()
