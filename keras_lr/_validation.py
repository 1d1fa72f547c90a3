"""Shared argument checks that raise errors in the Keras wording.

Every public constructor validates its arguments with these helpers so that a bad value
fails at construction time with a message such as::

    Argument `warmup_steps` must be >= 0. Received: warmup_steps=-1

The helpers accept Python and NumPy scalars only (constructor arguments are never tensors);
they return the value converted to a plain Python ``float`` or ``int`` so that
``get_config`` stays JSON-serializable.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "check_choice",
    "check_float",
    "check_increasing",
    "check_int",
    "check_less",
    "check_list",
    "check_open_interval",
    "check_same_length",
    "fail",
]


def fail(name: str, requirement: str, value: Any, error: type[Exception] = ValueError):
    """Raise `error` with the Keras message for argument `name`."""
    raise error(f"Argument `{name}` {requirement}. Received: {name}={value!r}")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    strict: bool = False,
    maximum: float | None = None,
) -> float:
    """Check a finite real number, optionally bounded, and return it as a ``float``.

    Args:
        name: the argument's name, as the user typed it.
        value: the value received.
        minimum: lower bound, inclusive unless `strict`.
        strict: when True the lower bound is exclusive (``> minimum``).
        maximum: inclusive upper bound.

    Raises:
        TypeError: `value` is not a real number (booleans and strings are refused).
        ValueError: `value` is NaN, infinite or out of bounds.
    """
    if not _is_real(value):
        fail(name, "must be a real number", value, TypeError)
    value = float(value)
    if not math.isfinite(value):
        fail(name, "must be finite", value)
    if minimum is not None:
        if strict and not value > minimum:
            fail(name, f"must be > {minimum:g}", value)
        if not strict and not value >= minimum:
            fail(name, f"must be >= {minimum:g}", value)
    if maximum is not None and not value <= maximum:
        fail(name, f"must be <= {maximum:g}", value)
    return value


def check_open_interval(name: str, value: Any, low: float, high: float) -> float:
    """Check ``low < value < high`` and return ``float(value)``."""
    value = check_float(name, value)
    if not low < value < high:
        fail(name, f"must be in the open interval ({low:g}, {high:g})", value)
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Check an integer (``int``, NumPy integer, or an integral float) and return an ``int``.

    Raises:
        TypeError: `value` is not integral.
        ValueError: `value` is below `minimum`.
    """
    if isinstance(value, bool) or not _is_real(value):
        fail(name, "must be an integer", value, TypeError)
    if not isinstance(value, numbers.Integral):
        if not math.isfinite(value) or value != int(value):
            fail(name, "must be an integer", value, TypeError)
    value = int(value)
    if minimum is not None and value < minimum:
        fail(name, f"must be >= {minimum}", value)
    return value


def check_less(name_a: str, a: float, name_b: str, b: float) -> None:
    """Check ``a < b`` with a message that names both arguments, e.g.
    ``Argument `min_value` must be < max_value. Received: min_value=1.0, max_value=0.1``."""
    if not a < b:
        raise ValueError(
            f"Argument `{name_a}` must be < {name_b}. Received: {name_a}={a!r}, {name_b}={b!r}"
        )


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Check that `value` is one of `choices` (strings) and return it."""
    choices = tuple(choices)
    if value not in choices:
        fail(name, f"must be one of {', '.join(repr(c) for c in choices)}", value)
    return value


def check_list(name: str, value: Any) -> list:
    """Check a list-like argument (list, tuple, NumPy array, ...) and return it as a list.

    Strings, bytes, mappings and scalars are refused with a `TypeError`.
    """
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        fail(name, "must be a list", value, TypeError)
    return list(value)


def check_increasing(name: str, values: Sequence[float], *, strict: bool = True) -> None:
    """Check that a sequence is (strictly) increasing."""
    for a, b in zip(values, values[1:]):
        if (strict and not b > a) or (not strict and not b >= a):
            word = "strictly increasing" if strict else "non-decreasing"
            fail(name, f"must be {word}", list(values))


def check_same_length(name_a: str, a: Sequence, name_b: str, b: Sequence, offset: int = 0) -> None:
    """Check ``len(a) == len(b) + offset`` with a message that names both arguments."""
    if len(a) != len(b) + offset:
        extra = f" + {offset}" if offset else ""
        raise ValueError(
            f"Arguments `{name_a}` and `{name_b}` must satisfy len({name_a}) == "
            f"len({name_b}){extra}. Received: len({name_a})={len(a)}, len({name_b})={len(b)}"
        )
