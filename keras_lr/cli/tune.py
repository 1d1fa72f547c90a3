"""`keras-lr tune`: a KerasTuner search over the learning rate, schedule and optimizer.

Usage::

    keras-lr tune --model {mlp,cnn,lstm,gru,simple_rnn} [--data digits] [--limit N]
                  [--tuner random|bayesian|hyperband] [--max-trials N] [--epochs E]
                  [--batch-size B] [--min-lr LR] [--max-lr LR] [--schedules a,b,...]
                  [--optimizers adam,sgd] [--clip none,global_norm,agc] [--objective NAME]
                  [--no-pruning] [--directory DIR] [--project-name NAME] [--overwrite]
                  [--seed S] [--verbose 0|1|2]

Searches with `keras_lr.tuner.LRHyperModel` (with `DivergencePruning`) on a reference model
and prints one line per trial, then the best trials, and writes
``DIR/PROJECT/best_hyperparameters.json``. Hyperband's budget is ``--epochs`` (its
``max_epochs``, factor 3); ``--max-trials`` is for random and bayesian.

Distributed (KerasTuner's own mode): run the same command on every machine with
``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT`` and ``KERASTUNER_TUNER_ID`` set; the
process whose id contains ``chief`` serves the oracle (it trains nothing, prints the summary
and exits once every worker is done), the others are workers that ask it for trials and print
how many they trained. TensorFlow is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os

from keras_lr.cli.common import UsageError, int_at_least, load_data, positive_float, writable_dir

__all__ = ["add_parser", "distributed_role", "run"]

_FAMILIES = ("mlp", "cnn", "lstm", "gru", "simple_rnn")
_TUNERS = ("random", "bayesian", "hyperband")
_ENV = ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``tune`` on the top-level subparsers."""
    parser = subparsers.add_parser(
        "tune",
        help="search learning rate, schedule and optimizer with KerasTuner",
        description="Run a KerasTuner search (random, bayesian or hyperband) over the "
        "learning rate, schedule family and parameters, optimizer and clipping of a reference "
        "model, pruning diverging trials. Set KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT "
        "and KERASTUNER_TUNER_ID to run as the chief or a worker of a distributed search.",
    )
    parser.add_argument("--model", required=True, choices=_FAMILIES, help="reference model")
    parser.add_argument("--data", default="digits", help="data set name (default digits)")
    parser.add_argument("--limit", type=int_at_least(20), default=None,
                        help="use the first N samples (default: all)")
    parser.add_argument("--tuner", choices=_TUNERS, default="random", help="default random")
    parser.add_argument("--max-trials", type=int_at_least(1), default=None,
                        help="trials of a random or bayesian search (default 10)")
    parser.add_argument("--epochs", type=int_at_least(1), default=5,
                        help="epochs per trial; hyperband's max_epochs (default 5)")
    parser.add_argument("--batch-size", type=int_at_least(1), default=32, help="default 32")
    parser.add_argument("--min-lr", type=positive_float, default=1e-5, help="default 1e-5")
    parser.add_argument("--max-lr", type=positive_float, default=1.0, help="default 1")
    parser.add_argument("--schedules", default=None,
                        help="comma list of schedule families (default: all)")
    parser.add_argument("--optimizers", default="adam,sgd", help="default adam,sgd")
    parser.add_argument("--clip", default="none,global_norm,agc",
                        help="default none,global_norm,agc")
    parser.add_argument("--objective", default=None,
                        help="default val_accuracy (val_loss for regression data)")
    parser.add_argument("--no-pruning", action="store_true",
                        help="train diverging trials to the end (no DivergencePruning)")
    parser.add_argument("--directory", default="keras-lr-tune",
                        help="KerasTuner directory (default ./keras-lr-tune)")
    parser.add_argument("--project-name", default=None, help="default MODEL_DATA")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh instead of resuming the project")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="data split, weights, shuffling and oracle seed")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=0,
                        help="KerasTuner/Keras verbosity (default 0: one line per trial)")
    parser.set_defaults(func=run)
    return parser


def distributed_role(environ=os.environ) -> tuple[str, str | None]:
    """``("single", None)``, ``("chief", id)`` or ``("worker", id)`` from KerasTuner's
    environment variables (raises `UsageError` on an incomplete or bad setting)."""
    present = [name for name in _ENV if environ.get(name)]
    if not present:
        return "single", None
    missing = [name for name in _ENV if not environ.get(name)]
    if missing:
        raise UsageError(f"distributed search: {', '.join(present)} set but "
                         f"{', '.join(missing)} not; set all three or none")
    port = environ["KERASTUNER_ORACLE_PORT"]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"KERASTUNER_ORACLE_PORT must be a port number, got {port!r}")
    tuner_id = environ["KERASTUNER_TUNER_ID"]
    return ("chief" if "chief" in tuner_id else "worker"), tuner_id


def _names(text, choices, what):
    from keras_lr.study.grid import parse_list

    try:
        return parse_list(text, choices, what)
    except ValueError as error:
        raise UsageError(str(error)) from None


class _Plan:
    """The checked arguments: choices, objective and tuner settings."""

    def __init__(self, args):
        try:
            from keras_lr.tuner import CLIPS, OPTIMIZERS, SCHEDULES
        except ImportError as error:  # KerasTuner (or TensorBoard) is not installed
            raise UsageError(str(error).splitlines()[0]) from None

        if not args.max_lr > args.min_lr:
            raise UsageError(f"--max-lr ({args.max_lr:g}) must be > --min-lr ({args.min_lr:g})")
        if args.tuner == "hyperband" and args.max_trials is not None:
            raise UsageError("--max-trials does not apply to --tuner hyperband (its budget is "
                             "--epochs, its max_epochs)")
        self.schedules = _names(args.schedules or ",".join(SCHEDULES), SCHEDULES, "schedule")
        self.optimizers = _names(args.optimizers, OPTIMIZERS, "optimizer")
        self.clip = _names(args.clip, CLIPS, "clip")
        self.role, self.tuner_id = distributed_role()
        if self.role == "worker" and args.overwrite:
            raise UsageError("--overwrite on a worker would delete the shared project; "
                             "give it to the chief only")
        self.project = args.project_name or f"{args.model}_{args.data}"


class _Reporting:
    """Mixin for `LRHyperModel`: one printed line per trial."""

    def fit(self, hp, model, *args, **kwargs):
        history = super().fit(hp, model, *args, **kwargs)
        record = self.records[-1]
        values = record["hyperparameters"]
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items() if not k.startswith("tuner/"))
        logs = {k: v[-1] for k, v in history.history.items() if k.startswith("val_")}
        result = ", ".join(f"{k} {_fmt(v)}" for k, v in logs.items())
        status = f"pruned ({record['reason']})" if record["pruned"] else "done"
        print(f"trial {len(self.records)}: {shown} -> {status} after {record['epochs_run']} "
              f"epoch(s); {result}", flush=True)
        return history


def _fmt(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _make_tuner(args, plan, dataset):
    import keras_tuner as kt

    from keras_lr.tuner import LRHyperModel

    class ReportingHyperModel(_Reporting, LRHyperModel):
        pass

    hypermodel = ReportingHyperModel(
        args.model, epochs=args.epochs,
        steps_per_epoch=math.ceil(len(dataset.x_train) / args.batch_size),
        input_shape=dataset.input_shape, num_classes=dataset.num_classes,
        learning_rate=(args.min_lr, args.max_lr), schedules=plan.schedules,
        optimizers=plan.optimizers, clip=plan.clip, pruning=not args.no_pruning,
        seed=args.seed,
    )
    objective = _objective(args, hypermodel)
    writable_dir(args.directory, "--directory")
    common = dict(objective=objective, seed=args.seed, directory=args.directory,
                  project_name=plan.project, overwrite=args.overwrite)
    try:
        if args.tuner == "random":
            tuner = kt.RandomSearch(hypermodel, max_trials=args.max_trials or 10, **common)
        elif args.tuner == "bayesian":
            tuner = kt.BayesianOptimization(hypermodel, max_trials=args.max_trials or 10,
                                            **common)
        else:
            tuner = kt.Hyperband(hypermodel, max_epochs=args.epochs, factor=3, **common)
    except ValueError as error:  # KerasTuner refusing a setting: one line, exit 2
        raise UsageError(f"KerasTuner: {error}".splitlines()[0]) from None
    return tuner, hypermodel, objective


def _objective(args, hypermodel) -> str:
    """``--objective``, checked against the metrics the hypermodel's models report."""
    metrics = ["loss", *(m for m in hypermodel.metrics if isinstance(m, str))]
    choices = [f"val_{m}" for m in metrics] + metrics
    if args.objective is None:
        return "val_accuracy" if "val_accuracy" in choices else "val_loss"
    if args.objective not in choices:
        raise UsageError(f"--objective {args.objective!r} is not a metric the {args.model} "
                         f"model reports on {args.data}; choose from {', '.join(choices)}")
    return args.objective


def _summary(tuner, objective, path):
    trials = tuner.oracle.get_best_trials(3)
    done = [t for t in trials if t.score is not None]
    if not done:
        print("no completed trial")
        return
    print(f"best trials ({objective}):")
    for trial in done:
        values = {k: v for k, v in trial.hyperparameters.values.items()
                  if trial.hyperparameters.is_active(k) and not k.startswith("tuner/")}
        print(f"  {trial.score:.4g}  " + ", ".join(f"{k}={_fmt(v)}" for k, v in values.items()))
    best = done[0]
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"objective": objective, "score": best.score, "trial_id": best.trial_id,
                   "hyperparameters": best.hyperparameters.values}, handle, indent=1)
    print(f"wrote {path}")


def run(args) -> int:
    plan = _Plan(args)

    import keras

    from keras_lr import models

    keras.utils.set_random_seed(args.seed)
    dataset = load_data(args.data, models.VIEWS[args.model], args.seed, args.limit)
    tuner, hypermodel, objective = _make_tuner(args, plan, dataset)
    address = (f"{os.environ.get('KERASTUNER_ORACLE_IP')}:"
               f"{os.environ.get('KERASTUNER_ORACLE_PORT')}")
    if plan.role == "chief":
        print(f"keras-lr tune: chief {plan.tuner_id} serving the oracle on {address}",
              flush=True)
    elif plan.role == "worker":
        print(f"keras-lr tune: worker {plan.tuner_id} asking the oracle at {address} for "
              "trials", flush=True)
    (x, y), validation = dataset
    tuner.search(x, y, batch_size=args.batch_size, validation_data=validation,
                 verbose=args.verbose)
    pruned = sum(record["pruned"] for record in hypermodel.records)
    if plan.role == "worker":
        # A worker must not ask the oracle anything now: the chief may already be gone, and
        # KerasTuner's client would wait an hour for it.
        print(f"keras-lr tune: worker {plan.tuner_id} finished: trained "
              f"{len(hypermodel.records)} trial(s), {pruned} pruned", flush=True)
        return 0
    if plan.role == "single":
        print(f"keras-lr tune: trained {len(hypermodel.records)} trial(s), {pruned} pruned")
    _summary(tuner, objective, os.path.join(tuner.project_dir, "best_hyperparameters.json"))
    return 0
