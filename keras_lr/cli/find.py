"""`keras-lr find`: run the learning-rate range test on a reference model or a saved model.

Usage::

    keras-lr find --model {mlp,cnn,lstm,gru,simple_rnn} --data digits [--optimizer adam|sgd]
                  [--out DIR] [--num-steps N] [--start-lr LR] [--end-lr LR] [--batch-size B]
                  [--seed S] [--verify K [--verify-epochs E]]
    keras-lr find --model path/to/model.keras --data digits ...

Prints the suggestions (``valley``, ``steep``, ``minimum``) and writes ``DIR/lr_find.png`` and
``DIR/lr_find.json`` (`LRFinderResult.to_dict`). A saved ``.keras`` model must have been saved
compiled; it trains with its own optimizer (``--optimizer`` is for the reference models) on the
data view that matches its input rank (2: flat, 3: sequence, 4: image). TensorFlow is imported
only when the command runs.

``--verify K`` then checks the valley suggestion: K rates log-spaced over a decade either side
of it train from the same initial weights for ``--verify-epochs`` epochs, all at once in one
replicated model (`keras_lr.finder.verify.verify_rates`, `keras_lr.sweep.parallel_fit`); the
command prints each rate's final validation loss, marks the best, writes
``DIR/lr_verify.png`` and adds a ``verify`` entry to ``DIR/lr_find.json``.
"""

from __future__ import annotations

import argparse
import json
import os

from keras_lr.cli.common import UsageError, int_at_least, load_data, positive_float, writable_dir

__all__ = ["add_parser", "run"]

_FAMILIES = ("mlp", "cnn", "lstm", "gru", "simple_rnn")
_OPTIMIZERS = ("adam", "sgd")
_VIEW_BY_RANK = {2: "flat", 3: "sequence", 4: "image"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``find`` on the top-level subparsers."""
    parser = subparsers.add_parser(
        "find",
        help="run the learning-rate range test and suggest a rate",
        description="Train for N steps with an exponentially growing learning rate, record the "
        "loss, print the suggested rates and write DIR/lr_find.png and DIR/lr_find.json.",
    )
    parser.add_argument(
        "--model", required=True, metavar="MODEL",
        help=f"a reference model ({', '.join(_FAMILIES)}) or a saved, compiled .keras file",
    )
    parser.add_argument("--data", default="digits", help="data set name (default digits)")
    parser.add_argument(
        "--optimizer", choices=_OPTIMIZERS, default=None,
        help="optimizer of a reference model (default adam)",
    )
    parser.add_argument("--out", default=".", help="output directory (default: current)")
    parser.add_argument(
        "--num-steps", type=int_at_least(10), default=100, help="steps / rates (default 100)"
    )
    parser.add_argument("--start-lr", type=positive_float, default=1e-7, help="default 1e-7")
    parser.add_argument("--end-lr", type=positive_float, default=10.0, help="default 10")
    parser.add_argument("--batch-size", type=int_at_least(1), default=32, help="default 32")
    parser.add_argument(
        "--seed", type=int_at_least(0), default=0, help="data split, weights and shuffle seed"
    )
    parser.add_argument(
        "--verify", type=int_at_least(2), default=None, metavar="K",
        help="then train K rates around the valley suggestion (a decade either side) at "
        "once for --verify-epochs, report which won and plot them (DIR/lr_verify.png)",
    )
    parser.add_argument(
        "--verify-epochs", type=int_at_least(1), default=2, help="epochs of --verify (2)"
    )
    parser.set_defaults(func=run)
    return parser


def _reference_model(args):
    import keras

    from keras_lr import models

    dataset = load_data(args.data, models.VIEWS[args.model], args.seed)
    model = models.build(args.model, dataset.input_shape, dataset.num_classes, seed=args.seed)
    optimizer = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[
        args.optimizer or "adam"
    ]()
    loss = "mse" if dataset.num_classes is None else "sparse_categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss)
    return model, dataset


def _saved_model(args):
    import keras

    if not args.model.endswith(".keras"):
        raise UsageError(
            f"--model must be one of {', '.join(_FAMILIES)} or a .keras file, got {args.model!r}"
        )
    if not os.path.isfile(args.model):
        raise UsageError(f"--model {args.model}: no such file")
    if args.optimizer is not None:
        raise UsageError("--optimizer applies to reference models; a saved model keeps its own")
    try:
        model = keras.models.load_model(args.model, safe_mode=True)
    except Exception as error:  # a corrupt or foreign file: one line, exit 2
        raise UsageError(f"--model {args.model}: cannot load ({error})".splitlines()[0]) from None
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise UsageError(f"--model {args.model}: the model was saved without compile()")
    rank = len(model.input_shape) if isinstance(model.input_shape, tuple) else None
    if rank not in _VIEW_BY_RANK:
        raise UsageError(
            f"--model {args.model}: input shape {model.input_shape} matches no data view"
        )
    dataset = load_data(args.data, _VIEW_BY_RANK[rank], args.seed)
    if tuple(model.input_shape[1:]) != tuple(dataset.input_shape):
        raise UsageError(
            f"--model {args.model}: input shape {model.input_shape[1:]} does not match "
            f"--data {args.data} ({dataset.input_shape})"
        )
    return model, dataset


def run(args) -> int:
    if not args.end_lr > args.start_lr:
        raise UsageError(f"--end-lr ({args.end_lr:g}) must be > --start-lr ({args.start_lr:g})")

    import keras

    from keras_lr.finder import find_lr

    keras.utils.set_random_seed(args.seed)
    if args.model in _FAMILIES:
        model, dataset = _reference_model(args)
        label = f"{args.model} ({args.optimizer or 'adam'})"
    else:
        model, dataset = _saved_model(args)
        label = os.path.basename(args.model)
    (x, y), validation = dataset
    if args.verify:  # refuse a model --verify cannot replicate before the range test
        _check_verifiable(model)
    writable_dir(args.out)
    result = find_lr(
        model, x, y, batch_size=args.batch_size, start_lr=args.start_lr, end_lr=args.end_lr,
        num_steps=args.num_steps, seed=args.seed,
    )

    png = os.path.join(args.out, "lr_find.png")
    path_json = os.path.join(args.out, "lr_find.json")
    result.plot(path=png, title=f"LR range test: {label} on {args.data}")
    record = result.to_dict()
    record.update(model=args.model, data=args.data, batch_size=args.batch_size, seed=args.seed)
    with open(path_json, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)

    print(f"LR range test: {label} on {args.data}, {len(result)}/{args.num_steps} steps, "
          f"{result.stop_reason}")
    for name, value in result.suggestions().items():
        shown = "n/a (too few steps)" if value is None else f"{value:.3g}"
        print(f"  {name:<8} {shown}")
    if args.verify:
        record["verify"] = _verify(args, model, x, y, validation, result, label)
        with open(path_json, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1)
    print(f"wrote {png} and {path_json}")
    return 0


def _check_verifiable(model) -> None:
    from keras_lr.finder.verify import check_verifiable

    try:
        check_verifiable(model)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--verify: {error}".splitlines()[0]) from None


def _verify(args, model, x, y, validation, result, label) -> dict | None:
    """``--verify K``: train K rates around the valley suggestion at once; print the winner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_lr.finder.verify import verify_rates

    try:
        centre = float(result.suggestion("valley"))
    except ValueError:
        print("verify: skipped (no valley suggestion: the curve is too short)")
        return None
    try:
        sweep = verify_rates(model, x, y, centre, count=args.verify, epochs=args.verify_epochs,
                             batch_size=args.batch_size, validation_data=tuple(validation),
                             seed=args.seed)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--verify: {error}".splitlines()[0]) from None
    metric = "val_loss"
    final = sweep.final(metric)
    try:
        best = sweep.best(metric)
    except ValueError:
        best = None
    print(f"verify: {args.verify} rates around valley {centre:.3g}, {args.verify_epochs} "
          f"epochs, trained at once (keras_lr.sweep)")
    for i, rate in enumerate(sweep.learning_rates):
        state = "diverged" if sweep.diverged[i] else f"{metric} {final[i]:.4g}"
        mark = "  <- best" if best is not None and best["index"] == i else ""
        print(f"  {rate:<10.3g} {state}{mark}")
    ax = sweep.plot(metric)
    ax.axvline(centre, color="grey", linestyle="--", label=f"valley {centre:.3g}")
    ax.legend()
    ax.set_title(f"{label}: {args.verify_epochs} epochs per rate")
    path = os.path.join(args.out, "lr_verify.png")
    ax.figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(ax.figure)
    if best is not None:
        print(f"verify: best rate {best['learning_rate']:.3g} ({metric} {best['value']:.4g}); "
              f"wrote {path}")
    else:
        print(f"verify: every rate diverged; wrote {path}")
    return {"around": centre, "epochs": args.verify_epochs, "metric": metric,
            "best": best, **sweep.to_dict()}
