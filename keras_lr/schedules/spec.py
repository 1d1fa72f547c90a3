"""A small, safe text language for learning-rate schedules.

`parse_schedule` turns a one-line string into a schedule object, so that a schedule can be
given on the command line, in a config file or in a hyperparameter sweep. Three forms are
accepted:

1. A call expression, with snake_case (or CamelCase) schedule names, positional and keyword
   arguments, numbers, strings, lists and nested calls::

       warmup(cosine_decay(1e-3, 1000), 100)
       sequence([constant(0.1), cosine_decay(0.1, 100)], [50])
       per_epoch(step_decay(0.1, step_size=30, gamma=0.1), steps_per_epoch=100)
       keras.CosineDecay(1e-3, 1000)          # Keras built-ins, prefixed with `keras.`

2. The short form ``name:key=value,key=value`` for a single schedule (bare words are strings,
   hyphenated ones too, and ``true`` / ``false`` are booleans)::

       cosine_decay:initial_learning_rate=1e-3,decay_steps=1000
       cyclical_lr:base_learning_rate=1e-4,max_learning_rate=1e-2,step_size_up=50,mode=triangular2
       warmup_stable_decay:peak_learning_rate=3e-4,warmup_steps=100,stable_steps=800,decay_steps=100,decay_shape=1-sqrt

3. JSON, as written by ``keras.saving.serialize_keras_object(schedule)`` (a string starting with
   ``{``), or ``@path/to/file.json`` to read it (or any other form) from a file.

The call form is parsed with Python's `ast` module and only literal, list, call and keyword
nodes are walked: nothing is ever evaluated, so a spec cannot run code. Names map to the
classes listed in ``keras_lr.schedules.__all__`` (new schedules are picked up automatically)
and, with a ``keras.`` prefix, to ``keras.optimizers.schedules``.

Every failure raises `ValueError` with one line naming the problem and where it is.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import keras

__all__ = ["format_schedule", "known_schedule_names", "parse_schedule"]

_LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule
_SHORT_FORM = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*:(.*)$", re.DOTALL)


def _snake_case(name: str) -> str:
    """``CosineDecay`` -> ``cosine_decay``, ``CyclicalLR`` -> ``cyclical_lr``."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    name = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return name.lower()


def _schedule_classes(module: Any, names: list[str]) -> dict[str, type]:
    table = {}
    for name in names:
        obj = getattr(module, name, None)
        if isinstance(obj, type) and issubclass(obj, _LearningRateSchedule):
            table[name] = obj
            table.setdefault(_snake_case(name), obj)
    return table


def _registry() -> dict[str, type]:
    """Spec names -> schedule classes, read afresh from the packages' public names."""
    import keras_lr.schedules as ours

    table = _schedule_classes(ours, list(getattr(ours, "__all__", [])))
    builtins = keras.optimizers.schedules
    public = [name for name in dir(builtins) if not name.startswith("_")]
    for name, cls in _schedule_classes(builtins, public).items():
        if cls is not _LearningRateSchedule:
            table[f"keras.{name}"] = cls
    return table


def known_schedule_names() -> list[str]:
    """The snake_case names a spec may use (CamelCase class names are accepted too).

    Example:
        >>> "cosine_decay" in known_schedule_names()  # doctest: +SKIP
        True
    """
    table = _registry()
    return sorted(name for name in table if name == name.lower() or name.startswith("keras."))


def _names_hint() -> str:
    ours = [name for name in known_schedule_names() if not name.startswith("keras.")]
    return f"known names: {', '.join(ours)} (or keras.<ClassName> for Keras built-ins)"


class _Walker:
    """Turns the AST of one spec into objects, refusing every node it does not know."""

    def __init__(
        self, source: str, registry: dict[str, type], *, bare_words: bool = False, shown: str = ""
    ):
        self.source = shown or source  # what the user typed, for the snippets in messages
        self.registry = registry
        self.bare_words = bare_words  # short form: `mode=triangular2` means the string

    def where(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or ""
        if len(text) > 60:
            text = text[:57] + "..."
        return f"at column {node.col_offset + 1} ({text!r})"

    def value(self, node: ast.AST, *, top: bool = False) -> Any:
        if isinstance(node, ast.Call):
            return self.call(node)
        if top:
            raise ValueError(
                f"Expected a schedule call such as cosine_decay(1e-3, 1000) {self.where(node)}"
            )
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
            return node.value
        if isinstance(node, ast.Constant) and node.value is None:
            return None
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float))
            and not isinstance(node.operand.value, bool)
        ):
            number = node.operand.value
            return -number if isinstance(node.op, ast.USub) else number
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.value(item) for item in node.elts]
        if isinstance(node, ast.Name) and self.bare_words:
            return {"true": True, "false": False}.get(node.id.lower(), node.id)
        if self.bare_words and _is_hyphenated_word(node):
            return ast.get_source_segment(self.source, node).replace(" ", "")
        if isinstance(node, ast.Name):
            raise ValueError(
                f"Unknown value {self.where(node)}: write strings in quotes and "
                f"schedules as calls, e.g. {node.id}(...)"
            )
        raise ValueError(
            f"Unsupported expression {self.where(node)}: only numbers, strings, lists and "
            "schedule calls are allowed"
        )

    def name_of(self, func: ast.AST) -> str:
        if isinstance(func, ast.Name):
            return func.id
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "keras"
        ):
            return f"keras.{func.attr}"
        raise ValueError(f"Expected a schedule name {self.where(func)}")

    def lookup(self, func: ast.AST) -> tuple[str, type]:
        name = self.name_of(func)
        cls = self.registry.get(name)
        if cls is None and name.startswith("keras."):
            # keras.cosine_decay -> keras.CosineDecay
            by_snake = {_snake_case(k[6:]): v for k, v in self.registry.items() if k[:6] == "keras."}
            cls = by_snake.get(name[6:])
        if cls is None:
            raise ValueError(f"Unknown schedule {name!r} {self.where(func)}; {_names_hint()}")
        return name, cls

    def call(self, node: ast.Call) -> Any:
        name, cls = self.lookup(node.func)
        args = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise ValueError(f"Unsupported expression {self.where(arg)}")
            args.append(self.value(arg))
        kwargs = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise ValueError(f"Unsupported expression {self.where(keyword)}")
            kwargs[keyword.arg] = self.value(keyword.value)
        try:
            return cls(*args, **kwargs)
        except (TypeError, ValueError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise ValueError(f"Invalid arguments for {name} {self.where(node)}: {message}") from None


def _is_hyphenated_word(node: ast.AST) -> bool:
    """``1-sqrt`` or ``a-b-c`` in the short form: names and integers joined by minus signs."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
        return _is_hyphenated_word(node.left) and _is_hyphenated_word(node.right)
    return isinstance(node, ast.Name) or (
        isinstance(node, ast.Constant) and type(node.value) is int)


def _parse_call(source: str, *, bare_words: bool = False, shown: str | None = None) -> Any:
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as error:
        shown = shown if shown is not None else source.strip()
        column = f" at column {error.offset}" if error.offset else ""
        raise ValueError(f"Invalid schedule spec{column}: {shown!r} ({error.msg})") from None
    walker = _Walker(source.strip(), _registry(), bare_words=bare_words, shown=shown or "")
    return walker.value(tree.body, top=True)


def _parse_json(text: str) -> Any:
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"Invalid JSON schedule at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "Invalid JSON schedule: expected an object with 'class_name' and 'config', as "
            "written by keras.saving.serialize_keras_object(schedule)"
        )
    import keras_lr.schedules  # noqa: F401  (registers our classes with Keras)

    try:
        schedule = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as error:  # Keras raises TypeError/ValueError/KeyError here
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ValueError(
            f"Cannot build schedule {config.get('class_name')!r} from JSON: {message}"
        ) from None
    return schedule


def parse_schedule(spec: str) -> keras.optimizers.schedules.LearningRateSchedule:
    """Build a learning-rate schedule from a one-line text spec.

    Accepts a call expression (``warmup(cosine_decay(1e-3, 1000), 100)``), the short form
    ``name:key=value,...`` (``cosine_decay:initial_learning_rate=1e-3,decay_steps=1000``), the
    JSON written by ``keras.saving.serialize_keras_object`` or ``@file`` holding any of these.
    Nothing in the spec is evaluated: only numbers, strings, lists and schedule calls are read.

    Args:
        spec: the text to parse.

    Returns:
        A ``keras.optimizers.schedules.LearningRateSchedule``.

    Raises:
        ValueError: the spec cannot be read (unknown name, syntax error, bad argument, bad
            JSON, unreadable file); the one-line message says what and where.

    Example:
        >>> from keras_lr.schedules import parse_schedule
        >>> schedule = parse_schedule("warmup(cosine_decay(1e-3, 1000), 100)")
        >>> model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")  # doctest: +SKIP
    """
    if not isinstance(spec, str):
        raise TypeError(f"Argument `spec` must be a string. Received: spec={spec!r}")
    return _parse(spec, allow_file=True)


def _parse(spec: str, *, allow_file: bool) -> Any:
    text = spec.strip()
    if not text:
        raise ValueError("Empty schedule spec: expected e.g. cosine_decay(1e-3, 1000)")
    if text.startswith("@"):
        if not allow_file:
            raise ValueError(f"A schedule file cannot point to another file: {text!r}")
        path = text[1:].strip()
        try:
            with open(path, encoding="utf-8") as handle:
                content = handle.read()
        except OSError as error:
            raise ValueError(
                f"Cannot read schedule file {path!r}: {error.strerror or error}"
            ) from None
        try:
            return _parse(content, allow_file=False)
        except ValueError as error:
            raise ValueError(f"In schedule file {path!r}: {error}") from None
    if text.startswith("{"):
        schedule = _parse_json(text)
    else:
        match = _SHORT_FORM.match(text)
        if match:
            name, rest = match.group(1), match.group(2)
            # `name:` has the same length as `name(`: columns in messages stay true.
            schedule = _parse_call(f"{name}({rest})", bare_words=True, shown=text)
        else:
            schedule = _parse_call(text)
    if not isinstance(schedule, _LearningRateSchedule):
        raise ValueError(
            f"The spec {text[:60]!r} does not describe a learning-rate schedule "
            f"(got {type(schedule).__name__})"
        )
    return schedule


def _format_value(value: Any) -> str:
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        return _format_config(value)
    if isinstance(value, _LearningRateSchedule):
        return format_schedule(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(item) for item in value) + "]"
    if isinstance(value, (bool, int, float, str)) or value is None:
        return repr(value)
    raise ValueError(f"Cannot write {type(value).__name__} value {value!r} in a schedule spec")


def _format_config(serialized: dict) -> str:
    schedule = keras.saving.deserialize_keras_object(serialized, safe_mode=True)
    return format_schedule(schedule)


def format_schedule(schedule: keras.optimizers.schedules.LearningRateSchedule) -> str:
    """Write a schedule back as a call-expression spec, the inverse of `parse_schedule`.

    Every argument is written as a keyword, taken from ``schedule.get_config()``, so that
    ``parse_schedule(format_schedule(s))`` rebuilds an equal schedule.

    Args:
        schedule: a keras-lr or Keras built-in learning-rate schedule.

    Returns:
        A one-line spec string.

    Example:
        >>> format_schedule(parse_schedule("cosine_decay(1e-3, 1000)"))  # doctest: +SKIP
        'cosine_decay(initial_learning_rate=0.001, decay_steps=1000, min_learning_rate=0.0)'
    """
    if not isinstance(schedule, _LearningRateSchedule):
        raise TypeError(
            "Argument `schedule` must be a LearningRateSchedule. "
            f"Received: schedule={schedule!r}"
        )
    cls = type(schedule)
    table = _registry()
    name = next(
        (
            candidate
            for candidate in (_snake_case(cls.__name__), cls.__name__, f"keras.{cls.__name__}")
            if table.get(candidate) is cls
        ),
        None,
    )
    if name is None:
        raise ValueError(
            f"{cls.__name__} is not listed in keras_lr.schedules or keras.optimizers.schedules, "
            "so it has no spec name"
        )
    arguments = ", ".join(
        f"{key}={_format_value(value)}" for key, value in schedule.get_config().items()
    )
    return f"{name}({arguments})"
