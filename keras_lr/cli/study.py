"""`keras-lr study`: the learning-rate x architecture study, written up as a report.

Usage::

    keras-lr study [--models mlp,cnn,lstm,gru] [--data digits] [--optimizers sgd,adam,...]
                   [--lrs 1e-4:1:9] [--schedules constant,...] [--clip none,global_norm,agc]
                   [--seeds N] [--epochs N] [--out DIR] [--quick] [--plan NAME]
                   [--download] [--scheduler ADDRESS | --workers N | --threads N]
                   [--[no-]parallel]
                   [--no-progress]

Without grid flags it runs the default plan (`keras_lr.study.default_plan`: a main rate grid
per family and optimizer plus one small sub-study per claim, the learning-rate-free one
included); `--quick` runs the CI-sized plan. ``--optimizers`` takes sgd, adam and the
learning-rate-free prodigy, dadapt_adam, schedule_free_adamw (`grid.ALL_OPTIMIZERS`). Any of ``--models``, ``--data``, ``--optimizers``, ``--lrs``, ``--schedules``,
``--clip`` selects a custom grid instead: the cartesian product of the given options (the
others at their defaults). Rerunning with the same ``--out`` resumes; Ctrl-C writes a partial
report and exits 130. Bad input exits 2 with a one-line message. ``--parallel`` /
``--no-parallel`` force the parallel engine (`keras_lr.study.parallel`) on or off; by default it
trains the runs of one model, optimizer and seed at once wherever that was measured faster.
``--plan standard`` runs the main grid and the claims on MNIST-5k, Fashion-MNIST and CIFAR-10
(those present; `keras_lr.study.grid.standard_plan`); ``--plan structure`` the full structure
study (`keras_lr.study.structure.structure_plan`: width under SP and μP, depth, residual
connections and normalization of the MLP and the CNN, SGD and Adam; ``--data``, ``--models``
and ``--optimizers`` narrow it). ``--download`` fetches a missing
MNIST, Fashion-MNIST, CIFAR-10 or CIFAR-100 first (`keras_lr.data.download`), on the workers
too. ``--scheduler tcp://HOST:PORT`` runs the work on an existing Dask cluster, ``--workers N``
on a new local one of N processes (`keras_lr.study.distributed`); without them ``--threads N``
groups train at once in this process (default: 2 on JAX, 1 on TensorFlow and torch;
`keras_lr.study.engine.group_threads`).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from keras_lr.cli.common import UsageError, writable_dir

__all__ = ["add_parser", "run"]

_GRID_FLAGS = ("models", "data", "optimizers", "lrs", "schedules", "clip")
_PLANS = ("default", "quick", "standard", "structure")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``study`` on the top-level subparsers."""
    parser = subparsers.add_parser(
        "study",
        help="run the learning-rate x architecture study and write a report",
        description="Train small MLP, CNN, LSTM and GRU models over a grid of learning "
        "rates, optimizers, schedules and clipping rules; write DIR/report.md, "
        "DIR/report.html, results.csv/json and figures. Reruns resume.",
    )
    parser.add_argument("--models", help="comma list of mlp,cnn,lstm,gru (custom grid)")
    parser.add_argument("--data", help="data set (custom grid; default digits)")
    parser.add_argument("--optimizers", help="comma list of sgd,adam,prodigy,dadapt_adam,"
                        "schedule_free_adamw (custom grid; the last three at their defaults "
                        "but the rate)")
    parser.add_argument("--lrs", help="LOW:HIGH:N log-spaced rates, or a comma list "
                        "(default 1e-4:1:9; 1e-3:1:4 with --quick)")
    parser.add_argument("--schedules", help="comma list of " + ",".join(_schedules()))
    parser.add_argument("--clip", help="comma list of none,global_norm,agc")
    parser.add_argument("--seeds", help="number of seeds (default 3; 2 with --quick)")
    parser.add_argument("--epochs", help="epochs per run (default 8; 3 with --quick)")
    parser.add_argument("--out", default="keras-lr-study",
                        help="output directory (default ./keras-lr-study); reruns resume")
    parser.add_argument("--quick", action="store_true",
                        help="CI-sized study: small models, 3 epochs, ~1-2 minutes")
    parser.add_argument(
        "--parallel", action=argparse.BooleanOptionalAction, default=None,
        help="train the rates of one model, optimizer and seed at once (a replicated "
        "model of keras_lr.sweep on TensorFlow and torch, jax.vmap on JAX); default: where "
        "measured faster (TensorFlow: the CNN; torch: every model; JAX: none)")
    parser.add_argument("--plan", choices=_PLANS,
                        help="a named plan: default, quick (= --quick), standard (MNIST-5k, "
                        "Fashion-MNIST, CIFAR-10 where present; with --quick a reduced one) or "
                        "structure (width under SP and muP, depth, residual, normalization; "
                        "MLP and CNN, SGD and Adam)")
    parser.add_argument("--download", action="store_true",
                        help="fetch a missing mnist, fashion_mnist, cifar10 or cifar100 into "
                        "$KERAS_HOME/datasets first (as keras.datasets does; on every worker)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on the Dask cluster at ADDRESS (tcp://HOST:PORT); needs "
                        "keras-lr[distributed]")
    parser.add_argument("--workers", metavar="N",
                        help="run on a local Dask cluster of N worker processes")
    parser.add_argument("--threads", metavar="N",
                        help="groups trained at once in this process (default: 2 on JAX, "
                        "1 on TensorFlow and torch; not with --scheduler or --workers)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def _schedules():
    from keras_lr.study.grid import SCHEDULES

    return SCHEDULES


def _int(name, text, minimum):
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--{name} must be an integer, got {text!r}") from None
    if value < minimum:
        raise UsageError(f"--{name} must be >= {minimum}, got {value}")
    return value


def make_plan(args):
    """The plan the arguments select (raises `UsageError` on bad input)."""
    from keras_lr.study import grid

    seeds = _int("seeds", args.seeds, 1)
    epochs = _int("epochs", args.epochs, 1)
    custom = any(getattr(args, flag) is not None for flag in _GRID_FLAGS)
    if args.plan == "structure" and not any(getattr(args, flag) is not None
                                            for flag in ("lrs", "schedules", "clip")):
        try:
            families = grid.parse_list(args.models or "mlp,cnn", ("mlp", "cnn"), "model")
            optimizers = grid.parse_list(args.optimizers or "sgd,adam", grid.OPTIMIZERS,
                                         "optimizer")
        except ValueError as error:
            raise UsageError(f"--plan structure: {error}") from None
        data = args.data or "digits"
        _check_data(data, families)
        from keras_lr.study.structure import structure_plan

        return structure_plan(quick=args.quick, seeds=seeds, epochs=epochs, data=data,
                              families=families, optimizers=optimizers)
    if args.plan is not None and custom:
        raise UsageError("--plan cannot be combined with the grid flags "
                         f"({', '.join('--' + f for f in _GRID_FLAGS)}); "
                         "--plan structure takes --data, --models and --optimizers")
    if args.plan == "standard":
        try:
            return grid.standard_plan(quick=args.quick, seeds=seeds, epochs=epochs)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if not custom:
        quick = args.quick or args.plan == "quick"
        return grid.default_plan(quick=quick, seeds=seeds, epochs=epochs)
    try:
        families = grid.parse_list(args.models or ",".join(grid.FAMILIES), grid.FAMILIES,
                                   "model")
        optimizers = grid.parse_optimizers(args.optimizers or "sgd,adam")
        rates = grid.parse_rates(args.lrs or ("1e-3:1:4" if args.quick else "1e-4:1:9"))
        schedules = grid.parse_list(args.schedules or "constant", grid.SCHEDULES, "schedule")
        clips = grid.parse_list(args.clip or "none", grid.CLIPS, "clip")
    except ValueError as error:
        raise UsageError(str(error)) from None
    data = args.data or "digits"
    _check_data(data, families)
    return grid.custom_plan(families, data, optimizers, rates, schedules, clips,
                            seeds=seeds or (2 if args.quick else 3),
                            epochs=epochs or (3 if args.quick else 8), quick=args.quick)


def _check_data(data, families):
    from keras_lr.data import NAMES, sources

    if data not in NAMES:
        raise UsageError(f"unknown data set {data!r}; choose from {', '.join(NAMES)}")
    try:
        sources.CHECKS.get(data, lambda: None)()
    except sources.DataNotAvailable as error:
        raise UsageError(str(error)) from None
    if data == "adding":
        bad = [f for f in families if f == "cnn"]
        if bad:
            raise UsageError("model 'cnn' cannot train on 'adding' (a sequence task); "
                             "use --models mlp,lstm,gru")


def _command(args) -> str:
    parts = ["keras-lr", "study"]
    for flag in (*_GRID_FLAGS, "plan", "seeds", "epochs", "out", "scheduler", "workers",
                 "threads"):
        value = getattr(args, flag)
        if value is not None:
            parts += [f"--{flag}", shlex.quote(str(value))]
    if args.quick:
        parts.append("--quick")
    if args.download:
        parts.append("--download")
    if args.parallel is not None:
        parts.append("--parallel" if args.parallel else "--no-parallel")
    return " ".join(parts)


def _fetch(args, client) -> None:
    """`--download`: fetch the plan's missing data sets here and on every worker."""
    if not args.download:
        return
    from keras_lr.data import DownloadFailed, download, fetch

    names = [args.data] if args.data else (
        ["fashion_mnist", "cifar10"] if args.plan == "standard" else [])
    names = [n for n in names if n in download.REMOTES]
    try:
        for name in names:
            fetch(name)
            if client is not None:
                client.run(fetch, name)
    except DownloadFailed as error:
        raise UsageError(str(error)) from None


def _connect(args):
    """``(client, cluster)`` for --scheduler / --workers, ``(None, None)`` without them."""
    workers = _int("workers", args.workers, 1)
    if args.threads is not None and (args.scheduler is not None or workers is not None):
        raise UsageError("--threads is for one process: with --scheduler or --workers each "
                         "worker trains one unit at a time")
    if args.scheduler is None and workers is None:
        return None, None
    if args.scheduler is not None and workers is not None:
        raise UsageError("--scheduler and --workers are exclusive: --workers starts a local "
                         "cluster, --scheduler joins an existing one")
    from keras_lr.study.distributed import DaskMissing, connect

    try:
        return connect(args.scheduler, workers)
    except DaskMissing as error:
        raise UsageError(str(error)) from None
    except OSError as error:  # no scheduler at that address
        raise UsageError(f"cannot reach the Dask scheduler at {args.scheduler}: "
                         f"{' '.join(str(error).split())}") from None


def run(args) -> int:
    if args.download and args.data:
        _check_known(args.data)
    # bad input fails before a cluster starts; with --download the plan waits for the data
    plan = None if args.download else make_plan(args)
    threads = "auto" if args.threads is None else _int("threads", args.threads, 1)
    out = writable_dir(args.out)
    client, cluster = _connect(args)
    try:
        _fetch(args, client)
        return _run(args, plan or make_plan(args), out, client, threads)
    finally:
        if client is not None:
            from keras_lr.study.distributed import close

            close(client, cluster)


def _check_known(data):
    from keras_lr.data import NAMES

    if data not in NAMES:
        raise UsageError(f"unknown data set {data!r}; choose from {', '.join(NAMES)}")


def _run(args, plan, out, client, threads) -> int:
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # the range tests' retracing notes are expected
    from keras_lr.study.engine import StudyInterrupted, run_study

    command = _command(args)
    try:
        from keras_lr.study.runner import Runner

        parallel = "auto" if args.parallel is None else args.parallel
        result = run_study(plan, out, progress=not args.no_progress, command=command,
                           runner=Runner(parallel=parallel), client=client,
                           threads=threads)
    except StudyInterrupted as stop:
        result = stop.result
        print(f"keras-lr study: interrupted after {result.executed} runs; partial report in "
              f"{result.report['markdown']} (rerun to resume)", file=sys.stderr)
        return 130
    counts = {}
    for claim in result.claims:
        counts[claim["verdict"]] = counts.get(claim["verdict"], 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no claims"
    print(f"keras-lr study: {result.executed} runs in {result.seconds:.0f} s "
          f"({result.skipped} resumed); claims: {summary}")
    print(f"report: {result.report['markdown']} and {result.report['html']}")
    return 0
