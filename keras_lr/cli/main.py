"""Entry point of the `keras-lr` console script.

Each subcommand lives in its own module of this package and exposes
``add_parser(subparsers)``, which registers an ``argparse`` parser whose ``func`` default
is a callable ``run(args) -> int``. Modules import TensorFlow/Keras lazily inside ``run`` so
that ``keras-lr --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from keras_lr._version import __version__
from keras_lr.cli.common import UsageError, quiet_tensorflow

__all__ = ["build_parser", "main"]

# Subcommand modules, in the order `--help` lists them.
_COMMANDS = ("study", "find", "tune", "schedule")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other usage error
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="keras-lr",
        description="Learning-rate tools for Keras 3: schedules, finder, study, tuning.",
    )
    parser.add_argument("--version", action="version", version=f"keras-lr {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"keras_lr.cli.{name}")
        except ModuleNotFoundError as error:  # a subcommand not written yet
            if error.name != f"keras_lr.cli.{name}":
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    quiet_tensorflow()
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"keras-lr: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("keras-lr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
