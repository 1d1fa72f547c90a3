"""Wall time of a KerasTuner random search with and without `DivergencePruning`.

Claim: pruning diverging trials shortens a learning-rate search over a wide range by the share
of training time those trials would otherwise waste; the best trial is the same.

Method: a 12-trial `keras_tuner.RandomSearch` over the rate only (log-uniform in 1e-5..10,
constant schedule, Adam, no clipping) of `LRHyperModel("mlp")` on the full digits data
(1,438 training samples, batch 32), `--epochs` epochs per trial. Repeat ``r`` uses the oracle
seed ``seed + r`` for both variants (the same 12 rates with and without pruning; different
draws across repeats, so the median is not one lucky draw). The two variants run in turn,
in alternating order, after an untimed warm-up search, each in a fresh project directory;
the reported times are medians, the ratio is pruned / unpruned (also per repeat). Also
printed: the pruned trials (rate, epochs run) and the best score of each variant.

Run:  python benchmarks/tuner_pruning.py [--repeats 3] [--epochs 10] [--trials 12] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_tuner as kt  # noqa: E402

from keras_lr import data  # noqa: E402
from keras_lr.tuner import DivergencePruning, LRHyperModel  # noqa: E402

BATCH = 32


def search(ds, pruning, trials, epochs, seed):
    """One search; returns (seconds, records, best score, {rate: score})."""
    hypermodel = LRHyperModel(
        "mlp", epochs=epochs, steps_per_epoch=math.ceil(len(ds.x_train) / BATCH),
        input_shape=ds.input_shape, num_classes=ds.num_classes, learning_rate=(1e-5, 10.0),
        schedules=("constant",), optimizers=("adam",), clip=("none",),
        pruning=DivergencePruning(verbose=0) if pruning else None,
    )
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        tuner = kt.RandomSearch(hypermodel, objective="val_accuracy", max_trials=trials,
                                seed=seed, directory=directory, project_name="bench")
        tuner.search(ds.x_train, ds.y_train, batch_size=BATCH, verbose=0,
                     validation_data=(ds.x_val, ds.y_val))
        seconds = time.perf_counter() - start
        best = tuner.oracle.get_best_trials(1)[0].score
        scores = {t.hyperparameters["learning_rate"]: t.score
                  for t in tuner.oracle.trials.values()}
    return seconds, hypermodel.records, best, scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="1 repeat of 4-epoch trials")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.epochs = 1, 4
    ds = data.load("digits", view="flat")
    search(ds, True, 1, 1, args.seed)  # warm-up: TensorFlow start-up, first tracing
    times = {True: [], False: []}
    for repeat in range(args.repeats):
        seed = args.seed + repeat
        order = (True, False) if repeat % 2 == 0 else (False, True)
        runs = {}
        for pruning in order:
            seconds, records, best, scores = search(ds, pruning, args.trials, args.epochs, seed)
            runs[pruning] = records, scores
            times[pruning].append(seconds)
            epochs = sum(r["epochs_run"] for r in records)
            label = "pruned  " if pruning else "unpruned"
            print(f"repeat {repeat + 1} (seed {seed}) {label}: {seconds:6.1f} s, {epochs} epochs "
                  f"in all, best val_accuracy {best:.4f}")
        unpruned_scores = runs[False][1]
        for record in runs[True][0]:
            if record["pruned"]:
                lr = record["hyperparameters"]["learning_rate"]
                print(f"    pruned: lr {lr:.3g} after {record['epochs_run']} epoch(s) "
                      f"({record['reason']}); unpruned it scored {unpruned_scores[lr]:.4f}")
        print(f"repeat {repeat + 1} ratio {times[True][-1] / times[False][-1]:.2f}")
    pruned, unpruned = statistics.median(times[True]), statistics.median(times[False])
    print(f"\n{args.trials} trials x {args.epochs} epochs, median of {args.repeats}: "
          f"pruned {pruned:.1f} s, unpruned {unpruned:.1f} s, ratio {pruned / unpruned:.2f}")


if __name__ == "__main__":
    main()
