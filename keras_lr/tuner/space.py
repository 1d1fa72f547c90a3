"""Learning-rate search spaces for KerasTuner: `hp_learning_rate`, `hp_schedule`, `hp_optimizer`.

Each function declares named hyperparameters on a `keras_tuner.HyperParameters` object and
returns a ready keras-lr object (a float, a schedule, an optimizer), so a model-building
function needs one line per choice. The parameters of each schedule family live in a
conditional scope of the ``schedule`` hyperparameter, so the tuner samples (and its summary
shows) only the parameters of the family a trial uses:

| family | hyperparameters (besides ``learning_rate``) |
| --- | --- |
| ``constant`` | none |
| ``step`` | ``step_drops`` (1..3 drops, evenly spaced), ``step_gamma`` (0.05..0.5, log) |
| ``exponential`` | ``exponential_final_fraction`` (rate at the end / peak, 1e-3..0.3, log) |
| ``cosine`` | ``cosine_min_fraction`` (floor / peak: 0, 0.01 or 0.1) |
| ``warmup_cosine`` | ``warmup_fraction`` (share of the steps spent warming up, 0.02..0.3) |
| ``onecycle`` | ``onecycle_pct_start`` (0.1..0.5, at least ``1.5 / total_steps``), ``onecycle_div_factor`` (10, 25 or 100) |
| ``cyclical`` | ``cyclical_cycles`` (1..4), ``cyclical_base_fraction`` (0.01..0.3, log), ``cyclical_mode`` |

The schedules themselves are built by `keras_lr.study.runner.make_schedule` and the
optimizers by `keras_lr.study.runner.make_optimizer`, the builders the study uses.

Example:

```python
import keras_tuner as kt
from keras_lr.tuner import hp_optimizer, hp_schedule

def build(hp):
    model = make_model()
    schedule = hp_schedule(hp, total_steps=10 * steps_per_epoch)   # samples learning_rate too
    model.compile(optimizer=hp_optimizer(hp, schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model

tuner = kt.RandomSearch(build, objective="val_accuracy", max_trials=20)
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras_lr._validation import check_float, check_int, check_less, fail

__all__ = ["CLIPS", "OPTIMIZERS", "SCHEDULES", "hp_learning_rate", "hp_optimizer", "hp_schedule"]

SCHEDULES = ("constant", "step", "exponential", "cosine", "warmup_cosine", "onecycle", "cyclical")
"""Schedule families `hp_schedule` can search."""
OPTIMIZERS = ("adam", "sgd")
"""Optimizers `hp_optimizer` can search (SGD with momentum 0.9, as in the study)."""
CLIPS = ("none", "global_norm", "agc")
"""Gradient clipping rules `hp_optimizer` can search: none, ``GlobalNorm(1.0)``,
``AdaptiveClip(0.05)``."""


def check_names(name: str, values: Any, known: Sequence[str]) -> tuple[str, ...]:
    """Check a non-empty sequence of distinct names, each one of `known`; return a tuple."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        fail(name, "must be a sequence of names such as ('adam', 'sgd')", values, TypeError)
    values = tuple(values)
    if not values:
        fail(name, "must not be empty", values)
    unknown = [v for v in values if v not in known]
    if unknown:
        fail(name, f"must only hold names from {', '.join(map(repr, known))} "
                   f"(unknown: {', '.join(map(repr, unknown))})", values)
    if len(set(values)) != len(values):
        fail(name, "must not repeat a name", values)
    return values


def _choice(hp, name: str, values: tuple[str, ...]) -> str:
    """``hp.Choice`` over `values`; a single value is a ``Fixed`` one (not a search dimension)."""
    if len(values) == 1:
        return hp.Fixed(name, values[0])
    return hp.Choice(name, list(values))


def hp_learning_rate(hp, name: str = "learning_rate", min_value: float = 1e-5,
                     max_value: float = 1.0) -> float:
    """A peak learning rate, sampled log-uniformly in ``[min_value, max_value]``.

    Args:
        hp: a `keras_tuner.HyperParameters`.
        name: the hyperparameter's name.
        min_value: lowest rate, > 0.
        max_value: highest rate, > `min_value`. `finder_range` computes both from a range test.

    Returns:
        The trial's rate (a float).

    Example:

    ```python
    lr = hp_learning_rate(hp, min_value=1e-4, max_value=1e-1)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    ```
    """
    if not isinstance(name, str) or not name:
        fail("name", "must be a non-empty string", name, TypeError)
    min_value = check_float("min_value", min_value, minimum=0.0, strict=True)
    max_value = check_float("max_value", max_value, minimum=0.0, strict=True)
    check_less("min_value", min_value, "max_value", max_value)
    return hp.Float(name, min_value=min_value, max_value=max_value, sampling="log")


def _family_options(hp, family: str, total_steps: int) -> dict:
    """Declare `family`'s hyperparameters (in its conditional scope) and return the active
    ones as `make_schedule` keyword options (empty for an inactive family)."""
    if family == "step":
        drops, gamma = hp.Int("step_drops", 1, 3), hp.Float("step_gamma", 0.05, 0.5,
                                                             sampling="log")
        return {} if drops is None else {"drops": drops, "gamma": gamma}
    if family == "exponential":
        fraction = hp.Float("exponential_final_fraction", 1e-3, 0.3, sampling="log")
        return {} if fraction is None else {"final_fraction": fraction}
    if family == "cosine":
        fraction = hp.Choice("cosine_min_fraction", [0.0, 0.01, 0.1])
        return {} if fraction is None else {"min_fraction": fraction}
    if family == "warmup_cosine":
        fraction = hp.Float("warmup_fraction", 0.02, 0.3)
        if fraction is None:
            return {}
        return {"warmup_steps": min(max(1, round(fraction * total_steps)), total_steps // 2)}
    if family == "onecycle":
        pct, div = hp.Float("onecycle_pct_start", 0.1, 0.5), hp.Choice("onecycle_div_factor",
                                                                        [10.0, 25.0, 100.0])
        if pct is None:
            return {}
        # OneCycle (as PyTorch's OneCycleLR) needs pct_start * total_steps > 1: on a budget
        # too short for the sampled value, warm up over 1.5 steps' worth instead of failing.
        return {"pct_start": max(pct, 1.5 / total_steps), "div_factor": div}
    if family == "cyclical":
        cycles = hp.Int("cyclical_cycles", 1, 4)
        base = hp.Float("cyclical_base_fraction", 0.01, 0.3, sampling="log")
        mode = hp.Choice("cyclical_mode", ["triangular", "triangular2"])
        return {} if cycles is None else {"cycles": cycles, "base_fraction": base, "mode": mode}
    return {}


def hp_schedule(hp, total_steps: int, choices: Sequence[str] = SCHEDULES,
                learning_rate: float | None = None):
    """Choose a schedule family and its parameters; return the keras-lr schedule.

    The family is the hyperparameter ``schedule``; each family's parameters (see the module
    table) are declared in the conditional scope ``schedule == family``, so inactive families
    add nothing to a trial. The schedule peaks at `learning_rate` (sampled by
    `hp_learning_rate` with its defaults when None) and spans `total_steps` optimizer steps
    (``epochs * steps_per_epoch``); with warmup it warms up over ``warmup_fraction`` of them.

    Args:
        hp: a `keras_tuner.HyperParameters`.
        total_steps: optimizer steps of a full training run, >= 2.
        choices: families to search, a non-empty subset of `SCHEDULES`; one family is a
            ``Fixed`` hyperparameter.
        learning_rate: the peak rate (e.g. from `hp_learning_rate` with your own range), or
            None to sample ``learning_rate`` in ``[1e-5, 1]``.

    Returns:
        A keras-lr `LearningRateSchedule` (serializable, registered under ``keras_lr``).

    Raises:
        ValueError: empty or unknown `choices`, `total_steps` < 2, `learning_rate` <= 0.

    Example:

    ```python
    schedule = hp_schedule(hp, total_steps=epochs * steps_per_epoch,
                           choices=("cosine", "warmup_cosine", "onecycle"),
                           learning_rate=hp_learning_rate(hp, min_value=1e-4, max_value=1e-1))
    ```
    """
    from keras_lr.study.runner import make_schedule

    total_steps = check_int("total_steps", total_steps, minimum=2)
    choices = check_names("choices", choices, SCHEDULES)
    if learning_rate is None:
        learning_rate = hp_learning_rate(hp)
    learning_rate = check_float("learning_rate", learning_rate, minimum=0.0, strict=True)
    family = _choice(hp, "schedule", choices)
    options = {}
    for name in choices:
        if name == "constant":
            continue
        with hp.conditional_scope("schedule", [name]):
            found = _family_options(hp, name, total_steps)
        if name == family:
            options = found
    # `steps_per_epoch` only sets make_schedule's default warmup, which is given explicitly.
    return make_schedule(family, total_steps, steps_per_epoch=total_steps, peak=learning_rate,
                         **options)


def hp_optimizer(hp, schedule, choices: Sequence[str] = OPTIMIZERS,
                 clip: Sequence[str] = CLIPS):
    """Choose an optimizer (``optimizer``) and a gradient clipping rule (``clip``).

    Builds it with `keras_lr.study.runner.make_optimizer`: Adam or SGD (momentum 0.9) holding
    `schedule`, wrapped in a `keras_lr.guards.GradientGuard` with the clip rule
    (``global_norm``: ``GlobalNorm(1.0)``, ``agc``: ``AdaptiveClip(0.05)``; non-finite steps
    are not skipped, so divergence stays visible to `DivergencePruning`) or, without
    clipping, in an `LRWrapper` (its ``lr_scale`` lets keras-lr callbacks lower the rate).

    Args:
        hp: a `keras_tuner.HyperParameters`.
        schedule: a float or a schedule (e.g. from `hp_schedule`).
        choices: optimizers to search, a non-empty subset of `OPTIMIZERS`.
        clip: clipping rules to search, a non-empty subset of `CLIPS`.

    Returns:
        A keras-lr optimizer wrapper, ready for ``model.compile``.

    Example:

    ```python
    optimizer = hp_optimizer(hp, hp_schedule(hp, total_steps), clip=("none", "agc"))
    ```
    """
    from keras_lr.study.runner import make_optimizer

    choices = check_names("choices", choices, OPTIMIZERS)
    clip = check_names("clip", clip, CLIPS)
    return make_optimizer(_choice(hp, "optimizer", choices), schedule,
                          clip=_choice(hp, "clip", clip))
