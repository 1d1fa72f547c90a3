"""Helpers shared by the `keras-lr` subcommands."""

from __future__ import annotations

import os

__all__ = ["UsageError", "quiet_tensorflow"]


class UsageError(Exception):
    """Bad command-line input: `main` prints ``keras-lr: error: <message>`` and exits 2."""


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ start-up chatter before it is first imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
