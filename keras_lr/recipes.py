"""Measured learning-rate recipes per model family, ready for ``model.compile``.

`recommend` returns the optimizer, schedule, layer-wise multipliers and gradient guard that the
``keras-lr study`` default run measured best for a model family. The numbers are not folklore:
they are the table `MEASURED` below, copied from the report of this run:

    command: keras-lr study --out study_default   (the default plan: 3 seeds, 8 epochs)
    date:    2026-11-25, keras 3.15.1 / TensorFlow 2.21 CPU, 2 shared cores
    data:    digits (8x8, 1,438 train / 359 validation), adding (length 20) for clipping

Caveat: they were measured on small models and small data sets with batch size 32; they are
a starting point to confirm with `keras_lr.find_lr` or a short sweep on your own problem.

Example:

```python
from keras_lr import models, recipes

model = models.build("cnn", (8, 8, 1), 10)
recipe = recipes.recommend(model, optimizer="adam", steps_per_epoch=45, epochs=8)
model.compile(optimizer=recipe.optimizer, loss="sparse_categorical_crossentropy")
print(recipe.summary())
```
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from keras_lr._validation import check_choice, check_int, fail
from keras_lr.models import FAMILIES

__all__ = ["MEASURED", "Recipe", "derive_table", "family_of", "recommend"]

# Measured by `keras-lr study --out study_default` (the default plan: 3 seeds, 8 epochs,
# 717 runs), 2026-11-25, and derived from its runs.jsonl with `derive_table` (docs/recipes.md).
# rate: best constant-schedule rate (mean final validation accuracy over seeds);
# schedule/peak: Adam's best schedule in the schedule sub-study and its peak rate (for SGD only
# the constant schedule was measured); clip: the clipping whose claim the run supported for
# that family (None otherwise); multipliers: set only when the conv-vs-dense claim is supported.
MEASURED: dict[str, dict[str, Any]] = {
    "mlp": {
        "sgd": {"rate": 0.1, "schedule": "constant", "peak": 0.1},
        "adam": {"rate": 0.00316228, "schedule": "cosine", "peak": 0.01},
        "clip": None,
        "multipliers": None,
    },
    "cnn": {
        "sgd": {"rate": 0.0316228, "schedule": "constant", "peak": 0.0316228},
        "adam": {"rate": 0.01, "schedule": "warmup", "peak": 0.01},
        "clip": None,
        "multipliers": None,  # conv-vs-dense claim inconclusive: no multipliers
    },
    "lstm": {
        "sgd": {"rate": 0.316228, "schedule": "constant", "peak": 0.316228},
        "adam": {"rate": 0.0316228, "schedule": "onecycle", "peak": 0.0316228},
        "clip": "global_norm",  # clipping claim supported for the LSTM
        "multipliers": None,  # gate claim inconclusive
    },
    "gru": {
        "sgd": {"rate": 0.1, "schedule": "constant", "peak": 0.1},
        "adam": {"rate": 0.01, "schedule": "warmup_cosine", "peak": 0.0316228},
        "clip": None,  # clipping claim inconclusive for the GRU
        "multipliers": None,
    },
}
"""``{family: {optimizer: {rate, schedule, peak}, clip, multipliers}}``, from the study run."""


@dataclasses.dataclass
class Recipe:
    """A recommendation: compile with ``optimizer`` (it already holds ``schedule``).

    Attributes:
        family: the model family the numbers come from.
        optimizer: a Keras optimizer (wrapped in `GradientGuard` / `LayerwiseLR` when the
            recipe clips or uses multipliers), ready for ``model.compile``.
        schedule: the learning-rate schedule inside the optimizer (peak = `learning_rate`).
        learning_rate: the peak rate.
        multipliers: `LayerwiseLR` rules (empty when none).
        clip: the clipping rule of the `GradientGuard`, or None.
        source: where the numbers come from.
    """

    family: str
    optimizer: keras.optimizers.Optimizer
    schedule: Any
    learning_rate: float
    multipliers: list
    clip: Any
    source: str

    def summary(self) -> str:
        clip = type(self.clip).__name__ if self.clip is not None else "none"
        return (f"{self.family}: {type(keras_base(self.optimizer)).__name__}, "
                f"{type(self.schedule).__name__} peak {self.learning_rate:g}, clip {clip}, "
                f"{len(self.multipliers)} multiplier rules ({self.source})")


def derive_table(records: list[dict]) -> dict:
    """Derive a `MEASURED`-style table from study records (``runs.jsonl`` / ``results.json``).

    Per family on digits: ``rate`` = best constant-schedule rate (mean final score over seeds,
    ties to the lower rate); for Adam, ``schedule``/``peak`` = the schedule and peak rate with
    the best mean final score in the schedule sub-study (ties: lower mean final loss); for SGD
    only the constant schedule was measured. ``clip`` = the first of ``global_norm``, ``agc``
    whose clipping claim is *supported* for the family; ``multipliers`` = conv x10 when the
    conv-vs-dense claim is supported.
    """
    import numpy as np

    from keras_lr.study import claims, figures, metrics

    claim_rows = claims.evaluate_claims(records)
    table = {}
    for family in ("mlp", "cnn", "lstm", "gru"):
        entry = {}
        for optimizer in ("sgd", "adam"):
            rate = metrics.best_rate(claims._runs(records, family=family, data="digits",
                                                  optimizer=optimizer))
            if rate is None:
                continue
            entry[optimizer] = {"rate": rate, "schedule": "constant", "peak": rate}
        if "adam" in entry:
            scored = []
            for schedule, (rate, runs) in figures.best_per_schedule(records, family).items():
                score = float(np.mean([r["final_score"] for r in runs]))
                loss = float(np.nanmean([r["final_loss"] for r in runs]))
                scored.append((score, -loss, schedule, rate))
            if scored:
                _, _, schedule, rate = max(scored)
                entry["adam"].update(schedule=schedule, peak=rate)
        if not entry:
            continue
        entry["clip"] = None
        for clip in ("global_norm", "agc"):
            if any(c["id"] == "clip_rnn" and c["subject"].startswith(f"{family} (")
                   and c["subject"].endswith(f", {clip})") and c["verdict"] == "supported"
                   for c in claim_rows):
                entry["clip"] = clip
                break
        entry["multipliers"] = None
        if family == "cnn" and any(c["id"] == "conv_vs_dense" and c["verdict"] == "supported"
                                   for c in claim_rows):
            entry["multipliers"] = {"conv": 10.0, "dense": 1.0}
        table[family] = entry
    return table


def keras_base(optimizer):
    from keras_lr.optimizers import base_optimizer

    return base_optimizer(optimizer)


_SOURCE = "keras-lr study default run, 2026-11-25 (docs/recipes.md)"


def family_of(model_or_family) -> str:
    """The study family of a model: its `keras_lr.models` name, else by its layers.

    Conv layers -> ``"cnn"``, an LSTM -> ``"lstm"``, a GRU -> ``"gru"``, otherwise ``"mlp"``;
    a SimpleRNN model (``keras_lr.models`` family ``"simple_rnn"``) has no measured recipe and
    raises `ValueError` rather than getting the MLP's.
    """
    if isinstance(model_or_family, str):
        return check_choice("model_or_family", model_or_family, tuple(MEASURED))
    if not isinstance(model_or_family, keras.Model):
        fail("model_or_family", "must be a family name or a keras.Model", model_or_family,
             TypeError)
    if model_or_family.name in MEASURED:
        return model_or_family.name
    layers = model_or_family._flatten_layers(include_self=False, recursive=True)
    kinds = {type(layer).__name__ for layer in layers}
    if kinds & {"Conv1D", "Conv2D", "Conv3D", "SeparableConv2D", "DepthwiseConv2D"}:
        return "cnn"
    if "LSTM" in kinds:
        return "lstm"
    if "GRU" in kinds:
        return "gru"
    if "SimpleRNN" in kinds or model_or_family.name in FAMILIES:
        fail("model_or_family", "has no measured recipe (a SimpleRNN model: the study measured "
             f"{', '.join(MEASURED)} only)", model_or_family.name)
    return "mlp"


def recommend(model_or_family, optimizer: str = "adam", steps_per_epoch: int = 100,
              epochs: int = 10) -> Recipe:
    """The measured recipe for a model (or family name) and optimizer.

    Args:
        model_or_family: a `keras.Model` or one of ``"mlp"``, ``"cnn"``, ``"lstm"``,
            ``"gru"``. With a model, multiplier rules select its layers by class.
        optimizer: ``"adam"`` or ``"sgd"`` (SGD with momentum 0.9, as in the study).
        steps_per_epoch: optimizer steps per epoch (sets the warmup and decay lengths).
        epochs: number of epochs (the schedule decays over ``epochs * steps_per_epoch``).

    Returns:
        A `Recipe`; ``model.compile(optimizer=recipe.optimizer, ...)``.
    """
    from keras_lr.guards import AdaptiveClip, GlobalNorm, GradientGuard
    from keras_lr.optimizers import LayerwiseLR
    from keras_lr.study.runner import make_schedule

    family = family_of(model_or_family)
    optimizer = check_choice("optimizer", optimizer, ("adam", "sgd"))
    steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    epochs = check_int("epochs", epochs, minimum=1)
    entry = MEASURED[family]
    numbers = entry[optimizer]
    total = steps_per_epoch * epochs
    if total < 2:
        fail("epochs", "must give at least 2 steps in total (epochs * steps_per_epoch)", epochs)
    schedule = make_schedule(numbers["schedule"], total, steps_per_epoch, peak=numbers["peak"])
    if optimizer == "sgd":
        inner = keras.optimizers.SGD(schedule, momentum=0.9)
    else:
        inner = keras.optimizers.Adam(schedule)
    rules = []
    model = model_or_family if isinstance(model_or_family, keras.Model) else None
    if entry["multipliers"]:
        conv, dense = entry["multipliers"]["conv"], entry["multipliers"]["dense"]
        if model is not None:
            rules = [(keras.layers.Conv2D, conv), (keras.layers.Dense, dense)]
        else:
            rules = [(r"/conv_\d+/", conv), (r"/(dense_\d+|output)/", dense)]
    wrapped = inner
    if rules:
        wrapped = LayerwiseLR(inner, rules)
        if model is not None:
            wrapped.bind(model)
    clip = None
    if entry["clip"] == "global_norm":
        clip = GlobalNorm(1.0)
    elif entry["clip"] == "agc":
        clip = AdaptiveClip(0.05)
    if clip is not None:
        wrapped = GradientGuard(wrapped, clip=clip)
    return Recipe(family, wrapped, schedule, float(numbers["peak"]), rules, clip, _SOURCE)
