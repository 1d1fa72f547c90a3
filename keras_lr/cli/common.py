"""Helpers shared by the `keras-lr` subcommands."""

from __future__ import annotations

import argparse
import math
import os
import tempfile

__all__ = [
    "UsageError",
    "int_at_least",
    "load_data",
    "positive_float",
    "quiet_tensorflow",
    "writable_dir",
]


class UsageError(Exception):
    """Bad command-line input: `main` prints ``keras-lr: error: <message>`` and exits 2."""


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ start-up chatter before it is first imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def positive_float(text: str) -> float:
    """``argparse`` type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def int_at_least(minimum: int):
    """``argparse`` type: an integer >= `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


def load_data(name: str, view: str, seed: int, limit: int | None = None):
    """`keras_lr.data.load`, with a missing or unknown data set as a `UsageError`."""
    from keras_lr import data

    try:
        return data.load(name, view=view, seed=seed, limit=limit)
    except data.DataNotAvailable as error:
        raise UsageError(str(error).splitlines()[0]) from None
    except ValueError as error:
        raise UsageError(f"--data {name}: {error}") from None


def writable_dir(path: str, flag: str = "--out") -> str:
    """Create the directory `path` if needed and check that a file can be written there.

    Commands call it before any training, so that an unusable output directory (a regular
    file on the path, no permission) is a `UsageError` at once rather than a traceback after
    the work is done. `flag` names the option in the message.
    """
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise UsageError(f"{flag} {path!r} is not a writable directory "
                         f"({error.strerror or error})") from None
    return path
